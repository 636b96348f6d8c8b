"""Draining the shared outbox (bot.pg_outbox): lanes claimed, sent in order, let go.

A lane is one recipient (a person, a grid's robot, a chat). A worker claims lanes that have
queued rows and whose lease is free or ran out (FOR UPDATE SKIP LOCKED on outbox_lanes, replies'
lanes first, then the oldest): at once the lanes it has just added rows to, the others' once
their rows waited HELP_AFTER seconds (their worker is busy or gone), reads their rows in insertion order and hands them to the
transport's queue for that recipient; while it holds a lane it renews the lease, and no other
worker sends to that recipient (the database's turn, bot.pg_pace, also checks the lane is still
the caller's before each call). When the recipient's queue ran empty and the results are in the
table, the lane is let go, or fed again with rows added meanwhile by any worker.

The per-person and per-robot caps (bot.outgoing) hold across workers because one worker at a time
sends to a recipient, and a lane's new holder starts its rate window from the lane's history in
the table (when each of the last hour's messages went out), not empty.

A worker killed -9 stops renewing: after LEASE seconds another claims its lanes; a row it was
sending is marked tried, and bot.delivery's rule decides whether the repeat is safe.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict, deque
from typing import TYPE_CHECKING

import asyncpg
from loguru import logger

from bot import delivery
from bot.background import cancel_and_wait, woken
from bot.journal import loads
from bot.outbox import outgoing_from
from bot.outgoing import Outgoing
from bot.pg_pace import DB_ERRORS, LaneLost

if TYPE_CHECKING:
    from bot.pg_outbox import PgOutbox
    from bot.transport import Transport

CHANNEL = "gridbot_outbox"  # NOTIFY on it when rows are added: the workers look at once
LEASE = 30.0  # seconds a lane stays a silent worker's
RENEW_EVERY = 10.0  # well inside LEASE: a busy loop or a slow query is not a death
POLL = 1.0  # seconds between looks at the table when no NOTIFY woke the worker
CLAIM_BATCH = 100  # lanes claimed at most per look
# A worker sends what it added itself at once; what another added, once it waited this long (that
# worker is busy, or gone): replies go out from where they were made unless help is needed.
HELP_AFTER = 2.0
HISTORY = 4 * 3600.0  # seconds of a lane's history read: the hour's cap and WeCom's duplicate check
KEEP_DAYS = 7  # ended rows older than this are deleted (any worker, once an hour): nothing reads them
PRUNE_EVERY = 3600.0

_CLAIM = """
WITH waiting AS (
    SELECT lane, min(seq) AS first, bool_or(reply) AS reply, min(created) AS since
      FROM outbox WHERE state = 'queued' GROUP BY lane
), free AS (
    SELECT l.lane FROM outbox_lanes l JOIN waiting w ON w.lane = l.lane
     WHERE (l.holder IS NULL OR l.lease_until < now()) AND l.holder IS DISTINCT FROM $1
       AND (w.lane = ANY($4::text[]) OR w.since < $5)
     ORDER BY w.reply DESC, w.first LIMIT $3
       FOR UPDATE OF l SKIP LOCKED
)
UPDATE outbox_lanes l SET holder = $1, lease_until = now() + make_interval(secs => $2)
  FROM free WHERE l.lane = free.lane RETURNING l.lane
"""
_MINE = "SELECT lane FROM outbox_lanes WHERE lane = ANY($1::text[]) AND holder = $2"
_ROWS = ("SELECT seq, lane, msg::text AS msg, blob, tried, dc FROM outbox "
         "WHERE lane = ANY($1::text[]) AND state = 'queued' ORDER BY seq")
_MORE = ("SELECT seq, lane, msg::text AS msg, blob, tried, dc FROM outbox "
         "WHERE lane = $1 AND state = 'queued' AND seq > $2 ORDER BY seq")
_HISTORY = ("SELECT lane, sent_at, h, dc, t1 FROM outbox "
            "WHERE lane = ANY($1::text[]) AND t1 > $2 AND sent_at IS NOT NULL")
_RELEASE = """
UPDATE outbox_lanes l SET holder = NULL, lease_until = NULL
 WHERE l.lane = ANY($1::text[]) AND l.holder = $2
   AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.lane = l.lane AND o.state = 'queued')
