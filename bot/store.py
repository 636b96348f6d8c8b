"""The Store: with bot.store_files (its files), the only module that knows TinyDB.

Layout under data_dir/db:
  main/<table>.json      long-lived tables (problems, leave, meta, job runs)
  2026-W48/<table>.json  one shard per ISO week and table for the busy ones (inbox, reports, checkins)
  journal/*.log          every change since the last checkpoint, fsynced before it is acknowledged
  checkpoint.json        the last journal sequence number contained in the shards

Only recent weeks are loaded at start; older ones load on first use, so start-up and memory stay
flat as history grows.

TinyDB rewrites a whole table on every insert, so we never write one record at a time: changes
go to the journal (the durable record) and to memory, and a background checkpoint writes the
dirty shards whole, atomically (temp file, fsync, rename, fsync of the folder), then drops the
journal segments it covered. Other processes (gridbot stats/export/jobs) open the store read-only
and replay the journal, so they see every acknowledged change while the bot runs.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from pathlib import Path
from datetime import date, timedelta
from typing import Any, Callable, Iterable, Iterator

from loguru import logger

from bot.clock import iso_week
from bot.day_index import DayIndex
from bot.journal import Journal, dumps, fsync_dir, list_segments, loads, read_segment, segment_number
from bot.store_files import (AtomicJSONStorage, atomic_file, atomic_write, no_cyclic_gc, read_table,  # noqa: F401
                             remove_leftovers, write_table)
from bot.store_view import StoreView

MAIN = "main"
# Fields looked up on every message (a person's week, a grid's day): indexed per shard so the
# cost stays flat as a week fills up.
INDEXED = {"reports": ("userid", "grid"), "checkins": ("userid", "grid"),
           # The few problems not closed yet, among a year's (the ladder job, every list of them).
           "problems": ("status",)}
WEEK_SHARD = re.compile(r"^\d{4}-W\d{2}$")
_ID = re.compile(r"^([A-Za-z]+)(\d+)$")
# Raw messages and their done marks: never read by the documents built from a snapshot.
UNSNAPPED = frozenset({"inbox", "inbox_done"})
READ_ATTEMPTS = 100  # a read takes milliseconds to a second; checkpoints come every 10 s


class Store:
    def __init__(self, data_dir: Path, *, readonly: bool = False, flush_interval: float = 10.0):
        self.data_dir = Path(data_dir)
        self.db_dir = self.data_dir / "db"
        self.journal_dir = self.db_dir / "journal"
        self.readonly = readonly
        self.flush_interval = flush_interval
        # shard -> table -> key -> doc; docs are replaced, never mutated in place.
        self._shards: dict[str, dict[str, dict[str, dict]]] = {}
        self._where: dict[str, dict[str, str]] = {}  # table -> key -> shard
        self._dirty: set[tuple[str, str]] = set()
        self._counters: dict[str, int] = {}
        self._checkpoint = 0
        self._files: dict[str, set[str]] = {}  # shard -> tables on disk
        # (table, field) -> (shard, value) -> ids
        self._index: dict[tuple[str, str], dict[tuple[str, Any], set[str]]] = {
            (t, f): {} for t, fields in INDEXED.items() for f in fields}
        self._loaded: set[tuple[str, str]] = set()
        self._unloaded: dict[str, set[str]] = {}  # table -> shards holding it on disk, not read yet
        # Who checked in, what was reported, per day and grid; open problems per grid.
        self.days = DayIndex()
        self._last_seq = 0
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
        cp = self.db_dir / "checkpoint.json"
        self._checkpoint = loads(cp.read_bytes())["seq"] if cp.exists() else 0
        self._files = {}
        if self.db_dir.exists():
            for p in self.db_dir.iterdir():
                if p.is_dir() and (p.name == MAIN or WEEK_SHARD.match(p.name)):
                    self._files[p.name] = {f.stem for f in p.glob("*.json")}
        self._unloaded = {}
        for shard, tables in self._files.items():
            for table in tables:
                self._unloaded.setdefault(table, set()).add(shard)
        if recent_weeks is None:
            eager = set(self._files)
        else:
            eager = {iso_week(today - timedelta(weeks=i)) for i in range(recent_weeks + 1)}
        for shard in sorted((eager | {MAIN}) & set(self._files)):
            for table in sorted(self._files[shard]):
                self._ensure(shard, table)
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
        self._loaded.add((shard, table))
        self._unloaded.get(table, set()).discard(shard)
        docs: dict[str, dict] = {}
        if table in self._files.get(shard, ()):
            docs = read_table(self.db_dir / shard / f"{table}.json", table)
        tables[table] = docs
        where = self._where.setdefault(table, {})
        with no_cyclic_gc():
            for key, doc in docs.items():
                where[key] = shard
                self._bump_counter(key)
                self._index_add(table, shard, doc)
        return docs

    def ensure(self, shard: str, table: str) -> None:
        """Read a shard's table from disk if it is there and not read yet."""
        if (shard, table) not in self._loaded and table in self._files.get(shard, ()):
            self._ensure(shard, table)

    def has_table(self, shard: str, table: str) -> bool:
        """Whether the shard holds the table, in memory or on disk (without reading it)."""
        return table in self._files.get(shard, ()) or table in self._shards.get(shard, {})

    def _index_add(self, table: str, shard: str, doc: dict) -> None:
        for field in INDEXED.get(table, ()):
            self._index[(table, field)].setdefault((shard, doc.get(field)), set()).add(doc["id"])
        self.days.add(table, shard, doc)

    def _index_remove(self, table: str, shard: str, doc: dict) -> None:
        for field in INDEXED.get(table, ()):
            ids = self._index[(table, field)].get((shard, doc.get(field)))
            if ids is not None:
                ids.discard(doc["id"])
        self.days.remove(table, shard, doc)

    def _bump_counter(self, key: str) -> None:
        m = _ID.match(key)
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

    async def close(self) -> None:
        if self._flusher:
            self._flusher.cancel()
            try:
                await self._flusher
            except asyncio.CancelledError:
                pass
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
            self._shards.setdefault(MAIN, {}).setdefault("meta", {})["counters"] = {
                "id": "counters", **self._counters}
            dirty.add((MAIN, "meta"))
            snapshot = {(s, t): list(self._shards[s].get(t, {}).values()) for s, t in dirty}
            try:
                await asyncio.to_thread(self._write_shards, snapshot, seq, finished)
            except BaseException:
                self._dirty |= dirty
                raise

    def _write_shards(self, snapshot: dict, seq: int, finished: Path | None) -> None:
        for (shard, table), docs in snapshot.items():
            write_table(self.db_dir / shard / f"{table}.json", table, docs)
        atomic_write(self.db_dir / "checkpoint.json", dumps({"seq": seq}))
        if finished is not None:
            for seg in list_segments(self.journal_dir):
                if segment_number(seg) <= segment_number(finished):
                    seg.unlink()
            fsync_dir(self.journal_dir)

    # --- writing -------------------------------------------------------------------
    def next_id(self, prefix: str) -> str:
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
            shard = shard or self._where.get(table, {}).get(key) or MAIN
            ops.append({"t": table, "w": shard, "d": doc})
        def apply() -> None:
            for op in ops:
                self._apply(op)
        await self.journal.append({"ops": ops}, on_durable=apply)

    def _apply(self, op: dict) -> None:
        table, shard, doc = op["t"], op["w"], op["d"]
        key = doc["id"]
        docs = self._ensure(shard, table)
        where = self._where.setdefault(table, {})
        old = where.get(key)
        if old:
            previous = self._shards[old].get(table, {}).get(key)
            if previous is not None:
                self._index_remove(table, old, previous)
            if old != shard:
                self._shards[old].get(table, {}).pop(key, None)
                self._dirty.add((old, table))
        self._index_add(table, shard, doc)
        docs[key] = doc
        where[key] = shard
        self._dirty.add((shard, table))
        self._bump_counter(key)

    # --- reading -------------------------------------------------------------------
    def get(self, table: str, key: str, deep: bool = True) -> dict | None:
        """A document by id; `deep` also reads old shards not yet loaded (slow the first time)."""
        shard = self._where.get(table, {}).get(key)
        if shard is None and deep and self._unloaded.get(table):
            for s in sorted(self._unloaded[table]):
                self._ensure(s, table)
            shard = self._where.get(table, {}).get(key)
        return self._shards[shard][table][key] if shard else None

    def shard_of(self, table: str, key: str) -> str | None:
        return self._where.get(table, {}).get(key)

    def docs(self, table: str, shards: Iterable[str] | None = None) -> Iterator[dict]:
        """Documents of a table in the given shards (every shard, old ones loaded, when None)."""
        names = sorted(set(self._shards) | set(self._files)) if shards is None else list(shards)
        for s in names:
            if (s, table) in self._loaded or table in self._files.get(s, ()):
                yield from list(self._ensure(s, table).values())

    def docs_by(self, table: str, field: str, value: Any, shards: Iterable[str]) -> list[dict]:
        """Documents whose indexed `field` equals `value`, in the given shards."""
        index = self._index[(table, field)]
        out = []
        for s in shards:
            if (s, table) not in self._loaded and table in self._files.get(s, ()):
                self._ensure(s, table)
            docs = self._shards.get(s, {}).get(table, {})
            out.extend(docs[k] for k in index.get((s, value), ()) if k in docs)
        return out

    def find(self, table: str, pred: Callable[[dict], bool], shards: Iterable[str] | None = None) -> list[dict]:
        return [d for d in self.docs(table, shards) if pred(d)]

    def snapshot(self, shards: Iterable[str] | None = None) -> StoreView:
        """A read-only copy of these shards (all when None; main always) for a thread to read:
        the tables' dicts are copied, their documents shared. The inbox tables are left out: no
        document is built from them, and they are the biggest."""
        names = set(self._shards) | set(self._files) if shards is None else {*shards, MAIN}
        tables = {s: {t: dict(docs) for t, docs in self._shards.get(s, {}).items()
                      if (s, t) in self._loaded and t not in UNSNAPPED} for s in names}
        on_disk = {s: {t for t in self._files.get(s, ()) if (s, t) not in self._loaded and t not in UNSNAPPED}
                   for s in names}
        return StoreView(self.db_dir, tables, on_disk, UNSNAPPED)

    def shards(self) -> list[str]:
        return sorted((set(self._shards) | set(self._files)) - {MAIN})

    def stats(self) -> dict[str, Any]:
        return {
            "shards": len(self._shards),
            "documents": sum(len(d) for s in self._shards.values() for d in s.values()),
            "journal_seq": self.journal.seq if self.journal else self._last_seq,
        }
