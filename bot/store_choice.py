"""Which Store a config asks for: the files in data_dir (default) or PostgreSQL ([store])."""

from __future__ import annotations

from bot.config import Config
from bot.store import Store


def store_for(config: Config, *, readonly: bool = False) -> Store:
    section = config.store
    if section.backend == "postgres":
        # Imported here: asyncpg is loaded only by deployments that use it.
        from bot.store_pg import PgStore
        return PgStore(config.data_path, section.dsn.get_secret_value(), readonly=readonly)
    return Store(config.data_path, readonly=readonly)
