"""WeCom's enterprise-wide call rate, shared by every recipient's queue of the transport.

Besides each person's and each robot's cap (bot.outgoing), WeCom limits the calls of the whole
enterprise and of each server IP ([transport] api_per_minute / api_per_hour; the figures are in
bot/config_platform.py). At 08:30 a thousand grid groups get their reminder at once: sent as fast
as the loop can, they would run into that limit (and WeCom then blocks the enterprise for a
minute or an hour) and, meanwhile, take the loop from the callbacks. So every send takes a turn
here: bursts of at most a second's worth go out at once, the rest evenly spread, and when turns
are short the waiting messages go in priority order: replies to people (a message that answers
an inbound one) before pushes, and the older first within each. A message waiting for its turn
is already in the outbox, so nothing is lost by waiting, and it is sent once.

When WeCom answers that the rate is exceeded anyway (errcode 45009 / 45033, HTTP 429: other
systems of the enterprise share the limit), every send pauses for WeCom's block (a minute) and
the pace halves, then grows back step by step while sends succeed.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from typing import Awaitable, Callable

from loguru import logger

from bot.outgoing import Outgoing, RateWindow

# Defaults of [transport] api_per_minute / api_per_hour (why these: bot/config_platform.py).
DEFAULT_PER_MINUTE = 6000
DEFAULT_PER_HOUR = 120_000
# WeCom blocks an enterprise over its per-minute limit for 60 s ("按分钟拦截则被屏蔽60秒").
BLOCK_SECONDS = 60.0
SLOWEST = 1 / 64  # after repeated refusals: at least this share of the configured pace
RECOVER_STEP = 0.02  # each success gives back this share of the configured pace


class SendPace:
    def __init__(self, per_minute: int, per_hour: int, *, now: Callable[[], float],
                 sleep: Callable[[float], Awaitable[None]]):
        self._now = now
        self._sleep = sleep
        self._seq = itertools.count()
        self._waiting: list[tuple[int, float, int, asyncio.Future]] = []
        self._granter: asyncio.Task | None = None
        self.blocked_until = 0.0
        self.share = 1.0  # of the configured pace, lowered when WeCom says it is too fast
        self.configure(per_minute, per_hour)

    def configure(self, per_minute: int, per_hour: int) -> None:
        """[transport] api_per_minute / api_per_hour; 0 per minute: no pacing."""
        if (per_minute, per_hour) == (getattr(self, "per_minute", None), getattr(self, "per_hour", None)):
            return  # a reload that changed other things: the turns already counted still count
        self.per_minute, self.per_hour = per_minute, per_hour
        limits = [(per_minute, 60.0)] + ([(per_hour, 3600.0)] if per_hour else [])
        self._window = RateWindow(limits) if per_minute else None
        self.burst = max(1.0, per_minute / 60)  # a second's worth goes out at once
        self._tokens = self.burst
        self._filled = self._now()

    # --- the transport's part -----------------------------------------------------------------
    async def turn(self, msg: Outgoing) -> None:
        """Wait until `msg` may go out; replies before pushes, older before newer."""
        if self._window is None:
            return
        if not self._waiting and self._wait(self._now()) <= 0:
            self._take(self._now())
            return
        fut = asyncio.get_running_loop().create_future()
        reply = msg.cause is not None or msg.channel == "answer"
        heapq.heappush(self._waiting, (0 if reply else 1, msg.created, next(self._seq), fut))
        if self._granter is None or self._granter.done():
            self._granter = asyncio.create_task(self._grant(), name="send-pace")
        await fut

    def succeeded(self) -> None:
        if self.share < 1.0:
            self.share = min(1.0, self.share + RECOVER_STEP)

    def too_fast(self, cause: str) -> None:
        """WeCom refused a call for the enterprise's rate: pause every send, then go slower."""
        now = self._now()
        if now < self.blocked_until:
            return  # the same block told by another queue
        self.blocked_until = now + BLOCK_SECONDS
        self.share = max(SLOWEST, self.share / 2)
        logger.warning("WeCom says this enterprise calls too often ({}): sends pause {:.0f} s, then go on at "
                       "{:.0f}% of [transport] api_per_minute; nothing is dropped", cause, BLOCK_SECONDS,
                       self.share * 100)

    # --- inside --------------------------------------------------------------------------------
    def _rate(self) -> float:
        return self.per_minute / 60 * self.share  # turns per second

    def _refill(self, now: float) -> None:
        # Slowed down, the bursts shrink too (never below one send).
        # A clock that went back (a test's clock swapped in, a system clock set back) gives no
        # tokens, and must not take any: a negative span would stall every send for its length.
        elapsed = max(0.0, now - self._filled)
        self._tokens = min(max(1.0, self.burst * self.share), self._tokens + elapsed * self._rate())
        self._filled = now

    def _wait(self, now: float) -> float:
        if self._window is None:
            return 0.0
        self._refill(now)
        wait = max(0.0, self.blocked_until - now)
        if self._tokens < 1:
            wait = max(wait, (1 - self._tokens) / self._rate())
        return max(wait, self._window.wait_time(now))

    def _take(self, now: float) -> None:
        self._tokens -= 1
        if self._window is not None:
            self._window.record(now)

    def tasks(self) -> list[asyncio.Task]:
        """What a stop cancels: the task giving turns, while senders wait."""
        return [self._granter] if self._granter is not None and not self._granter.done() else []

    async def _grant(self) -> None:
        while self._waiting:
            if self._waiting[0][-1].done():  # its sender was cancelled (a stop)
                heapq.heappop(self._waiting)
                continue
            wait = self._wait(self._now())
            if wait > 0:
                await self._sleep(wait)
                continue
            *_, fut = heapq.heappop(self._waiting)
            if fut.done():
                continue
            self._take(self._now())
            fut.set_result(None)
            await asyncio.sleep(0)  # let it go before the next turn is given
