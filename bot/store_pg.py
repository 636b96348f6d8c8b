"""The Store on PostgreSQL: the same in-memory read side, PostgreSQL instead of journal and shards.

What is held in memory and how it is read (StoreReads, the field indexes, the DayIndex) is the
file store's, unchanged: it is this process's cache. What changes is where a change goes:
`put_many` is one transaction (upsert the documents, insert the raw messages with ON CONFLICT DO
NOTHING, add a row to the `changes` feed, NOTIFY), and only after its COMMIT is the change applied
to memory and the caller told it is durable. PostgreSQL's WAL replaces the journal; there are no
checkpoint files. Loading reads the same window as the file store (this week before the bot
answers, last week right after, older weeks on first use), from the week's partition.

Every query goes through bot.pg_bridge (a thread with its own loop and pool), so the reads the
handlers make synchronously stay synchronous. Ids come from PostgreSQL sequences (bot.pg_schema),
so two processes on one database never hand out the same R/C/P number.
"""

from __future__ import annotations

import asyncio
import time
from datetime import date
from pathlib import Path
from typing import Iterable, Iterator

import asyncpg
from loguru import logger

from bot.journal import dumps, loads
from bot.pg_bridge import PgBridge
from bot.pg_cold import PgCold
from bot.background import cancel_and_wait
from bot.pg_feed import CHANNEL, Follower, feed_start
from bot.pg_jobs import PgFires
from bot.pg_counts import fold as fold_counts, week_counts
from bot.pg_schema import ensure_partition, ensure_sequence, migrate, next_number
from bot.store import Store
from bot.store_build import INDEXED, WEEK_SHARD, BuiltTable, build_table
from bot.store_cold import COLD
from bot.store_files import no_cyclic_gc, share_values
from bot.store_reads import MAIN, UNSNAPPED
from bot.store_view import StoreView


async def fetch_table(conn: asyncpg.Connection, shard: str, table: str) -> dict[str, dict]:
    rows = await conn.fetch("SELECT id, doc::text FROM docs WHERE shard = $1 AND tbl = $2", shard, table)
    return {r[0]: loads(r[1]) for r in rows}


class PgStoreView(StoreView):
    """A snapshot whose tables not in memory are read from PostgreSQL (in the caller's thread)."""

    def __init__(self, bridge: PgBridge, *args, **kw):
        super().__init__(*args, **kw)
        self._bridge = bridge

    def _read_table(self, shard: str, table: str) -> dict[str, dict]:
        return self._bridge.run(lambda c: fetch_table(c, shard, table))

    def _stream(self, shard: str, table: str) -> Iterator[dict]:
        return iter(self._read_table(shard, table).values())