RETURNING l.lane
"""
_RENEW = "UPDATE outbox_lanes SET lease_until = now() + make_interval(secs => $2) WHERE holder = $1 RETURNING lane"
_LET_GO = "UPDATE outbox_lanes SET holder = NULL, lease_until = NULL WHERE holder = $1"


class Drainer:
    def __init__(self, outbox: "PgOutbox", transport: "Transport"):
        self.outbox, self.transport = outbox, transport
        self.held: dict[str, str | None] = {}  # lane → the transport's queue for it
        self.fed: dict[str, int] = {}  # lane → the last row handed to the transport
        self.own: set[str] = set()  # lanes this worker has just added rows to: claimed at once
        self.claimed = 0  # lanes claimed so far
        self.repeated = 0  # rows a dead worker was sending, sent again (the receiver drops a repeat)
        self._lock = asyncio.Lock()  # one round (or renewal) at a time
        self._wake: asyncio.Event | None = None
        self._tasks: list[asyncio.Task] = []
        self._listener: asyncpg.Connection | None = None
        self._listener_db = None
        self._started = 0.0
        self._stopped = False
        self.closing = False  # the transport stops: no more lanes claimed or fed

    def wake(self, lanes: set[str] | None = None) -> None:
        self.own |= lanes or set()
        if self._wake is not None:
            self._wake.set()

    # --- start and stop ---------------------------------------------------------------------
    async def start(self) -> None:
        self._wake, self._stopped, self.closing = asyncio.Event(), False, False
        self._started = self.outbox._wall()
        loop, wake, db = asyncio.get_running_loop(), self._wake, self.outbox.db
        self._listener_db = db
        try:
            self._listener = await db.acall(asyncpg.connect(self.outbox._store.dsn))
            await db.acall(self._listener.add_listener(CHANNEL, lambda *_: loop.call_soon_threadsafe(wake.set)))
        except DB_ERRORS as e:
            logger.warning("outbox: LISTEN failed ({}), looking for messages every {} s", type(e).__name__, POLL)
            await self._close_listener()
        self._tasks = [asyncio.create_task(self._run(), name="outbox-drain"),
                       asyncio.create_task(self._renew_loop(), name="outbox-lease")]

    async def stop(self, outbox: "PgOutbox") -> None:
        """Stop claiming; write how the sent ones ended, then let every lane go at once (the
        next holder need not wait for the lease to run out)."""
        self._stopped = True
        for t in self._tasks:
            await cancel_and_wait(t)
        self._tasks = []
        try:
            await asyncio.wait_for(outbox.ended_written(), 10)
            await outbox.db.arun(lambda c: c.execute(_LET_GO, outbox.holder))
        except (*DB_ERRORS, asyncio.TimeoutError) as e:
            logger.warning("outbox: could not let this worker's lanes go ({}); others take them in {:g} s",
                           type(e).__name__, LEASE)
        self.held.clear()
        await self._close_listener()

    async def _close_listener(self) -> None:
        conn, self._listener = self._listener, None
        if conn is not None:
            try:
                # On the loop it was opened on (the store may have opened a new bridge since).
                await self._listener_db.acall(conn.close(timeout=5))
            except (*DB_ERRORS, RuntimeError):  # that bridge is closed already: so is the connection
                pass

    # --- the rounds -------------------------------------------------------------------------
    async def _run(self) -> None:
        pruned = time.monotonic()
        while not self._stopped:  # the flag as well as the cancel (bot.pg_feed says why)
            await woken(self._wake, POLL)
            await self.round()
            if time.monotonic() - pruned > PRUNE_EVERY:
                pruned = time.monotonic()
                await self.prune()

    async def prune(self) -> int:
        """Delete the rows that ended more than KEEP_DAYS ago; returns how many."""
        before = self.outbox._wall() - KEEP_DAYS * 86400
        try:
            done = await self.outbox.db.arun(lambda c: c.execute(
                "DELETE FROM outbox WHERE state <> 'queued' AND t1 < $1", before))
        except DB_ERRORS as e:
            logger.warning("outbox: deleting old rows failed ({}); trying again in an hour", type(e).__name__)
            return 0
        return int(done.split()[-1])

    async def round(self) -> int:
        """Let go (or feed) the lanes whose queue ran empty, claim free ones; returns how many
        were claimed."""
        async with self._lock:
            try:
                if self.closing:
                    return 0
                await self._let_go_or_feed([lane for lane in self.held if self._idle(lane)])
                own, self.own = sorted(self.own), set()
                # What was left from before this worker started goes out at once, as after a restart.
                help_after = max(self.outbox._wall() - HELP_AFTER, self._started)
                lanes = [r[0] for r in await self.outbox.db.arun(
                    lambda c: c.fetch(_CLAIM, self.outbox.holder, LEASE, CLAIM_BATCH, own, help_after))]
                if lanes:
                    self.claimed += len(lanes)
                    await self._feed(lanes)
                return len(lanes)
            except DB_ERRORS as e:
                logger.warning("outbox: reading the table failed ({}: {}); trying again", type(e).__name__, e)
                return 0

    def _idle(self, lane: str) -> bool:
        key = self.held[lane]
        if key is None:
            return True
        task, q = self.transport._workers.get(key), self.transport._queues.get(key)
        return (task is None or task.done()) and (q is None or q.empty())

    async def _let_go_or_feed(self, lanes: list[str]) -> None:
        if not lanes:
            return
        await self.outbox.ended_written()
        holder = self.outbox.holder
        released = {r[0] for r in await self.outbox.db.arun(lambda c: c.fetch(_RELEASE, lanes, holder))}
        for lane in released:
            del self.held[lane]
        rest = [lane for lane in lanes if lane not in released]
        if rest:
            await self._feed(rest)

    async def _feed(self, lanes: list[str]) -> None:
        """Queue the lanes' rows in the transport, each lane's rate window started from its history."""
        holder, since = self.outbox.holder, self.outbox._wall() - HISTORY

        async def read(c: asyncpg.Connection):
            mine = {r[0] for r in await c.fetch(_MINE, lanes, holder)}
            return mine, await c.fetch(_ROWS, lanes), await c.fetch(_HISTORY, lanes, since)
        mine, rows, history = await self.outbox.db.arun(read)
        pace, tr = self.transport.pace, self.transport
        shared_now, now = pace.shared_now(), tr._now()
        sent: dict[str, list[float]] = defaultdict(list)
        for h in history:
            sent[h["lane"]].append(now - (shared_now - h["sent_at"]))
            if h["h"] and h["dc"]:
                pace.recent[h["h"]] = max(pace.recent.get(h["h"], 0.0), h["t1"] + h["dc"])
        queued: dict[str, list[Outgoing]] = defaultdict(list)
        for r in rows:
            if r["lane"] in mine and (msg := self._message(r)) is not None:
                queued[r["lane"]].append(msg)
        for lane in lanes:
            if lane not in mine:
                self.held.pop(lane, None)  # taken over meanwhile by another worker
                continue
            msgs = queued.get(lane)
            if not msgs:
                self.held[lane] = None  # nothing to send after all: let go at the next round
                self.wake()
                continue
            key = f"{msgs[0].channel}:{msgs[0].target}"
            self.held[lane] = key
            for msg in msgs:
                tr._queue(msg)
            self.fed[lane] = msgs[-1].seq
            tr._windows[key].sent = deque(sorted(t for t in sent[lane] if t > now - 3600))
            tr._workers[key].add_done_callback(self._ran_empty)

    async def top_up(self, key: str) -> None:
        """Queue the rows added to a held lane since it was fed (its summary takes them in)."""
        lane = next((lane for lane, k in self.held.items() if k == key), None)
        if lane is None:
            return
        try:
            rows = await self.outbox.db.arun(lambda c: c.fetch(_MORE, lane, self.fed.get(lane, 0)))
        except DB_ERRORS as e:
            logger.warning("outbox: reading the table failed ({}); trying again later", type(e).__name__)
            return
        for r in rows:
            if self.held.get(lane) == key and (msg := self._message(r)) is not None:
                self.transport._queue(msg)
            self.fed[lane] = max(self.fed.get(lane, 0), r["seq"])

    def _message(self, r) -> Outgoing | None:
        d = loads(r["msg"])
        msg = outgoing_from(d, bytes(r["blob"]) if r["blob"] is not None else d.get("c"))
        msg.seq = r["seq"]
        if r["dc"] is not None:
            msg.dedupe = r["dc"]  # what its first attempt carried: a repeat is the same request
        if r["tried"]:
            msg.tried, msg.attempts = True, 1
            if not delivery.may_repeat(msg, self.transport.keyed_receiver, self.outbox._wall()):
                logger.warning("{}: its worker stopped while sending it, and WeCom could not drop a repeat: "
                               "it is not sent again", msg.describe())
                self.outbox.finish(msg, "uncertain")
                return None
            self.repeated += 1
        return msg

    def _ran_empty(self, task: asyncio.Task) -> None:
        if not task.cancelled() and (e := task.exception()) is not None and not isinstance(e, LaneLost):
            logger.opt(exception=e).error("outbox: sending stopped by an error")
        self.wake()

    # --- the lease ---------------------------------------------------------------------------
    async def _renew_loop(self) -> None:
        while not self._stopped:
            await asyncio.sleep(RENEW_EVERY)
            async with self._lock:
                try:
                    kept = {r[0] for r in await self.outbox.db.arun(
                        lambda c: c.fetch(_RENEW, self.outbox.holder, LEASE))}
                except DB_ERRORS as e:
                    logger.warning("outbox: renewing the lanes' lease failed ({}); trying again", type(e).__name__)
                    continue
                for lane in [lane for lane in self.held if lane not in kept]:
                    self._lost(lane)

    def _lost(self, lane: str) -> None:
        """Another worker holds the lane now (this one stalled past LEASE): stop sending to it."""
        logger.error("outbox: another worker took over the messages to {} (this one stalled for over {:g} s); "
                     "they are sent from there", lane, LEASE)
        key = self.held.pop(lane)
        if key is None:
            return
        q = self.transport._queues.get(key)
        while q is not None and not q.empty():
            q.get_nowait()
            q.task_done()
        task = self.transport._workers.get(key)
        if task is not None:
            task.cancel()
