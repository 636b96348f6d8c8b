"""The shared outbox on PostgreSQL: one `outbox` table (migration 0040) that every worker drains.

What the transport needs from an outbox is bot.outbox's (add, keep, settled, finish, unsent,
lost_reply, replay_done); this one keeps each message as a row instead of in a file of its own:
- `add` gives the message its id and deadline as the file outbox does, and the writer commits it
  (in batches, one transaction each, with a NOTIFY) before it may go out. The transport does not
  queue it itself: whichever worker holds the recipient's lane sends it (bot.pg_drain), in the
  order the rows were inserted, within the caps (bot.outgoing's per person and per robot, counted
  from the lane's history in the table; the enterprise's handed out by the database, bot.pg_pace).
- A job's message carries a key (schedule, fire time, recipient, part; bot.outgoing.FIRE) with a
  unique index: a run taken over from a dead worker re-runs the job from the start, and the rows
  the first run had inserted are not inserted again.
- How each message ended (sent, failed, expired, replaced, uncertain) is written to its row, with
  the worker that sent it and when; an image's bytes are cleared then.
- Before each call the row is marked tried (with the duplicate check it carries); a lane taken
  over from a dead worker applies bot.delivery's rule to a tried row: sent again only where the
  receiver drops a repeat, else marked uncertain. Nothing is sent twice, nothing lost.
No access token ever reaches the table: rows hold what to send and to whom, and a response_url's
lane is named by its digest.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import time
import uuid
from typing import TYPE_CHECKING, Callable

import asyncpg
from loguru import logger

from bot.clock import Clock
from bot.journal import dumps
from bot.outbox import Outbox
from bot.outgoing import FIRE, Outgoing
from bot.pg_bridge import PgBridge
from bot.pg_drain import CHANNEL, Drainer
from bot.pg_pace import DB_ERRORS, PgPace

if TYPE_CHECKING:
    from bot.store_pg import PgStore

RETRY = 1.0  # seconds between attempts to write to a database that refused

_INSERT = """
INSERT INTO outbox (id, lane, key, reply, cause, created, until, msg, blob)
SELECT id, lane, key, reply, cause, created, until, msg, blob
  FROM unnest($1::text[], $2::text[], $3::text[], $4::boolean[], $5::text[], $6::float8[], $7::float8[],
              $8::json[], $9::bytea[]) WITH ORDINALITY AS u(id, lane, key, reply, cause, created, until, msg, blob, n)
 ORDER BY n  -- the rows' seq in the order they were added: each lane's order
ON CONFLICT DO NOTHING RETURNING id, seq
"""
_END = """
UPDATE outbox SET state = $2, t1 = $3, h = $4, dc = coalesce(dc, $5), holder = $6, sent_at = $7,
                  blob = NULL, tried = false
 WHERE id = $1