class PgStore(PgFires, Store):
    backend = "postgres"

    def __init__(self, data_dir: Path, dsn: str, *, readonly: bool = False, flush_interval: float = 10.0):
        super().__init__(data_dir, readonly=readonly, flush_interval=flush_interval)
        self.dsn = dsn
        self._bridge: PgBridge | None = None
        self._cold = PgCold(self.db_dir, self._query)
        self._partitions: set[str] = {MAIN}
        self._sequences: dict[str, str] = {}
        self._started = False
        self._sweeper: asyncio.Task | None = None
        self._main = _NO_PARTS
        self._last_put: asyncio.Future | None = None  # the latest put_many, answered in call order
        self.last_change = 0  # the feed's newest seq this process wrote or read
        self._feed: Follower | None = None  # other processes' changes, followed while started

    # --- connection ------------------------------------------------------------------
    def _open(self) -> PgBridge:
        if self._bridge is None:
            self._bridge = PgBridge(self.dsn)
            try:
                # Readers too (gridbot stats before the bot ever ran): an empty database reads
                # as an empty data folder does, and the schema is the bot's own anyway.
                applied = self._bridge.run(migrate)
                if applied:
                    logger.info("PostgreSQL schema: applied {}", ", ".join(applied))
            except BaseException:
                self._bridge.close()
                self._bridge = None
                raise
        return self._bridge

    def _query(self, sql: str, *args) -> list:
        return self._open().run(lambda c: c.fetch(sql, *args))

    # --- loading -----------------------------------------------------------------------
    def load(self, recent_weeks: int | None = 14, today: date | None = None) -> None:
        bridge = self._open()
        self._keep_weeks = recent_weeks
        self._today = today or date.today()
        # Where following starts, taken before the tables are read: what commits meanwhile is
        # both loaded and followed (applied twice, harmlessly), never neither.
        self.last_change = bridge.run(feed_start)
        rows = bridge.run(lambda c: c.fetch("SELECT shard, tbl FROM shard_tables"))
        self._files = {}
        for shard, table in rows:
            self._files.setdefault(shard, set()).add(table)
        self._partitions |= {s for s in self._files if WEEK_SHARD.match(s)}
        with no_cyclic_gc():
            self._read_start_window()

    def _fetch(self, shard: str, table: str) -> dict[str, dict]:
        docs = self._open().run(lambda c: fetch_table(c, shard, table))
        share_values(docs.values(), {})
        return docs

    def _read_docs(self, shard: str, table: str) -> dict[str, dict]:
        return self._fetch(shard, table)

    def ensure(self, shard: str, table: str) -> None:
        # No digests here: older weeks of check-ins are read as documents, like any table.
        if (shard, table) not in self._loaded and table in self._files.get(shard, ()):
            self._ensure(shard, table)

    def _unload(self, shard: str, table: str) -> None:
        super()._unload(shard, table)
        if (shard, table) in self._light:  # no digest to stand for it: read again when asked
            self._light.discard((shard, table))
            self.days.drop(shard, table)

    def _stream_week(self, shard: str, table: str) -> Iterator[dict]:
        return iter(self._open().run(lambda c: fetch_table(c, shard, table)).values())

    def shard_of(self, table: str, key: str, deep: bool = False) -> str | None:
        if table in COLD:
            return self._cold.shard_of(table, key)
        return super().shard_of(table, key, deep)

    def _view(self, tables: dict, unread: dict) -> StoreView:
        return PgStoreView(self._open(), self.db_dir, tables, unread, UNSNAPPED)

    def counted(self, week: str, table: str) -> dict[str, int]:
        """`gridbot stats`' numbers for a week's table, counted by the server (bot.pg_counts)."""
        return self._open().run(lambda c: week_counts(c, week, table))

    def missing_digests(self) -> list[Path]:
        return []

    # --- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        if self.readonly:
            raise RuntimeError("a read-only store cannot start")
        self._open()
        self._started = True
        self._stopping = False
        self._digester = asyncio.create_task(self._warm_all(), name="store-warm-up")
        self._sweeper = asyncio.create_task(self._sweep_loop(), name="store-let-go")
        if self._feed is None:
            self._feed = Follower(self, self.last_change)
        await self._feed.start()

    async def _warm_all(self) -> None:
        await self._warm_recent()  # no digests of older weeks: they are read when asked

    async def _build_later(self, shard: str, table: str) -> tuple[BuiltTable, dict]:
        # In a thread: the rows are fetched by the bridge, parsed and indexed here, off the loop.
        # No parts to tell about: the database is written a document at a time. Changes the
        # follower sees meanwhile are fetched again once the table is held.
        feed = self._feed
        if feed is not None:
            feed.building[(shard, table)] = set()
        try:
            return await asyncio.to_thread(lambda: (build_table(None, table, shard, INDEXED.get(table, ()),
                                                                docs=self._fetch(shard, table)), {}))
        finally:
            if feed is not None:
                feed.refetch |= {(shard, table, key) for key in feed.building.pop((shard, table), ())}
                feed.wake()

    def _parts(self, shard: str) -> "_NoParts":
        return _NO_PARTS

    async def _sweep_loop(self) -> None:
        # What the file store's checkpoint does besides writing: weeks that fell out of the
        # window leave memory (read again from the database if ever asked).
        folded = time.monotonic()
        while True:
            await asyncio.sleep(self.flush_interval)
            self._let_go()
            if time.monotonic() - folded > FOLD_EVERY:
                folded = time.monotonic()
                try:  # each write added a row to its week's counts: summed, so stats reads few
                    await self._open().arun(fold_counts)
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncio.TimeoutError) as e:
                    logger.warning("week counts not folded ({}: {}), tried again in an hour", type(e).__name__, e)

    async def checkpoint(self) -> None:
        """Nothing to write: every change was committed before it was applied."""

    async def close(self) -> None:
        if self._feed is not None:
            await self._feed.stop()
        await cancel_and_wait(self._sweeper)
        self._sweeper = None
        await super().close()
        self._started = False
        if self._bridge is not None:
            await asyncio.to_thread(self._bridge.close)
            self._bridge = None

    def stats(self) -> dict:
        return {**super().stats(), "journal_seq": self.last_change,
                "followed": self._feed.applied if self._feed else 0}

    # --- writing -----------------------------------------------------------------------
    async def next_id(self, prefix: str) -> str:
        above = self._counters.get(prefix, 0)
        bridge = self._open()
        name = self._sequences.get(prefix)
        if name is None:
            name = self._sequences[prefix] = await bridge.arun(lambda c: ensure_sequence(c, prefix))
        n = await bridge.arun(lambda c: next_number(c, name, above))
        if n > self._counters.get(prefix, 0):
            self._counters[prefix] = n
        return f"{prefix}{n}"

    async def put_many(self, entries: Iterable[tuple[str, dict, str | None]]) -> None:
        """Durably store whole documents (keyed by doc["id"]), all or none: one transaction."""
        if self.readonly or not self._started:
            raise RuntimeError("store is not started (read-only?)")
        ops, rows, moved, messages = [], [], [], []
        for table, doc, shard in entries:
            key = doc["id"]
            shard = shard or self.shard_of(table, key) or MAIN
            ops.append({"t": table, "w": shard, "d": doc})
            if table in COLD:
                messages.append((table, key, shard, dumps(doc).decode()))
                continue
            self._ensure(shard, table)  # as _apply will: the move below is found in memory
            old = self._locate(table, key)
            if old and old != shard:
                moved.append((old, table, key))
            rows.append((shard, table, key, dumps(doc).decode()))
        pairs = sorted({(op["w"], op["t"]) for op in ops} - {(s, t) for s, ts in self._files.items() for t in ts})
        feed = dumps([[op["t"], op["w"], op["d"]["id"]] for op in ops] +
                     [["-" + t, s, k] for s, t, k in moved]).decode()
        new_weeks = sorted({s for s, _ in pairs if s not in self._partitions})

        # The last version of a document named twice (one statement cannot upsert a row twice),
        # and rows in key order, so two writers lock shared rows in the same order.
        docs = sorted({(s, t, k): (s, t, k, text) for s, t, k, text in rows}.values())
        args = (*_columns(docs, 4), *_columns(sorted(moved), 3), *_columns(messages, 4), *_columns(pairs, 2),
                feed, CHANNEL)

        async def write(conn: asyncpg.Connection) -> tuple[int, int]:
            for shard in new_weeks:
                await ensure_partition(conn, shard)
            # One round trip: the whole transaction is a server-side function (0060_counts.sql),
            # which also keeps the week's counts (bot.pg_counts).
            for attempt in range(DEADLOCK_TRIES):
                try:
                    seq, xid = await conn.fetchrow(f"SELECT * FROM gridbot_put({_PARAMS})", *args)
                    return seq, int(xid)
                except asyncpg.DeadlockDetectedError:
                    # Two writers moving the same documents between weeks at once (the upsert
                    # and the delete are two statements): the server rolled this one back whole,
                    # so it is simply written again.
                    if attempt == DEADLOCK_TRIES - 1:
                        raise
            raise AssertionError("unreachable")

        # Transactions on several connections may commit in any order; callers are answered
        # (and memory changed) in the order they called, as the journal's writer does: the
        # inbox dispatches each sender's messages in the order they were acknowledged.
        before, mine = self._last_put, asyncio.get_running_loop().create_future()
        self._last_put = mine
        follower = self._feed
        follower.puts_called += 1
        try:
            try:
                seq, xid = await self._open().arun(write)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, asyncio.TimeoutError) as e:
                # Not committed: the caller answers as for a failed disk write (503, WeCom resends).
                raise OSError(f"PostgreSQL refused the write: {type(e).__name__}: {e}") from e
            finally:
                if before is not None and not before.done():
                    await asyncio.shield(before)
            self._partitions.update(new_weeks)
            self.last_change = max(self.last_change, seq)
            for shard, table in pairs:
                self._files.setdefault(shard, set()).add(table)
            follower.committed(seq)
            for op in ops:
                key = op["d"]["id"]
                if op["t"] not in COLD and follower.stale_own(op["t"], key, xid):
                    continue  # another process's later version of it is applied already
                self._apply(op)
                follower.wrote(op["t"], key, xid)
            # Nothing is waiting to be written, unlike the file store's dirty shards.
            self._dirty.clear()
        finally:
            follower.answered()
            mine.set_result(None)


DEADLOCK_TRIES = 3
FOLD_EVERY = 3600.0  # seconds between folds of the week counts' added rows
_PARAMS = ", ".join(f"${i}" for i in range(1, 16))


def _columns(rows: list[tuple], width: int) -> list[list[str]]:
    """Rows as the columns gridbot_put takes (arrays of equal length)."""
    return [list(col) for col in zip(*rows)] if rows else [[] for _ in range(width)]


class _NoParts:
    """The file store's record of its tables' changed parts (bot.store_main): nothing to record
    here, as each change is written to the database as it happens."""

    def touch(self, table: str, key: str) -> None:
        pass

    def adopt(self, table: str, seen: dict) -> None:
        pass

    def forget(self, table: str) -> None:
        pass


_NO_PARTS = _NoParts()
