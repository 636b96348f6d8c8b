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
from bot.store_files import read_table, write_table

SEQ_BLOCK = 2000
BUCKETS = 16
_SEQ = re.compile(r"^([A-Za-z]+)(\d+)$")
_DATE = re.compile(r"(\d{4})-(\d{2})-\d{2}")
_SEQ_PART = re.compile(r"^([A-Za-z]+)(\d{5,})$")

Parts = dict[tuple[str, str], list[dict]]  # (table, part) -> its documents, for one checkpoint


def part_of(key: str) -> str:
    m = _SEQ.match(key)
    if m and not (m.group(2).startswith("0") and len(m.group(2)) > 1):  # P012 is no number of a block
        return f"{m.group(1)}{int(m.group(2)) // SEQ_BLOCK:05d}"
    m = _DATE.search(key)
    if m:
        return f"{m.group(1)}-{m.group(2)}"
    return f"k{zlib.crc32(key.encode()) % BUCKETS:02d}"


def _natural(key: str) -> tuple[int, str]:
    return len(key), key


def _seq_keys(part: str) -> list[str] | None:
    """Every id a block of sequential ids can hold, in order (None for other parts): no set of
    ids is kept for these, the block's numbers say which they are."""
    m = _SEQ_PART.match(part)
    if not m:
        return None
    start = int(m.group(2)) * SEQ_BLOCK
    return [f"{m.group(1)}{n}" for n in range(start, start + SEQ_BLOCK)]


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
                    seen: dict[str, set[str]] | None = None) -> dict[str, dict]:
    """A main table's documents by id, from its parts and from its whole file if one is left.
    `seen`, when given, receives the ids of each part other than blocks of sequential ids (the
    writer's record of what such a part holds)."""
    files = part_files(main_dir / table)
    written = {p.stem for p in files}
    docs: dict[str, dict] = {}
    whole = main_dir / f"{table}.json"
    if whole.is_file():
        # A part file on disk was written from the whole table in memory: it is the truth for
        # its part, even where the old file still holds a document the part no longer does.
        for key, doc in read_table(whole, table, keep).items():
            part = part_of(key)
            if part not in written:
                docs[key] = doc
                if seen is not None and not _SEQ_PART.match(part):
                    seen.setdefault(part, set()).add(key)
    for path in files:
        part = read_table(path, table, keep)
        if docs:
            docs.update(part)
        else:
            docs = part
        if seen is not None and not _SEQ_PART.match(path.stem):
            seen.setdefault(path.stem, set()).update(part)
    return docs


class MainParts:
    """Which parts of the main tables changed since the last checkpoint, and what each holds."""

    def __init__(self, main_dir: Path):
        self.dir = main_dir
        self._keys: dict[str, dict[str, set[str]]] = {}  # table -> part -> ids, but for blocks
        self._dirty: dict[str, set[str]] = {}  # table -> parts to write
        self._whole: set[str] = set()  # tables whose whole file (earlier layout) is still on disk

    def read(self, table: str) -> dict[str, dict]:
        """A table for the Store to hold (read once, at load)."""
        seen: dict[str, set[str]] = {}
        docs = read_main_table(self.dir, table, keep=True, seen=seen)
        self._keys[table] = seen
        if (self.dir / f"{table}.json").is_file():
            self._whole.add(table)
        return docs

    def touch(self, table: str, key: str) -> None:
        part = part_of(key)
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
                parts = parts | {part_of(k) for k in docs}  # every part, so the whole file can go
            for part in parts:
                numbered = _seq_keys(part)
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
