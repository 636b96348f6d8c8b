"""The changes feed followed: what other processes on the same database wrote, applied to this one's memory.

Every PgStore.put_many commits one row into `changes` (seq, the writing transaction's xid, the
ops' (table, shard, id)) and NOTIFYs gridbot_changes. The follower wakes on that notification (a
dedicated connection on the bridge's loop) or every POLL seconds, reads the changes after the last
one it resolved, fetches in the same snapshot the documents they name in tables this process
holds in memory, and applies them through Store._apply, so the field indexes and the DayIndex
follow as they do for the process's own writes. Its own changes are skipped (applied at commit).

The gap rule. `seq` is handed out before COMMIT: a transaction holding seq 11 may commit after
one holding 12. The follower never goes past a missing seq while a transaction that could still
commit it is running: the seq's holder took it after its xid (put_many asks for its xid first),
before the snapshot that showed the higher seq, so it is one of that snapshot's in-flight xids;
once none of those is running any more, the seq was rolled back and is passed over. "In flight
in that snapshot" is more than its xip: a snapshot's xmax is the newest finished xid + 1, so a
transaction that took its xid after that one finished is running and listed nowhere (seen under
load: a seq passed over as rolled back, committed a moment later, never applied). So when a hole
is first seen, an xid is taken right after the snapshot (`upto`): every transaction that could
hold the seq has a smaller xid, and the hole is waited for until none of those still runs.

Races with the process's own writes are settled by the snapshots: a fetched document is not
applied over an own write the snapshot did not see, and an own write is not applied over a
fetched document whose snapshot saw it (bot.store_pg asks `stale_own`).

`catch_up()` is for a caller that must see everything committed before it asked (the inbox, when
it takes a sender's lock: bot.pg_inbox); rounds run one at a time, and callers that asked before a
round began share it. Other processes' raw messages and done marks are handed to `on_message`
(the inbox's view of what is acknowledged and not yet handled anywhere).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import asyncpg
from loguru import logger

from bot.background import cancel_and_wait, woken
from bot.journal import loads
from bot.store_build import RECENT_BY_TABLE, WEEK_SHARD
from bot.store_cold import COLD

if TYPE_CHECKING:
    from bot.store_pg import PgStore

CHANNEL = "gridbot_changes"
POLL = 1.0  # seconds: the fallback when a notification is missed (or the listener is down)
BATCH = 2000  # changes read per round
KEEP = "1 day"  # the feed's rows older than this are deleted (see prune)
PRUNE_EVERY = 3600.0
START_LOOKBACK = 10_000  # seqs below the feed's end checked for a transaction still in flight at start
STALL_WARNING = 30.0  # seconds a missing seq may hold the follower before it is logged
# How long catch_up() waits for a transaction holding a missing seq: a store's own are short, so
# longer means one held open by hand; the caller goes on with what is applied, and says so.
CATCH_UP_WAIT = 5.0
INBOX = "inbox"


@dataclass
class Gap:
    """A missing seq as first seen: that snapshot's in-flight xids and xmax, and an xid taken just
    after it (None until taken): a transaction that could hold the seq has an xid below it."""
    xip: frozenset[int]
    xmax: int
    upto: int | None = None

    def may_commit(self, now: "Snapshot") -> bool:
        if self.xip & now.xip or self.upto is None:
            return True
        # Below `upto` and not finished as of `now`: listed in its xip, or at/after its xmax.
        return now.xmax < self.upto or any(self.xmax <= x < self.upto for x in now.xip)


@dataclass(frozen=True)
class Snapshot:
    """pg_current_snapshot(): which transactions' writes a read saw."""
    xmin: int
    xmax: int
    xip: frozenset[int]

    @classmethod
    def parse(cls, text: str) -> "Snapshot":
        xmin, xmax, xip = text.split(":")
        return cls(int(xmin), int(xmax), frozenset(int(x) for x in xip.split(",") if x))

    def sees(self, xid: int) -> bool:
        return xid < self.xmin or (xid < self.xmax and xid not in self.xip)


