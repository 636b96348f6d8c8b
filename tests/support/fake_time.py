"""A clock and sleep for the transport's pacing and backoff: sleeping moves the time on at once,
so minutes of WeCom's caps pass in a test's milliseconds."""

from __future__ import annotations

import asyncio


class FakeTime:
    def __init__(self):
        self.t = 1_000_000.0

    def now(self) -> float:
        return self.t

    async def sleep(self, d: float) -> None:
        self.t += max(d, 0.001)
        await asyncio.sleep(0)
