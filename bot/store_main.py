"""The Store's long-lived tables on disk: each split into parts, so a checkpoint rewrites what changed.

The tables in `main` (every problem ever opened, leave, the ladder's subjects, job runs, greetings…)
are held whole in memory, but on disk a table is a folder of part files, main/<table>/<part>.json
(each in TinyDB's layout, like every shard table). Rewriting the whole table at each checkpoint
that touched one document cost 5 s for a million problems; now a checkpoint rewrites only the
parts holding a changed document.

A document's part follows from its id alone, so finding it needs no index and never changes:
  - sequential ids (P12, O4017): blocks of SEQ_BLOCK numbers, P00000 holding P0–P1999 — ids grow
    with time, so old blocks (problems closed long ago) are never rewritten again;
  - ids carrying a date (greet:u1:2026-11-25, checkin:u1:2026-11-24): the month, 2026-11;
  - any other id (a userid, a job's name): one of BUCKETS buckets by a stable hash.

Data folders of earlier versions hold a table whole in main/<table>.json: it is still read, and
the first checkpoint that touches the table writes all its parts, then removes the whole file
(before the checkpoint mark, so a crash in between leaves both, and the parts written win for
every document of their part).
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path

from bot.journal import fsync_dir
from typing import Iterator

from bot.store_files import read_table, stream_table, write_table

SEQ_BLOCK = 2000
# A week's busy tables (reports, check-ins) in parts too, in blocks of this many ids: a district
# week is half a million reports, so a checkpoint under load rewrites one block, not the week.
WEEK_BLOCK = 10000
BUCKETS = 16
_SEQ = re.compile(r"^([A-Za-z]+)(\d+)$")
_DATE = re.compile(r"(\d{4})-(\d{2})-\d{2}")
_SEQ_PART = re.compile(r"^([A-Za-z]+)(\d{5,})$")

Parts = dict[tuple[str, str], list[dict]]  # (table, part) -> its documents, for one checkpoint


def part_of(key: str, block: int = SEQ_BLOCK) -> str:
    m = _SEQ.match(key)
    if m and not (m.group(2).startswith("0") and len(m.group(2)) > 1):  # P012 is no number of a block
        return f"{m.group(1)}{int(m.group(2)) // block:05d}"
    m = _DATE.search(key)
    if m:
        return f"{m.group(1)}-{m.group(2)}"
    return f"k{zlib.crc32(key.encode()) % BUCKETS:02d}"


def _natural(key: str) -> tuple[int, str]:
    return len(key), key


def _seq_keys(part: str, block: int = SEQ_BLOCK) -> list[str] | None:
    """Every id a block of sequential ids can hold, in order (None for other parts): no set of
    ids is kept for these, the block's numbers say which they are."""
    m = _SEQ_PART.match(part)
    if not m:
        return None
    start = int(m.group(2)) * block
    return [f"{m.group(1)}{n}" for n in range(start, start + block)]


def part_files(folder: Path) -> list[Path]:
    """A table's part files, in order (temp files of an unfinished write start with a dot)."""
    try:
        return sorted(p for p in folder.iterdir() if p.suffix == ".json" and not p.name.startswith("."))
    except (FileNotFoundError, NotADirectoryError):
        return []


def tables_on_disk(main_dir: Path) -> set[str]:
    """The tables in main: whole files of the earlier layout and folders of parts."""
    if not main_dir.is_dir():
        return set()
    return {p.stem for p in main_dir.iterdir() if (p.suffix == ".json" and p.is_file()) or
            (p.is_dir() and not p.name.startswith("."))}


def read_main_table(main_dir: Path, table: str, keep: bool = True,
                    seen: dict[str, set[str]] | None = None, block: int = SEQ_BLOCK) -> dict[str, dict]:
    """A main table's documents by id, from its parts and from its whole file if one is left.
    `seen`, when given, receives the ids of each part file other than blocks of sequential ids
    (the writer's record of what such a part holds; those of a whole file are sorted out by
    MainParts when a part of theirs is first written)."""
    files = part_files(main_dir / table)
    written = {p.stem for p in files}
    docs: dict[str, dict] = {}
    whole = main_dir / f"{table}.json"
    if whole.is_file():
        # A part file on disk was written from the whole table in memory: it is the truth for
        # its part, even where the old file still holds a document the part no longer does.
        # Found by the blocks' ids where it can: a district's week is half a million
        # documents, and the part of each one, asked at every start, took seconds.
        docs = read_table(whole, table, keep)
        others = {p for p in written if not _SEQ_PART.match(p)}
        if others:
            docs = {k: d for k, d in docs.items() if part_of(k, block) not in others}
        for part in written - others:
            for key in _seq_keys(part, block) or ():
                docs.pop(key, None)
    for path in files:
        part = read_table(path, table, keep)
        if docs:
            docs.update(part)
        else:
            docs = part
        if seen is not None and not _SEQ_PART.match(path.stem):
            seen.setdefault(path.stem, set()).update(part)
    return docs


def read_week_table(shard_dir: Path, table: str, keep: bool = True) -> dict[str, dict]:
    """A week's table, whichever layout it is on disk in (whole file, parts, or both)."""
    return read_main_table(shard_dir, table, keep, block=WEEK_BLOCK)