async def feed_start(conn: asyncpg.Connection) -> int:
    """Where a process that is about to load its tables starts following: the end of the feed
    as its snapshot sees it, or just below a seq missing there, which a transaction still running
    may commit (re-reading changes the load already holds is harmless)."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        end = await conn.fetchval("SELECT coalesce(max(seq), 0) FROM changes")
        if end == 0:
            return end
        # Not only when the snapshot lists xids in flight: one running above its xmax is listed
        # nowhere (see Gap). An old hole, long rolled back, costs re-reading the changes above it.
        hole = await conn.fetchval(
            "SELECT min(s) FROM generate_series(greatest($1::bigint - $2, 0) + 1, $1::bigint) s "
            "WHERE NOT EXISTS (SELECT 1 FROM changes WHERE seq = s)", end, START_LOOKBACK)
        return end if hole is None else hole - 1


class Follower:
    def __init__(self, store: "PgStore", start: int):
        self.store = store
        self.done = start  # every seq up to here applied, skipped as own, or known rolled back
        self.gaps: dict[int, Gap] = {}  # missing seq -> what was in flight when first seen
        self.mine: set[int] = set()  # own seqs above `done` (applied at commit)
        # (table, id) -> xid of an own write applied since this round began: a round's snapshot
        # sees every own write applied before it began (committed first), so no older entry matters.
        self.own: dict[tuple[str, str], int] = {}
        # (table, id) -> (own puts called so far, Snapshot) of a fetched version applied: it matters
        # to the own puts called before it was applied, and they are answered in call order.
        self.followed: dict[tuple[str, str], tuple[int, Snapshot]] = {}
        self._expiry: deque[tuple[int, tuple[str, str]]] = deque()
        self.puts_called = 0
        self.puts_answered = 0
        self.building: dict[tuple[str, str], set[str]] = {}  # tables read in a thread right now
        self.refetch: set[tuple[str, str, str]] = set()  # their documents changed meanwhile
        self.applied = 0  # documents of other processes applied (stats)
        self._stalled_since: float | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._listener: asyncpg.Connection | None = None
        self._pruned = 0.0
        self._stopped = False
        self._rounds: asyncio.Lock | None = None
        self._begun = 0  # rounds begun so far
        self._complete = 0  # the latest round that left nothing committed before it unread
        # (table, id, the raw message or None for a done mark): other processes' cold rows
        self.on_message: Callable[[str, str, dict | None], None] | None = None

    # --- running ---------------------------------------------------------------------
    async def start(self) -> None:
        self._wake = asyncio.Event()
        self._rounds = asyncio.Lock()
        self._stopped = False
        loop, wake = asyncio.get_running_loop(), self._wake
        bridge = self.store._open()
        try:
            self._listener = await bridge.acall(asyncpg.connect(self.store.dsn))
            await bridge.acall(self._listener.add_listener(
                CHANNEL, lambda *_: loop.call_soon_threadsafe(wake.set)))
        except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as e:
            # Following still works, a poll a second instead of at once.
            logger.warning("changes feed: LISTEN failed ({}), polling every {} s", type(e).__name__, POLL)
            await self._close_listener()
        self._task = asyncio.create_task(self._run(), name="store-follow")

    async def stop(self) -> None:
        self._stopped = True
        await cancel_and_wait(self._task)
        self._task = None
        await self._close_listener()

    async def _close_listener(self) -> None:
        conn, self._listener = self._listener, None
        await self.store._open().aclose(conn)

    async def _run(self) -> None:
        # The flag as well as the cancel: Python 3.11's wait_for can swallow a cancel that comes
        # as the event is set, and a loop that went on would keep stop() waiting forever.
        while not self._stopped:
            await woken(self._wake, POLL)
            try:
                async with self._rounds:
                    while not (await self._round())[1]:
                        if self.gaps:
                            break  # waited for at the next wake-up or poll, not here
                if time.monotonic() - self._pruned > PRUNE_EVERY:
                    await self.prune()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncio.TimeoutError) as e:
                logger.warning("changes feed: reading failed, retried in {} s: {}: {}", POLL, type(e).__name__, e)

    async def prune(self) -> int:
        """Changes older than a day go. A simple, safe rule: every running follower is seconds
        behind, one stalled for a day has logged it every round meanwhile, and a process started
        later loads the tables themselves, not the feed."""
        self._pruned = time.monotonic()
        status = await self.store._open().arun(
            lambda c: c.execute(f"DELETE FROM changes WHERE at < now() - interval '{KEEP}'"))
        return int(status.split()[-1])

    def wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def catch_up(self, wait: float = CATCH_UP_WAIT) -> bool:
        """Return once every change committed before the call is applied (False, after `wait`
        seconds, if a transaction holding a missing seq is still open then)."""
        asked = self._begun  # a round numbered above this began after the call
        end = time.monotonic() + wait
        while True:
            async with self._rounds:
                if self._complete > asked:
                    return True
                taken, complete = await self._round()
            if not complete and taken == 0:
                if time.monotonic() > end:
                    logger.warning("changes feed: caught up only to change {}: a transaction holding "
                                   "the next one is still open", self.done)
                    return False
                await asyncio.sleep(0.005)  # a missing seq whose transaction is about to end

    # --- one round ---------------------------------------------------------------------
    async def _round(self) -> tuple[int, bool]:
        """Read and apply what was committed since the last round: (changes taken, whether
        nothing committed before the round began is left unread)."""
        self._begun += 1
        number = self._begun
        refetch, self.refetch = self.refetch, set()
        self.own = {}
        try:
            snap, taken, docs, complete = await self.store._open().arun(lambda c: self._read(c, refetch))
        except BaseException:
            self.refetch |= refetch
            raise
        self._apply_round(snap, taken, docs, refetch)
        if complete:
            self._complete = number
        return len(taken), complete

    async def _read(self, conn: asyncpg.Connection, refetch: set) -> tuple:
        # On the bridge's loop: reading `_loaded` is a lookup, applying waits for the store's loop.
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            snap = Snapshot.parse(await conn.fetchval("SELECT pg_current_snapshot()::text"))
            rows = await conn.fetch("SELECT seq, ops::text FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2",
                                    self.done, BATCH)
            taken = self._contiguous(snap, rows)
            complete = len(taken) == len(rows) < BATCH
            loaded, wanted, messages = self.store._loaded, set(refetch), []
            for seq, ops in taken:
                for table, shard, key in ops:
                    pair = (shard, table.lstrip("-"))
                    if seq in self.mine:
                        continue
                    if pair in loaded or pair in self.building:
                        wanted.add((pair[0], pair[1], key))
                    elif table == INBOX and self.on_message is not None:
                        messages.append(key)
            docs = {}
            if wanted:
                shards, tables, keys = zip(*wanted)
                found = await conn.fetch(
                    "SELECT d.shard, d.tbl, d.id, d.doc::text FROM docs d JOIN unnest($1::text[], $2::text[], $3::text[]) "
                    "AS w(shard, tbl, id) ON d.shard = w.shard AND d.tbl = w.tbl AND d.id = w.id",
                    list(shards), list(tables), list(keys))
                docs = {(r[0], r[1], r[2]): loads(r[3]) for r in found}
            if messages:
                found = await conn.fetch("SELECT shard, id, doc::text FROM messages WHERE tbl = $1 AND id = ANY($2)",
                                         INBOX, messages)
                docs.update({(r[0], INBOX, r[1]): loads(r[2]) for r in found})
        fresh = [g for g in self.gaps.values() if g.upto is None]
        if fresh:  # after the snapshot, outside its read-only transaction (Gap)
            upto = int(await conn.fetchval("SELECT pg_current_xact_id()::text"))
            for g in fresh:
                g.upto = upto
        return snap, taken, docs, complete

    def _contiguous(self, snap: Snapshot, rows: list) -> list[tuple[int, list]]:
        """The rows up to the first seq missing that a running transaction may still commit."""
        taken, expected = [], self.done + 1
        for seq, ops in rows:
            while expected < seq:
                if self.gaps.setdefault(expected, Gap(snap.xip, snap.xmax)).may_commit(snap):
                    self._stalled(expected)
                    return taken
                del self.gaps[expected]  # its transaction ended without committing it
                expected += 1
            self.gaps.pop(seq, None)
            taken.append((seq, loads(ops)))
            expected = seq + 1
        self._stalled_since = None
        return taken

    def _stalled(self, seq: int) -> None:
        now = time.monotonic()
        if self._stalled_since is None:
            self._stalled_since = now
        elif now - self._stalled_since > STALL_WARNING:
            self._stalled_since = now
            logger.warning("changes feed: waiting {} s for change {}, whose transaction is still open",
                           int(STALL_WARNING), seq)

    def _apply_round(self, snap: Snapshot, taken: list, docs: dict, refetch: set) -> None:
        # On the store's loop, between two of its own writes' applications.
        for shard, table, key in refetch:
            self._follow(snap, table, shard, key, docs)
        for seq, ops in taken:
            if seq in self.mine:
                self.mine.discard(seq)
            else:
                for table, shard, key in ops:
                    self._follow(snap, table, shard, key, docs)
            self.done = seq
        self.store.last_change = max(self.store.last_change, self.done)

    def _follow(self, snap: Snapshot, table: str, shard: str, key: str, docs: dict) -> None:
        store = self.store
        if table.startswith("-"):  # moved away from this shard (to one this process may not hold)
            self._moved_away(snap, table[1:], shard, key, docs)
            return
        if table in COLD:
            store._cold.put(shard, table, {"id": key})  # keeps a week's id set current, if held
            if self.on_message is not None:
                self.on_message(table, key, docs.get((shard, table, key)))
            return
        pair = (shard, table)
        if table not in store._files.get(shard, ()):
            store._files.setdefault(shard, set()).add(table)
            if WEEK_SHARD.match(shard):
                store._partitions.add(shard)
            if store._in_window(shard, table, RECENT_BY_TABLE):  # held, had it been there at start
                store._ensure(shard, table)  # read now, with this change: nothing to fetch
                return
            store._unloaded.setdefault(table, set()).add(shard)  # read when first asked for
        if pair in self.building:
            self.building[pair].add(key)
        if pair not in store._loaded:
            return
        doc = docs.get((shard, table, key))
        if doc is None or not self._newer(snap, table, key):
            return  # gone from here since (a later change says where), or an own write is newer
        store._apply({"t": table, "w": shard, "d": doc})
        self._followed(table, key, snap)
        self.applied += 1

    def _moved_away(self, snap: Snapshot, table: str, shard: str, key: str, docs: dict) -> None:
        store = self.store
        held = store._shards.get(shard, {}).get(table, {})
        if (shard, table) not in store._loaded or key not in held or (shard, table, key) in docs:
            return
        if not self._newer(snap, table, key):
            return
        store._index_remove(table, shard, held.pop(key))
        self._followed(table, key, snap)

    def _followed(self, table: str, key: str, snap: Snapshot) -> None:
        if self.puts_answered >= self.puts_called:
            return  # no own put in flight to be told
        self.followed[(table, key)] = (self.puts_called, snap)
        self._expiry.append((self.puts_called, (table, key)))

    def _newer(self, snap: Snapshot, table: str, key: str) -> bool:
        """Whether what the snapshot read is at least as new as this process's own last write."""
        xid = self.own.get((table, key))
        return xid is None or snap.sees(xid)

    # --- the process's own writes (bot.store_pg) ---------------------------------------------
    def committed(self, seq: int) -> None:
        if seq > self.done:
            self.mine.add(seq)

    def stale_own(self, table: str, key: str, xid: int) -> bool:
        """An own write about to be applied, older than what the follower applied already."""
        found = self.followed.get((table, key))
        return found is not None and found[1].sees(xid)

    def wrote(self, table: str, key: str, xid: int) -> None:
        self.own[(table, key)] = xid

    def answered(self) -> None:
        """An own put answered: the fetched versions applied before every put still waiting
        was called no longer matter."""
        self.puts_answered += 1
        while self._expiry and self._expiry[0][0] <= self.puts_answered:
            stamp, key = self._expiry.popleft()
            if self.followed.get(key, (None,))[0] == stamp:
                del self.followed[key]
