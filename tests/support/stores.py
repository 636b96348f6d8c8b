"""A Store on a folder, loaded as of a day and started (journal open), as the bot starts it."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

from bot.store import Store

from tests.support.factories import TEST_STORE


async def started_store(path: Path, today: date) -> Store:
    store = Store(path)
    store.load(today=today)
    await store.start()
    return store


def reader_of(data_dir: Path) -> Store:
    """A read-only store (not loaded yet) on what a bot process of this test run wrote: its
    files, or on a PostgreSQL run the test's schema, named by GRIDBOT_STORE_DSN."""
    if TEST_STORE == "postgres":
        from bot.store_pg import PgStore
        store: Store = PgStore(data_dir, os.environ["GRIDBOT_STORE_DSN"], readonly=True)
    else:
        store = Store(data_dir, readonly=True)
    return store
