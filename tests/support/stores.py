"""A Store on a folder, loaded as of a day and started (journal open), as the bot starts it."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from bot.store import Store


async def started_store(path: Path, today: date) -> Store:
    store = Store(path)
    store.load(today=today)
    await store.start()
    return store
