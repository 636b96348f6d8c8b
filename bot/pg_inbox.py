"""The inbox on PostgreSQL: any number of `gridbot run` workers behind a load balancer, one database.

Accepting is unchanged (verify, decrypt, insert the raw message with ON CONFLICT DO NOTHING on its
key, COMMIT, 200: bot.inbox and bot.store_pg). Handling is where workers meet:

- One sender at a time across workers: a worker takes the sender's advisory lock, catches up with
  the changes feed (everything committed before is then in its memory: bot.pg_feed.catch_up), and
  handles every message of that sender acknowledged and not yet done, whichever worker took it,
  in the order they were sent (CreateTime, then the server's time of the insert `received`, then key).
  A message already done is passed over; one whose record exists (found by MsgId) was handled by
  a worker that died before its done mark: it only gets the mark and bot.transport.recover_reply.
  The done mark is committed before the lock is let go, so the next holder never sees a message
  handled and not marked unless its handler died.
- Session locks on a dedicated connection, not transaction locks: handling a message is several
  transactions of its own (a record, its id, the done mark, on the pool's connections), so an
  xact lock would need a transaction held open around all of them (idle in transaction, keeping
  a snapshot and vacuum back, killed by idle_in_transaction_session_timeout). A session lock is
  held by the connection alone and let go by the server when the worker dies (its TCP connection
  closes, even after kill -9), which is what hands a dead worker's senders to the others. Session
  locks stack within a session, so this connection is never a pooled one, and every take has its
  release. It waits by trying (pg_try_advisory_lock, then a short sleep): one connection serves
  every sender of the worker and must never block on one of them.
- Nothing waits forever on a dead worker: every worker knows the messages the others accepted
  (the feed hands them over, `on_message`) until their done marks come. A sweep every few seconds
  takes the senders of those still open after STALE_AFTER seconds whose lock is free, and handles
  them as above. The lock is the claim: a row lock (FOR UPDATE SKIP LOCKED) would have to be held
  by an open transaction for as long as the handling, the same problem as the xact lock; a sender
  lock tried and skipped when taken is the SKIP LOCKED of a sender's messages.
- Overtaking ("整改 #P1" right after someone else's "问题:…", accepted by another worker): a
  handler that finds no record waits for the others' open messages of the grid, seen through the
  feed, and catches up again before it says it was not found (bot.context.settled).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Awaitable, Callable

import asyncpg
from loguru import logger

from bot.background import cancel_and_wait
from bot.clock import iso_week
from bot.events import Event, event_from_dict
from bot.journal import loads
from bot.outgoing import REPLY_TO
from bot.records import weeks_between
from bot.store_reads import MAIN

if TYPE_CHECKING:
    from bot.inbox import Inbox

SENDER_LOCKS = 0x67726964  # the first key of every sender's advisory lock (pg_schema's are single keys)
SWEEP_EVERY = 2.0  # seconds between two looks for messages left by a dead worker
STALE_AFTER = 10.0  # seconds a message another worker accepted may stay open before it is taken over
LOCK_RETRY_FIRST = 0.002  # seconds between tries for a sender lock another worker holds, doubling
LOCK_RETRY_MAX = 0.02
DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncio.TimeoutError)


@dataclass
class Open:
    """A message another worker acknowledged and nobody has marked done yet (as far as seen)."""
    sender: str
    grid: str | None
    seen: float  # time.monotonic() when this worker heard of it
    done: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())


def in_send_order(rows: list, local: list[str]) -> list:
    """`rows` (in the server's order: CreateTime, time of insert, key) with this worker's own
    messages in the order it accepted them. Messages of one sender sent at once (not a phone's
    way, but a retry's or a test's) are inserted on several connections, whose times of insert
    need not follow the order they were acknowledged in, which is the file store's order."""
    rank = {k: i for i, k in enumerate(local)}
    place = {r[0]: n for n, r in enumerate(rows)}
    mine = sorted((r for r in rows if r[0] in rank), key=lambda r: rank[r[0]])
    theirs = [r for r in rows if r[0] not in rank]
    out, i, j = [], 0, 0
    while i < len(mine) or j < len(theirs):
        if j == len(theirs) or (i < len(mine) and place[mine[i][0]] < place[theirs[j][0]]):
            out.append(mine[i])
            i += 1
        else:
            out.append(theirs[j])
            j += 1
    return out


class SenderLocks:
    """Per-sender session advisory locks on one dedicated connection (see the module's docstring)."""

    def __init__(self, store):
        self.store = store
        self._conn: asyncpg.Connection | None = None
        self._bridge = None  # whose loop the connection belongs to
        self._use = asyncio.Lock()  # one query at a time on the connection

    async def _query(self, sql: str, *args):
        bridge = self.store._open()
        async with self._use:
            if self._conn is None or self._conn.is_closed() or self._bridge is not bridge:
                self._conn, self._bridge = await bridge.acall(asyncpg.connect(self.store.dsn)), bridge
            return await bridge.acall(self._conn.fetchval(sql, *args))

    async def try_take(self, sender: str) -> bool:
        return await self._query("SELECT pg_try_advisory_lock($1, hashtext($2))", SENDER_LOCKS, sender)

    async def take(self, sender: str) -> None:
        pause = LOCK_RETRY_FIRST
        while not await self.try_take(sender):
            await asyncio.sleep(pause)
            pause = min(pause * 2, LOCK_RETRY_MAX)

    async def release(self, sender: str) -> None:
        try:
            await self._query("SELECT pg_advisory_unlock($1, hashtext($2))", SENDER_LOCKS, sender)
        except DB_ERRORS as e:
            # The connection is gone, and the server let go of its locks with it.
            logger.warning("sender lock of {}: release failed ({}); the connection is opened again",
                           sender, type(e).__name__)
            await self.close()

    async def close(self) -> None:
        conn, bridge = self._conn, self._bridge
        self._conn = self._bridge = None
        # Only through the loop it belongs to, if the store still has it open: a store closed
        # first took that loop down (and is not to be opened again just for this).
        if bridge is not None and bridge is self.store._bridge:
            await bridge.aclose(conn)


class PgInbox:
    def __init__(self, inbox: "Inbox", recent_weeks: int):
        self.inbox = inbox
        self.recent_weeks = recent_weeks  # how far back a start looks for messages never handled
        self.locks = SenderLocks(inbox.store)
        self.others: dict[str, Open] = {}  # key -> a message accepted elsewhere, not done yet
        self._sweeper: asyncio.Task | None = None
        self.taken_over = 0  # messages this worker handled for a worker that went quiet (stats, tests)

    @property
    def store(self):
        return self.inbox.store

    # --- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        self.store._feed.on_message = self._heard
        self._sweeper = asyncio.create_task(self._sweep_loop(), name="inbox-sweep")

    async def stop(self) -> None:
        await cancel_and_wait(self._sweeper)
        self._sweeper = None
        await self.locks.close()

    # --- what the other workers accepted and finished (bot.pg_feed) ------------------
    def _heard(self, table: str, key: str, doc: dict | None) -> None:
        if table == "inbox":
            if doc is not None and key not in self.others:
                sender = doc["event"]["sender"]
                person = self.inbox.bot.config.person(sender)
                self.others[key] = Open(sender, person.grid if person else None, time.monotonic())
        else:
            self._finished(key)

    def _finished(self, key: str) -> None:
        entry = self.others.pop(key, None)
        if entry is not None and not entry.done.done():
            entry.done.set_result(None)

    async def settle_grid(self, grid: str | None, sender: str, timeout: float) -> None:
        """bot.inbox.Inbox.settle_grid across workers: this worker's messages and the others'."""
        await self.store._feed.catch_up()
        waits = self.inbox.open_of_others(grid, sender)
        waits += [o.done for o in self.others.values()
                  if o.sender != sender and (grid is None or o.grid is None or o.grid == grid)]
        if waits:
            await asyncio.wait(waits, timeout=timeout)
            await self.store._feed.catch_up()  # their records, committed before their done marks

    # --- handling --------------------------------------------------------------------
    async def handle(self, event: Event) -> None:
        """Handle `event` (accepted here) and whatever its sender sent before it, under the
        sender's lock. Called inside the inbox's own lock of that sender."""
        await self._under_sender_lock(event, lambda: self._handle_open(event.sender))
        if event.key in self.inbox.open_keys():  # handled by another worker meanwhile
            self.inbox.finished_elsewhere(event)

    async def _under_sender_lock(self, event: Event, work: Callable[[], Awaitable[object]]) -> None:
        """`work` holding the sender's lock; a database error leaves `event` to the sweep."""
        try:
            await self.locks.take(event.sender)
        except DB_ERRORS as e:
            self._left(event, e)
            return
        try:
            await work()
        except DB_ERRORS as e:
            self._left(event, e)
        finally:
            await self.locks.release(event.sender)

    def _left(self, event: Event, e: BaseException) -> None:
        # Acknowledged and committed, so not lost: the sweep takes it up again.
        logger.warning("{} not handled yet ({}: {}); tried again in {} s", event.key, type(e).__name__, e,
                       STALE_AFTER)
        self.inbox.finished_elsewhere(event)
        person = self.inbox.bot.config.person(event.sender)
        self.others.setdefault(event.key, Open(event.sender, person.grid if person else None, time.monotonic()))

    async def _handle_open(self, sender: str) -> int:
        """Handle the sender's open messages in order; returns how many were not done yet.

        Those known before catching up, and any sent before one of them: a message was sent
        after the one before it was committed, so catching up brings every message sent before
        one known at the call. Messages heard of meanwhile and sent after all of those wait for
        the next holder: what was sent before them may not be known yet."""
        local = [k for k, who in self.inbox.open_keys().items() if who == sender]  # in accepted order
        known = set(local) | {k for k, o in self.others.items() if o.sender == sender}
        if not known:
            return 0
        await self.store._feed.catch_up()
        keys = known | {k for k, o in self.others.items() if o.sender == sender}
        # A record carries its message's key in `msgid`: a report in the week of its work date (up
        # to late_days before it was sent; older messages than recent_weeks are not replayed),
        # the rest in `main`. Found, the message's handler died after the record, before the mark.
        today = self.inbox.bot.clock.today()
        shards = weeks_between(today - timedelta(weeks=self.recent_weeks, days=self.inbox.bot.config.reports.late_days),
                               today) + [MAIN]
        rows = await self.store._open().arun(lambda c: c.fetch(
            "SELECT m.id, m.shard, m.doc::text, d.id IS NOT NULL AS done, d.id IS NULL AND EXISTS "
            "(SELECT 1 FROM docs r WHERE r.shard = ANY($2::text[]) AND r.doc->>'msgid' = m.id) AS recorded "
            "FROM messages m LEFT JOIN messages d ON d.tbl = 'inbox_done' AND d.id = m.id "
            "WHERE m.tbl = 'inbox' AND m.id = ANY($1::text[]) "
            "ORDER BY (m.doc->'event'->>'create_time')::bigint, m.received, m.id", sorted(keys), shards))
        rows = in_send_order(rows, local)
        last = max((i for i, r in enumerate(rows) if r[0] in known), default=-1)
        handled = 0
        for key, shard, raw, done, recorded in rows[:last + 1]:
            event = event_from_dict(loads(raw)["event"])
            if done:
                self._finished(key)
                continue
            REPLY_TO.set(key)
            handled += 1
            if recorded:  # never a second record; the person told if its reply was lost
                self.inbox.bot.transport.recover_reply(event)
                self.inbox.finished_elsewhere(event)
            elif not await self.inbox.run(event):
                continue  # parked for lack of space (bot.inbox): not done
            await self._mark_done(key, shard)
        return handled

    async def recover(self, events: list[Event]) -> None:
        """Messages a start found recorded and never marked done: each marked, and its sender told
        if its reply was lost (bot.inbox), under the sender's lock, unless done meanwhile: a worker
        still running may have been between its record and its mark."""
        for event in events:
            async with self.inbox.sender_lock(event.sender):
                await self._under_sender_lock(event, lambda e=event: self._recover_one(e))

    async def _recover_one(self, event: Event) -> None:
        done = await self.store._open().arun(lambda c: c.fetchval(
            "SELECT EXISTS (SELECT 1 FROM messages WHERE tbl = 'inbox_done' AND id = $1)", event.key))
        if not done:
            self.inbox.bot.transport.recover_reply(event)
            await self._mark_done(event.key, self.store.shard_of("inbox", event.key))

    async def _mark_done(self, key: str, shard: str) -> None:
        # Before the sender's lock is let go: the next holder must find it done. Its replies are
        # kept first, as for the batched marks (bot.inbox).
        await self.inbox.bot.transport.kept()
        await self.store.put_many([("inbox_done", {"id": key}, shard or iso_week(self.inbox.bot.clock.today()))])
        self._finished(key)

    # --- the sweep ---------------------------------------------------------------------
    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY)
            try:
                await self.sweep()
            except DB_ERRORS as e:
                logger.warning("inbox sweep failed, tried again in {} s: {}: {}", SWEEP_EVERY, type(e).__name__, e)

    async def sweep(self, stale_after: float | None = None) -> int:
        """Take the senders of messages accepted elsewhere and still open after `stale_after`
        seconds whose lock is free; returns how many of their messages were handled here."""
        limit = time.monotonic() - (STALE_AFTER if stale_after is None else stale_after)
        senders = sorted({o.sender for o in self.others.values() if o.seen <= limit})
        # In bot.tasks, as the handling of a message just accepted: shutdown waits for them.
        tasks = [self.inbox.bot.spawn(self._take_over(s), name=f"take-over:{s}") for s in senders]
        handled = 0
        for sender, n in zip(senders, await asyncio.gather(*tasks, return_exceptions=True)):
            if isinstance(n, BaseException):
                logger.warning("inbox sweep: {}'s messages not taken over, tried again in {} s: {}: {}",
                               sender, SWEEP_EVERY, type(n).__name__, n)
            else:
                handled += n
        return handled

    async def _take_over(self, sender: str) -> int:
        async with self.inbox.sender_lock(sender):
            if not await self.locks.try_take(sender):
                return 0  # its worker is alive and on it
            try:
                handled = await self._handle_open(sender)
            finally:
                await self.locks.release(sender)
        if handled:
            self.taken_over += handled
            logger.warning("took over {} open message(s) of {}: the worker that accepted them went quiet",
                        handled, sender)
        return handled
