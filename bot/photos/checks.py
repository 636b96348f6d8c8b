"""The duplicate check of a check-in photo, the same for the check-in handler on either store.

On the file store (one process) the index in memory is the whole truth: search it, store the
check-in, add it, all under the photos lock. On PostgreSQL several processes check at once: the
search and the record of the photo are one transaction under an advisory lock
(bot.photos.pg_fingerprints), and the index is this process's cache of the shared table.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, AsyncIterator, Awaitable, Callable, Sequence

from bot.photos import duplicates
from bot.photos.duplicates import Match, PhotoIndex, due_window, photo_lock
from bot.photos.pg_fingerprints import claim, forget, load_window


def on_postgres(bot: Any) -> bool:
    return getattr(bot.store, "backend", "") == "postgres"


async def photo_index(bot: Any, now: datetime) -> PhotoIndex:
    """The window's index, built when first needed (callers hold photo_lock)."""
    if not on_postgres(bot):
        return await duplicates.photo_index(bot, now)
    covers_from = due_window(bot.photo_index, now, bot.config.checkin.duplicate_days)
    if covers_from is not None:
        bot.photo_index = await asyncio.to_thread(load_window, bot.store, covers_from)
    return bot.photo_index


@dataclass(frozen=True)
class PhotoCheck:
    match: Match | None  # the earlier photo this one repeats, if any
    checkin: str  # the id the check-in is to be stored under


@asynccontextmanager
async def check_photo(bot: Any, sent: datetime, hashes: Sequence[int], *, key: str, userid: str, name: str,
                      new_id: Callable[[], Awaitable[str]]) -> AsyncIterator[PhotoCheck]:
    """Whether the photo of message `key` (sent at `sent` by `userid`) repeats one of the window;
    the body stores the check-in under the id given. Held: no other check runs meanwhile."""
    rules = bot.config.checkin
    since = (sent - timedelta(days=rules.duplicate_days)).timestamp()
    at = sent.timestamp()
    async with photo_lock(bot):
        index = await photo_index(bot, sent)
        if on_postgres(bot):
            # The id first: the claim records it with the fingerprint (a replay gets it back).
            got = await claim(bot.store, index, key=key, checkin=await new_id(), userid=userid, name=name,
                              at=at, hashes=hashes, distance=rules.duplicate_distance, since=since)
            try:
                yield PhotoCheck(got.match, got.checkin)
            except OSError:  # the store's write was refused: nothing was committed
                await forget(bot.store, key)
                bot.photo_index = None  # it holds the photo: read again from the table
                raise
            return
        match = index.search(hashes, rules.duplicate_distance, since)
        checkin = await new_id()
        yield PhotoCheck(match, checkin)
        # Only once the check-in is stored (the body raised nothing): a failed write adds nothing.
        index.add(checkin, at, hashes, name)
