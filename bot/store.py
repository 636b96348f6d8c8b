"""The Store: with bot.store_files (its files), the only module that knows TinyDB.

Layout under data_dir/db:
  main/<table>/<part>.json  long-lived tables (problems, leave, meta, job runs), split in parts
                            so a checkpoint rewrites only what changed (bot.store_main)
  2026-W48/<table>.json     one shard per ISO week and table for the busy ones (reports, checkins)
  2026-W48/<table>.counts   what `gridbot stats` counts in it, written with it (bot.week_counts)
  2026-W48/inbox.jsonl      raw messages and their done marks (inbox_done.jsonl), appended at
                            each checkpoint and not held in memory (bot.store_cold)
  2026-W48/checkins.digest  what older weeks' check-ins are asked for (streaks, photo duplicates),
                            made from the shard when missing or stale (bot.checkin_digest)
  journal/*.log             every change since the last checkpoint, fsynced before it is acknowledged
  checkpoint.json           the last journal sequence number contained in the shards

Only this week is loaded before the bot answers (with the cyclic GC off: parsing makes no cycles,
and the collector walking everything parsed so far was most of a large start-up), last week in a
thread right after (bot.store_build), older check-ins as digests (bot.store_digest); older
documents load on first use, and in a bot that runs for months the weeks that fall out of the
window leave memory once written, so start-up and memory stay flat as history grows.

TinyDB rewrites a whole table on every insert, so we never write one record at a time: changes
go to the journal (the durable record) and to memory, and a background checkpoint writes the
dirty shards whole, atomically (temp file, fsync, rename, fsync of the folder), then drops the
journal segments it covered. Other processes (gridbot stats/export/jobs) open the store read-only
and replay the journal, so they see every acknowledged change while the bot runs.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from datetime import date, timedelta
from typing import Any, Iterable

from loguru import logger

from bot.background import cancel_and_wait
from bot.clock import iso_week, week_bounds
from bot.day_index import DayIndex
from bot.store_cold import COLD, ColdTables
from bot.journal import Journal, dumps, fsync_dir, list_segments, loads, read_segment, segment_number
from bot.store_files import atomic_file, atomic_write, no_cyclic_gc, remove_leftovers
from bot.store_build import ID_NUMBER, INDEXED, WEEK_SHARD, BuiltTable, build_table
from bot.job_fires import LocalFires
from bot.store_digest import StoreDigests
from bot.store_main import WEEK_BLOCK, MainParts, tables_on_disk
from bot.week_counts import write_week_counts
from bot.store_reads import MAIN, StoreReads

# atomic_file and atomic_write are used through this module by the photo and document writers,
# no_cyclic_gc by the documents that parse old weeks.
__all__ = ["MAIN", "Store", "atomic_file", "atomic_write", "no_cyclic_gc"]

READ_ATTEMPTS = 100  # a read takes milliseconds to a second; checkpoints come every 10 s


class Store(LocalFires, StoreDigests, StoreReads):
    def __init__(self, data_dir: Path, *, readonly: bool = False, flush_interval: float = 10.0):
        self.data_dir = Path(data_dir)
        self.db_dir = self.data_dir / "db"
        self.journal_dir = self.db_dir / "journal"
        self.readonly = readonly
        self.flush_interval = flush_interval
        # shard -> table -> key -> doc; docs are replaced, never mutated in place.
        self._shards: dict[str, dict[str, dict[str, dict]]] = {}
        self._dirty: set[tuple[str, str]] = set()
        self._counters: dict[str, int] = {}
        self._checkpoint = 0
        self._files: dict[str, set[str]] = {}  # shard -> tables on disk
        # (table, field) -> shard -> value -> ids. Which shard holds a key is not kept: a search of
        # the twenty-odd shards in memory is cheap, a dict entry per document is not.
        self._index: dict[tuple[str, str], dict[str, dict[Any, set[str]]]] = {
            (t, f): {} for t, fields in INDEXED.items() for f in fields}
        self._loaded: set[tuple[str, str]] = set()
        self._holding: dict[str, list[str]] = {}  # table -> shards holding it in memory (for _locate)
        self._unloaded: dict[str, set[str]] = {}  # table -> shards holding it on disk, not read yet
        # Who checked in, what was reported, per day and grid; open problems per grid.
        self.days = DayIndex()
        self._light: set[tuple[str, str]] = set()  # (shard, "checkins") in the day index from a digest
        self.digest_reads = 0  # digests (or shards, for want of one) read for the day index
        self._digester: asyncio.Task | None = None
        self._stopping = False
        # Raw messages and done marks: appended to disk, not held in memory (bot.store_cold).
        self._cold = ColdTables(self.db_dir, readonly)
        self._main = MainParts(self.db_dir / MAIN)  # which parts of the main tables changed
        self._weeks: dict[str, MainParts] = {}  # the same, for each week shard's tables
        self._last_seq = 0
        self._keep_weeks: int | None = None  # the recent window, from load()
        self._today: date | None = None
        self.journal: Journal | None = None
        self._flusher: asyncio.Task | None = None
        self._flush_lock: asyncio.Lock | None = None

    # --- loading -------------------------------------------------------------------
    def load(self, recent_weeks: int | None = 14, today: date | None = None) -> None:
        """Load main and the last `recent_weeks` week shards (all when None), then replay the
        journal on top. Other shards load when first read."""
        if not self.readonly:
            self.db_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(self.data_dir, 0o700)
            remove_leftovers(self.db_dir)
        # A reader beside a running bot: a checkpoint that completes during the read replaces
        # shards and deletes the journal segments it covers, so the read may hold neither the old
        # nor the new copy of some records. Such a read is thrown away and done again.
        for attempt in range(READ_ATTEMPTS):
            mark = self._checkpoint_mark()
            try:
                with no_cyclic_gc():
                    self._load_once(recent_weeks, today or date.today())
                if self._checkpoint_mark() == mark:
                    return
            except FileNotFoundError:  # a segment or shard went away under the read
                if attempt == READ_ATTEMPTS - 1:
                    raise
            self.__init__(self.data_dir, readonly=self.readonly, flush_interval=self.flush_interval)  # from nothing
            time.sleep(0.002 * attempt)
        raise RuntimeError(f"{self.db_dir}: checkpoints kept changing during {READ_ATTEMPTS} reads")

    def _checkpoint_mark(self) -> tuple | None:
        """Which checkpoint is on disk: each one is a new file (atomic rename), so its inode and
        time change even when its content would not."""
        try:
            st = os.stat(self.db_dir / "checkpoint.json")
            return st.st_ino, st.st_mtime_ns, (self.db_dir / "checkpoint.json").read_bytes()
        except FileNotFoundError:
            return None

    def _load_once(self, recent_weeks: int | None, today: date) -> None:
        self._keep_weeks = recent_weeks
        self._today = today
        cp = self.db_dir / "checkpoint.json"
        self._checkpoint = loads(cp.read_bytes())["seq"] if cp.exists() else 0
        self._files = {}
        if self.db_dir.exists():
            for p in self.db_dir.iterdir():
                if p.is_dir() and (p.name == MAIN or WEEK_SHARD.match(p.name)):
                    # Whole files, cold tables' logs, and folders of parts (bot.store_main).
                    self._files[p.name] = tables_on_disk(p) | {f.stem for f in p.iterdir() if f.suffix == ".jsonl"}
        self._read_start_window()
        counters = self._shards.get(MAIN, {}).get("meta", {}).get("counters", {})
        self._counters = {k: v for k, v in counters.items() if k != "id" and isinstance(v, int)}
        last = self._checkpoint
        for seg in list_segments(self.journal_dir):
            for rec in read_segment(seg):
                if rec["s"] <= self._checkpoint:
                    continue
                for op in rec["ops"]:
                    self._apply(op)
                last = max(last, rec["s"])
        self._last_seq = last

    def _ensure(self, shard: str, table: str) -> dict[str, dict]:
        """The in-memory table of a shard, read from disk on first use."""
        tables = self._shards.setdefault(shard, {})
        if (shard, table) in self._loaded:
            return tables.setdefault(table, {})
        docs = self._read_docs(shard, table) if table in self._files.get(shard, ()) else {}
        return self._adopt(shard, table, build_table(None, table, shard, INDEXED.get(table, ()), docs=docs))

    def _read_docs(self, shard: str, table: str) -> dict[str, dict]:
        # In parts (bot.store_main), or one whole file of the earlier layout, or both
        # (bot.store_pg: from the database).
        return self._parts(shard).read(table)

    def _parts(self, shard: str) -> MainParts:
        """What changed in a shard's tables, by part: a checkpoint writes only those parts."""
        if shard == MAIN:
            return self._main
        parts = self._weeks.get(shard)
        if parts is None:
            parts = self._weeks[shard] = MainParts(self.db_dir / shard, WEEK_BLOCK, convert=False)
        return parts

    def _adopt(self, shard: str, table: str, built: BuiltTable) -> dict[str, dict]:
        """Hold a shard table built by bot.store_build (here or in a thread): O(grids)."""
        if table == "checkins":
            self._drop_light(shard)
        self._loaded.add((shard, table))
        self._holding.setdefault(table, []).append(shard)
        self._unloaded.get(table, set()).discard(shard)
        self._shards.setdefault(shard, {})[table] = built.docs
        for field, by_value in built.index.items():
            self._index[(table, field)][shard] = by_value
        self.days.take(built.days)
        for prefix, n in built.top.items():
            if n > self._counters.get(prefix, 0):
                self._counters[prefix] = n
        return built.docs

    def _index_add(self, table: str, shard: str, doc: dict) -> None:
        for field in INDEXED.get(table, ()):
            self._index[(table, field)].setdefault(shard, {}).setdefault(doc.get(field), set()).add(doc["id"])
        self.days.add(table, shard, doc)

    def _index_remove(self, table: str, shard: str, doc: dict) -> None:
        for field in INDEXED.get(table, ()):
            ids = self._index[(table, field)].get(shard, {}).get(doc.get(field))
            if ids is not None:
                ids.discard(doc["id"])
        self.days.remove(table, shard, doc)

    def _unload(self, shard: str, table: str) -> None:
        """Let a written shard table go from memory (read again from disk when next asked):
        whole per-shard structures are dropped, so it costs O(grids), not O(documents)."""
        self._shards.get(shard, {}).pop(table, None)
        self._loaded.discard((shard, table))
        if shard in self._holding.get(table, ()):
            self._holding[table].remove(shard)
        self._unloaded.setdefault(table, set()).add(shard)
        self._parts(shard).forget(table)
        for field in INDEXED.get(table, ()):
            self._index[(table, field)].pop(shard, None)
        if table == "checkins" and not self.readonly:
            self._light.add((shard, table))  # its aggregates are what its digest would give
        else:
            self.days.drop(shard, table)

    def _bump_counter(self, key: str) -> None:
        m = ID_NUMBER.match(key)
        if m:
            prefix, n = m.group(1), int(m.group(2))
            if n > self._counters.get(prefix, 0):
                self._counters[prefix] = n

    # --- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        if self.readonly:
            raise RuntimeError("a read-only store cannot start")
        self._flush_lock = asyncio.Lock()
        self.journal = Journal(self.journal_dir, start_seq=self._last_seq)
        await self.journal.start()
        self._flusher = asyncio.create_task(self._flush_loop(), name="store-flusher")
        self._stopping = False
        self._digester = asyncio.create_task(self._warm_all(), name="store-warm-up")

    async def close(self) -> None:
        if self._digester:
            self._stopping = True
            try:
                await self._digester  # it stops after the shard it is reading
            except Exception as e:  # what it did not read is read when asked
                logger.warning("warming up the store's older weeks failed: {}", e)
            self._digester = None
        if self._flusher:
            await cancel_and_wait(self._flusher)
            self._flusher = None
        if self.journal:
            try:
                await self.checkpoint()
            except OSError as e:
                # The journal holds every change and is replayed at the next start.
                logger.error("final checkpoint failed: {}", e)
            await self.journal.close()
            self.journal = None

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            if self._dirty:
                try:
                    await self.checkpoint()
                except OSError as e:
                    # The journal still holds everything; try again next round.
                    logger.error("checkpoint failed: {}", e)

    async def checkpoint(self) -> None:
        """Write dirty shards atomically, then drop the journal segments they cover."""
        if not self.journal or not self._flush_lock:
            return
        async with self._flush_lock:
            if not self._dirty:
                return
            finished, seq = await self.journal.rotate()
            dirty, self._dirty = self._dirty, set()
            self._ensure(MAIN, "meta")["counters"] = {
                "id": "counters", **self._counters}
            dirty.add((MAIN, "meta"))
            self._main.touch("meta", "counters")
            # Week shards: the changed parts of their tables only (bot.store_main).
            snapshot = {s: parts for s, p in self._weeks.items() if (parts := p.take(self._shards.get(s, {})))}
            main_parts = self._main.take(self._shards.get(MAIN, {}))
            appends = self._cold.pending()
            try:
                await asyncio.to_thread(self._write_shards, snapshot, seq, finished, appends, main_parts)
            except BaseException:
                self._dirty |= dirty
                self._main.untake(main_parts)
                for shard, parts in snapshot.items():
                    self._weeks[shard].untake(parts)
                raise
            for shard, parts in [(MAIN, main_parts), *snapshot.items()]:
                self._parts(shard).written(parts)
                for table, _ in parts:
                    self._files.setdefault(shard, set()).add(table)
            for (shard, table), docs in appends.items():
                self._cold.appended(shard, table, docs)
                self._files.setdefault(shard, set()).add(table)
            self._let_go()

    def _let_go(self) -> None:
        """A bot that runs for months: weeks that fell out of the recent window since start leave
        memory once written (read again from disk if ever asked), and so do the message ids of
        all but the last two weeks (a resend comes within seconds)."""
        weeks = [s for s in self._shards if WEEK_SHARD.match(s)]
        if self._keep_weeks is None or not weeks:
            return
        newest = week_bounds(max(weeks))[0]
        for shard, table in sorted(self._loaded):
            horizon = iso_week(newest - timedelta(weeks=self._window(table) or 0))
            if WEEK_SHARD.match(shard) and shard < horizon and (shard, table) not in self._dirty:
                self._unload(shard, table)
        self._let_go_light(newest)
        self._cold.forget_before(iso_week(newest - timedelta(weeks=1)))

    def _write_shards(self, snapshot: dict, seq: int, finished: Path | None, appends: dict | None = None,
                      main_parts: dict | None = None) -> None:
        self._cold.append_all(appends or {})
        for shard, parts in snapshot.items():
            self._weeks[shard].write(parts)
            for (table, part), docs in parts.items():
                write_week_counts(self.db_dir / shard, table, docs, part)
        self._main.write(main_parts or {})
        atomic_write(self.db_dir / "checkpoint.json", dumps({"seq": seq}))
        if finished is not None:
            for seg in list_segments(self.journal_dir):
                if segment_number(seg) <= segment_number(finished):
                    seg.unlink()
            fsync_dir(self.journal_dir)

    # --- writing -------------------------------------------------------------------
    async def next_id(self, prefix: str) -> str:
        # Async because the PostgreSQL store (bot.store_pg) takes its numbers from a sequence.
        return self.next_local_id(prefix)

    def next_local_id(self, prefix: str) -> str:
        """A number only this process hands out (the outbox's own store, one per process)."""
        n = self._counters.get(prefix, 0) + 1
        self._counters[prefix] = n
        return f"{prefix}{n}"

    async def put(self, table: str, doc: dict, shard: str | None = None) -> dict:
        await self.put_many([(table, doc, shard)])
        return doc

    async def put_many(self, entries: Iterable[tuple[str, dict, str | None]]) -> None:
        """Durably store whole documents (keyed by doc["id"]), all or none."""
        if self.journal is None:
            raise RuntimeError("store is not started (read-only?)")
        ops = []
        for table, doc, shard in entries:
            key = doc["id"]
            shard = shard or self.shard_of(table, key) or MAIN
            ops.append({"t": table, "w": shard, "d": doc})
        def apply() -> None:
            for op in ops:
                self._apply(op)
        await self.journal.append({"ops": ops}, on_durable=apply)

    def _apply(self, op: dict) -> None:
        table, shard, doc = op["t"], op["w"], op["d"]
        key = doc["id"]
        if table in COLD:
            self._cold.put(shard, table, doc)
            self._dirty.add((shard, table))
            return
        docs = self._ensure(shard, table)
        old = shard if key in docs else self._locate(table, key)
        if old:
            previous = self._shards[old].get(table, {}).get(key)
            if previous is not None:
                self._index_remove(table, old, previous)
            if old != shard:
                self._shards[old].get(table, {}).pop(key, None)
                self._dirty.add((old, table))
        self._index_add(table, shard, doc)
        docs[key] = doc
        self._dirty.add((shard, table))
        self._parts(shard).touch(table, key)
        if old and old != shard:
            self._parts(old).touch(table, key)
        self._bump_counter(key)
