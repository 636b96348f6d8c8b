"""Which Store a config asks for: the files in data_dir (default) or PostgreSQL ([store]); and
the outbox that goes with it (this process's own files, or the table every worker drains)."""

from __future__ import annotations

from bot.clock import Clock
from bot.config import Config
from bot.outbox import Outbox
from bot.store import Store


def store_for(config: Config, *, readonly: bool = False) -> Store:
    section = config.store
    if section.backend == "postgres":
        # Imported here: asyncpg is loaded only by deployments that use it.
        from bot.store_pg import PgStore
        return PgStore(config.data_path, section.dsn.get_secret_value(), readonly=readonly)
    return Store(config.data_path, readonly=readonly)


def outbox_for(config: Config, store: Store, clock: Clock) -> Outbox:
    if getattr(store, "backend", "") == "postgres":
        from bot.pg_outbox import PgOutbox
        return PgOutbox(store, clock, reply_seconds=3600)  # type: ignore[arg-type]
    return Outbox(config.data_path / "outbox", clock, reply_seconds=3600)
