"""The enterprise-wide cap shared by every worker on PostgreSQL: each send's turn handed out by the
database (the function outbox_slots, migration 0040).

Why the database hands out turns, not a share of the cap per worker: a share needs to know how
many workers are alive, and wastes the dead ones' part; a per-minute count table needs a row per
minute and a sum for the hour. One row with two token buckets (a second's burst and the minute's
rate; half an hour's burst and the hour's rate) is updated under its row lock by the statement
that hands out turns, which also checks that the caller still holds each recipient's lane and
marks each row as tried; the waiting sends of a worker ask in batches (one statement for up to BATCH turns),
so the round trip is not paid per send (measured by bench/bench_pg_outbox.py).
The buckets' sizes keep any 60 s (and any hour) within [transport] api_per_minute (api_per_hour).

Replies before pushes, across workers: within a worker the waiting sends are asked for in the
order of bot.send_pace (replies first, older first); in the database a reply that has to wait
marks the row, and pushes are refused until that reply had its turn, whichever worker asks.

The clock is the workers' wall clock, carried on the transport's own (so a test's fake time runs
the database's buckets too): machines of one deployment keep their clocks in step (NTP), and a
clock a little behind only refills its caller's tokens a little later.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from typing import TYPE_CHECKING

import asyncpg
from loguru import logger

from bot.outgoing import Outgoing
from bot.send_pace import BLOCK_SECONDS, SendPace

if TYPE_CHECKING:
    from bot.pg_outbox import PgOutbox
    from bot.transport import Transport

DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, asyncio.TimeoutError)
RETRY = 1.0  # seconds before asking again when the database did not answer
RECENT_MAX = 50_000  # duplicate-check intervals remembered before the ended ones are dropped
BATCH = 64  # turns asked for in one statement: a worker's sends need not take one round trip each


class LaneLost(Exception):
    """The recipient's lane was taken over by another worker (this one stalled past its lease)."""


class PgPace(SendPace):
    def __init__(self, outbox: "PgOutbox", transport: "Transport"):
        self.outbox = outbox
        self._mono0, self._wall0 = transport._now(), time.time()
        self._tnow = lambda: transport._now()
        super().__init__(0, 0, now=self._tnow, sleep=lambda d: transport._sleep(d))
        # WeCom's duplicate check as the lanes' history tells (digest → until, wall clock): a
        # twin sent by another worker inside its interval means this one goes without the check.
        self.recent: dict[str, float] = {}

    def shared_now(self) -> float:
        """Wall-clock seconds, moving with the transport's clock."""
        return self._wall0 + (self._tnow() - self._mono0)

    async def turn(self, msg: Outgoing) -> None:
        fut = asyncio.get_running_loop().create_future()
        reply = msg.cause is not None or msg.channel == "answer"
        heapq.heappush(self._waiting, (0 if reply else 1, msg.created, next(self._seq), fut, msg))
        if self._granter is None or self._granter.done():
            self._granter = asyncio.create_task(self._grant(), name="send-pace")
        if not await fut:
            raise LaneLost(msg.describe())

    def too_fast(self, cause: str) -> None:
        fresh = self._now() >= self.blocked_until
        super().too_fast(cause)
        if fresh:  # every worker pauses, not only this one
            until = self.shared_now() + BLOCK_SECONDS
            asyncio.ensure_future(self._block(until))

    async def _block(self, until: float) -> None:
        try:
            await self.outbox.db.arun(lambda c: c.execute(
                "UPDATE outbox_pace SET blocked_until = greatest(blocked_until, $1)", until))
        except DB_ERRORS as e:
            logger.warning("outbox: could not tell the other workers to pause ({})", type(e).__name__)

    async def _grant(self) -> None:
        while self._waiting:
            wait = max(0.0, self.blocked_until - self._now())
            if wait > 0:
                await self._sleep(wait)
                continue
            batch = [e for e in heapq.nsmallest(BATCH, self._waiting) if not e[3].done()]
            waits: list[float] = []
            if batch:
                try:
                    waits = await self._slots([e[4] for e in batch])
                except DB_ERRORS as e:
                    logger.warning("outbox: the database gave no turn to send ({}); asking again", type(e).__name__)
                    await self._sleep(RETRY)
                    continue
            # Those answered leave the heap (a reply may have come in while the database answered).
            answered = {id(e) for e, w in zip(batch, waits) if w <= 0}
            self._waiting = [e for e in self._waiting if id(e) not in answered and not e[3].done()]
            heapq.heapify(self._waiting)
            for e, w in zip(batch, waits):
                if w <= 0 and not e[3].done():
                    e[3].set_result(w == 0)
            await asyncio.sleep(0)  # let them go before the clock moves on to the next turns
            if (wait := next((w for w in waits if w > 0), 0.0)) > 0:
                await self._sleep(wait)

    async def _slots(self, msgs: list[Outgoing]) -> list[float]:
        wall = self.shared_now()
        if len(self.recent) > RECENT_MAX:  # intervals that ended are forgotten
            self.recent = {digest: until for digest, until in self.recent.items() if until > wall}
        for msg in msgs:
            if not msg.tried and msg.digest and msg.dedupe and self.recent.get(msg.digest, 0) > wall:
                msg.dedupe = 0  # its twin may be inside WeCom's interval: the check would drop this one
        args = ([m.seq or None for m in msgs], [self.outbox.lane_of(m) for m in msgs], self.outbox.holder,
                [m.cause is not None or m.channel == "answer" for m in msgs], [m.dedupe for m in msgs], wall,
                self.per_minute, self.per_hour, self.share)
        waits = await self.outbox.db.arun(lambda c: c.fetchval(
            "SELECT outbox_slots($1, $2, $3, $4, $5, $6, $7, $8, $9)", *args))
        for msg, wait in zip(msgs, waits):
            if wait == 0:
                msg.tried, msg.sent_at = True, wall
                if msg.digest and msg.dedupe:
                    self.recent[msg.digest] = wall + msg.dedupe
        return waits