"""


def lane_of(msg: Outgoing) -> str:
    # A response_url is a credential of its own: its digest names the lane.
    if msg.channel == "answer":
        return "answer:" + hashlib.sha1(msg.target.encode()).hexdigest()[:20]
    return f"{msg.channel}:{msg.target}"


class _CausesInDb(set):
    """The messages that have a reply on record, as bot.outbox's lost_reply asks (at start, and on
    a shared database whenever a dead worker's message is taken over): the ones added here and
    not yet written, and any row of the table."""

    def __init__(self, db: Callable[[], PgBridge]):
        super().__init__()
        self._db = db

    def __contains__(self, key) -> bool:
        return set.__contains__(self, key) or bool(self._db().run(lambda c: c.fetchval(
            "SELECT EXISTS (SELECT 1 FROM outbox WHERE cause = $1)", key)))


class PgOutbox(Outbox):
    shared = True

    def __init__(self, store: "PgStore", clock: Clock, *, reply_seconds: float,
                 wall: Callable[[], float] = time.time):
        super().__init__(store.data_dir / "outbox", clock, reply_seconds=reply_seconds, wall=wall)
        self._store = store
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.drainer: Drainer | None = None
        self._causes = _CausesInDb(lambda: self.db)
        self._lanes: set[str] = set()  # lanes known to have their row in outbox_lanes
        self._ended_asked = 0  # ends handed to the writer so far …
        self._ended_written = 0  # … and how many of them are in the table
        self._written = asyncio.Event()

    @property
    def db(self) -> PgBridge:
        return self._store._open()

    lane_of = staticmethod(lane_of)

    def attach(self, transport) -> None:
        transport.pace = PgPace(self, transport)
        self.drainer = Drainer(self, transport)

    # --- start and stop ---------------------------------------------------------------------
    def load(self) -> None:
        """Nothing to read: the rows are in the table, and drained from there."""

    async def start(self) -> None:
        self._written = asyncio.Event()
        self._task = asyncio.create_task(self._writer(), name="outbox-writer")
        if self.drainer is not None:
            await self.drainer.start()

    async def close(self) -> None:
        if self.drainer is not None:
            await self.drainer.stop(self)
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None

    # --- keeping ---------------------------------------------------------------------------
    def _next_id(self) -> str:
        return "O" + uuid.uuid4().hex[:16]  # unique across the workers without asking the database

    def replay_done(self) -> None:
        """Kept: on a shared database `lost_reply` is asked while the bot runs too, whenever a worker
        takes over a message whose worker died between its record and its reply (bot.pg_inbox).
        Only the causes not yet written are held here, the rest are asked of the table."""

    def add(self, msg: Outgoing) -> None:
        fire = FIRE.get()
        msg_key = fire.key(lane_of(msg)) if fire is not None else None
        super().add(msg)
        msg.fire_key = msg_key

    def finish(self, msg: Outgoing, result: str) -> None:
        super().finish(msg, result)
        if msg.kept is not None and msg.kept.done() and msg.kept.result():
            self._ended_asked += 1

    async def ended_written(self) -> None:
        """Wait until every end handed over so far is in the table (a lane is let go only then:
        its next holder must not find a sent message still queued)."""
        target = self._ended_asked
        while self._ended_written < target:
            self._wake.set()
            written = self._written
            await written.wait()

    def closing(self) -> None:
        if self.drainer is not None:
            self.drainer.closing = True

    async def not_sent(self, msg: Outgoing) -> None:
        """The call was refused (bot.delivery): the row is no longer "tried"."""
        msg.tried = False
        try:
            await self.db.arun(lambda c: c.execute("UPDATE outbox SET tried = false WHERE seq = $1", msg.seq))
        except DB_ERRORS as e:
            # Left marked: a takeover then treats it as possibly sent (never twice, maybe not at all).
            logger.warning("outbox: could not mark {} as not sent ({})", msg.describe(), type(e).__name__)

    async def more(self, key: str) -> None:
        """The recipient's cap is reached: rows added since (by any worker) join its queue now."""
        if self.drainer is not None:
            await self.settled()  # this worker's own, added a moment ago, among them
            await self.drainer.top_up(key)

    async def drained(self) -> bool:
        """True when this worker holds no lane and found none to claim (bot.transport's flush)."""
        await self.settled()
        if self.drainer is None:
            return True
        await self.drainer.round()
        return not self.drainer.held

    def unsent(self) -> list[Outgoing]:
        return []  # the lanes' holders send them, whichever worker kept them

    def files_waiting(self) -> int:
        return self.db.run(lambda c: c.fetchval("SELECT count(*) FROM outbox WHERE blob IS NOT NULL"))

    async def _writer(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            new, self._new = self._new, []
            ended, self._ended = self._ended, []
            asked = self._ended_asked
            if not new and not ended:
                if self._closing:
                    return
                continue
            self._writing = new
            while True:
                try:
                    lanes = await self.db.arun(lambda c: self._write_rows(c, new, ended))
                    break
                except DB_ERRORS as e:
                    # Never "sent anyway": a message not in the table would never be drained.
                    self.write_failures += 1
                    logger.error("outbox: could not write {} message(s) and {} result(s) to PostgreSQL ({}); "
                                 "trying again in {:g} s", len(new), len(ended), type(e).__name__, RETRY)
                    if self._closing and self.write_failures > 3:
                        logger.error("outbox: stopping with {} message(s) not kept: they are not sent", len(new))
                        lanes = set()
                        break
                    await asyncio.sleep(RETRY)
            self._writing = []
            for m in new:
                if not m.kept.done():
                    m.kept.set_result(True)
                self._causes.discard(m.cause)  # asked of the table from now on
            self._lanes |= lanes
            self._ended_written = asked
            self._written.set()
            self._written = asyncio.Event()
            if lanes and self.drainer is not None:
                self.drainer.wake(lanes)
            if self._closing:
                self._wake.set()

    async def _write_rows(self, conn: asyncpg.Connection, new: list[Outgoing],
                          ended: list[tuple[Outgoing, str]]) -> set[str]:
        now = self._wall()
        lanes: set[str] = set()
        async with conn.transaction():
            if new:
                cols: list[list] = [[] for _ in range(9)]
                for m in new:
                    doc = self._record(m)
                    blob = bytes(m.content) if doc.pop("b", None) else None
                    reply = m.cause is not None or m.channel == "answer"
                    for col, value in zip(cols, (m.id, lane_of(m), m.fire_key, reply, m.cause, m.created, m.until,
                                                 dumps(doc).decode(), blob)):
                        col.append(value)
                seqs = {r["id"]: r["seq"] for r in await conn.fetch(_INSERT, *cols)}
                for m in new:
                    if m.id not in seqs:
                        logger.info("outbox: {} was kept by an earlier run of the same job; not sent again",
                                    m.describe())
                        continue
                    m.seq = seqs[m.id]
                    lanes.add(lane_of(m))
            fresh = sorted(lanes - self._lanes)
            if fresh:
                await conn.executemany("INSERT INTO outbox_lanes (lane) VALUES ($1) ON CONFLICT DO NOTHING",
                                       [(lane,) for lane in fresh])
            if ended:
                await conn.executemany(_END, [
                    (m.id, result, now, m.digest or None, m.dedupe if m.digest else None, self.holder,
                     m.sent_at or None) for m, result in ended])
            if lanes:
                await conn.execute("SELECT pg_notify($1, '')", CHANNEL)
        return lanes