def stream_week_table(shard_dir: Path, table: str) -> Iterator[dict]:
    """A week's table one document at a time, none kept, whichever layout it is in: its parts
    streamed a line at a time; a whole file of the earlier layout with parts written over it read
    whole instead, as its parts win over it for their documents."""
    files = week_table_files(shard_dir, table)
    if len(files) > 1 and files[0].name == f"{table}.json":
        yield from read_week_table(shard_dir, table, keep=False).values()
        return
    for path in files:
        yield from stream_table(path, table)


def week_table_files(shard_dir: Path, table: str) -> list[Path]:
    """The files a week's table is read from (its whole file first, then its parts)."""
    whole = shard_dir / f"{table}.json"
    return ([whole] if whole.is_file() else []) + part_files(shard_dir / table)


class MainParts:
    """Which parts of the main tables changed since the last checkpoint, and what each holds.

    Also used for a week's busy tables (bot.store: WEEK_BLOCK, convert=False): a district's week
    of reports rewritten whole at every checkpoint took 5.8 s of the checkpoint thread, holding
    the GIL the callbacks wait for. There a whole file of the earlier layout is not converted at
    once (that would be the same rewrite): the parts a change touches are written and win over
    it for their documents, the rest of it stays as it is. (Converting it at once was measured:
    the district's first checkpoint after an upgrade then held callbacks for seconds; the price
    of not doing so is that `gridbot stats` reads such a week's records, until the week ends.)"""

    def __init__(self, main_dir: Path, block: int = SEQ_BLOCK, convert: bool = True):
        self.dir = main_dir
        self.block = block
        self.convert = convert
        self._keys: dict[str, dict[str, set[str]]] = {}  # table -> part -> ids, but for blocks
        self._dirty: dict[str, set[str]] = {}  # table -> parts to write
        self._whole: set[str] = set()  # tables whose whole file (earlier layout) is still on disk
        self._unsorted: set[str] = set()  # tables read with one: which of its ids are in which part

    def read(self, table: str) -> dict[str, dict]:
        """A table for the Store to hold (read once, at load)."""
        docs, seen = self.read_apart(table)
        self.adopt(table, seen)
        return docs

    def read_apart(self, table: str) -> tuple[dict[str, dict], dict[str, set[str]]]:
        """The table and what its parts hold, touching nothing here (may run in a thread; the
        loop then adopts what it holds, unless the table was read meanwhile)."""
        seen: dict[str, set[str]] = {}
        return read_main_table(self.dir, table, keep=True, seen=seen, block=self.block), seen

    def adopt(self, table: str, seen: dict[str, set[str]]) -> None:
        self._keys[table] = seen
        if (self.dir / f"{table}.json").is_file():
            self._unsorted.add(table)
            if self.convert:
                self._whole.add(table)

    def forget(self, table: str) -> None:
        """The table left memory (written first: nothing of it is dirty)."""
        self._keys.pop(table, None)
        self._unsorted.discard(table)

    def touch(self, table: str, key: str) -> None:
        part = part_of(key, self.block)
        if not _SEQ_PART.match(part):
            self._keys.setdefault(table, {}).setdefault(part, set()).add(key)
        self._dirty.setdefault(table, set()).add(part)

    def take(self, tables: dict[str, dict[str, dict]]) -> Parts:
        """The documents of the changed parts, on the loop (a part is a few thousand documents);
        the dirty marks go with them (given back by untake if the write fails)."""
        dirty, self._dirty = self._dirty, {}
        out: Parts = {}
        for table, parts in dirty.items():
            docs = tables.get(table, {})
            held = self._keys.setdefault(table, {})
            if table in self._whole:
                parts = parts | {part_of(k, self.block) for k in docs}  # every part, so the whole file can go
            if table in self._unsorted and any(not _SEQ_PART.match(p) for p in parts):
                # Once: the ids read from a whole file, to the parts other than blocks.
                for k in docs:
                    part = part_of(k, self.block)
                    if not _SEQ_PART.match(part):
                        held.setdefault(part, set()).add(k)
                self._unsorted.discard(table)
            for part in parts:
                numbered = _seq_keys(part, self.block)
                if numbered is not None:
                    out[(table, part)] = [docs[k] for k in numbered if k in docs]
                    continue
                keys = [k for k in held.get(part, ()) if k in docs]
                held[part] = set(keys)  # ids that left the table (moved to a week) are gone
                out[(table, part)] = [docs[k] for k in sorted(keys, key=_natural)]
        return out

    def untake(self, parts: Parts) -> None:
        for table, part in parts:
            self._dirty.setdefault(table, set()).add(part)

    def write(self, parts: Parts) -> None:
        """In the checkpoint's thread, before the checkpoint mark."""
        for (table, part), docs in parts.items():
            write_table(self.dir / table / f"{part}.json", table, docs)
        for table in {t for t, _ in parts} & self._whole:
            (self.dir / f"{table}.json").unlink(missing_ok=True)
            fsync_dir(self.dir)

    def written(self, parts: Parts) -> None:
        """Back on the loop after a successful write."""
        self._whole -= {t for t, _ in parts}
