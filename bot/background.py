"""Background tasks of the core (the store's flusher, the config watcher, the scheduler's sweep,
the PostgreSQL follower): stopped at shutdown by cancelling them and waiting until they have
ended, so nothing of theirs runs on after the loop's owner thinks it stopped."""

from __future__ import annotations

import asyncio


async def cancel_and_wait(task: asyncio.Task | None) -> None:
    """Cancel a background task and wait until it has ended (its cancellation is not an error)."""
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass


async def woken(event: asyncio.Event, seconds: float) -> None:
    """Wait until `event` is set or `seconds` passed (a poll's fallback), then clear it."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        pass
    event.clear()
