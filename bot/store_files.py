"""The Store's files: atomic writes and one shard table in, one out.

A shard table is a TinyDB file ({"table": {"1": doc, ...}}), so the data folder stays readable
with TinyDB itself; the Store reads and writes it through these functions only.
"""

from __future__ import annotations

import gc
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

from loguru import logger
from tinydb.storages import Storage

from bot.journal import dumps, fsync_dir, loads

# atomic_file's temp names: "." + the file's name + "." + mkstemp's 8 random characters + ".tmp".
TEMP_FILE = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


class AtomicJSONStorage(Storage):
    """TinyDB storage that replaces the file atomically instead of rewriting it in place."""

    def __init__(self, path: str, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly

    def read(self) -> dict | None:
        try:
            with open(self.path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return None
        return loads(raw) if raw.strip() else None

    def write(self, data: dict) -> None:
        if self.readonly:
            raise PermissionError("store opened read-only")
        atomic_write(self.path, dumps(data))

    def close(self) -> None:
        pass


@contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """Write a file that appears whole or not at all: a temp file beside it, fsync, rename,
    fsync of the folder. On any error the temp file is removed and `path` is untouched."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(path.parent)


def atomic_write(path: Path, data: bytes) -> None:
    with atomic_file(path) as f:
        f.write(data)


@contextmanager
def no_cyclic_gc() -> Iterator[None]:
    """Parsing JSON makes millions of containers and no garbage cycles; left on, the cyclic
    collector walks everything already parsed again and again (most of a large start-up). What
    was read is then frozen (moved out of the collector's generations): it lives as long as
    its shard, is freed by reference counting when let go, and would otherwise all be walked
    by the first collection after this."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.freeze()
            gc.enable()


READ_CHUNK = 2000  # documents parsed per call when a table is read in pieces
# Values repeated across a week's documents (whose, where, which day, what kind): parsed, each is
# its own string; shared, a district's two weeks of reports took 600 MB less. Shared a chunk at
# a time, so the copies let go are reused by the next chunk's parse instead of staying in RSS.
# Documents are replaced, never mutated in place, and strings are immutable: sharing is safe.
SHARED_FIELDS = ("userid", "name", "grid", "date", "work_date", "status")


def share_values(docs, same: dict) -> None:
    """Make equal values of the SHARED_FIELDS (and of report items) one object."""
    keep = same.setdefault
    for d in docs:
        for f in SHARED_FIELDS:
            if f in d:
                v = d[f]
                if v.__class__ is str:
                    d[f] = keep(v, v)
        key = d.get("id")
        if d.get("msgid") == key:
            d["msgid"] = key
        items = d.get("items")
        if items.__class__ is list:
            for it in items:
                try:
                    category, unit = it["category"], it["unit"]
                    it["category"], it["unit"] = keep(category, category), keep(unit, unit)
                except (TypeError, KeyError):  # not an item of ours: left as it is
                    pass


def read_table(path: Path, table: str, keep: bool = True) -> dict[str, dict]:
    """A shard table's documents by id ({} when the file does not exist). `keep`: they will
    stay in memory (read without the cyclic GC, then frozen); a passing read from another thread
    leaves the collector alone (it is the whole process's)."""
    def read() -> dict[str, dict]:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return {}
        head = b"{" + dumps(table) + b":{\n"
        if not raw.startswith(head):
            # Written whole (by TinyDB, or by earlier versions): one parse. Read through the
            # storage layer, not TinyDB: building TinyDB Documents costs more than the parse.
            data = loads(raw) if raw.strip() else {}
            docs = {d["id"]: d for d in (data or {}).get(table, {}).values()}
            share_values(docs.values(), {})
            return docs
        # One document a line (see write_table): parsed a few thousand at a time, so a thread
        # reading a month of old weeks does not hold the GIL, and the event loop, for a second.
        lines = raw[len(head):].split(b"\n")
        docs: dict[str, dict] = {}
        same: dict[str, str] = {}
        for start in range(0, len(lines), READ_CHUNK):
            body = b"".join(ln for ln in lines[start:start + READ_CHUNK] if ln and ln != b"}}").rstrip(b",")
            if body:
                chunk = loads(b"{" + body + b"}").values()
                share_values(chunk, same)
                docs.update((d["id"], d) for d in chunk)
        return docs
    if not keep:
        return read()
    with no_cyclic_gc():
        return read()


def stream_table(path: Path, table: str) -> Iterator[dict]:
    """A shard table's documents one by one, read a line at a time (bot.store_files writes one
    document a line); a file in TinyDB's own layout (one line) is read whole instead."""
    head = b"{" + dumps(table) + b":{\n"
    with open(path, "rb") as f:
        if f.read(len(head)) != head:
            yield from read_table(path, table, keep=False).values()
            return
        for line in f:
            line = line.rstrip(b"\n").rstrip(b",")
            if not line or line == b"}}":
                continue
            # '"12":{...}': the number is TinyDB's, the document follows the first colon.
            yield loads(line[line.index(b":") + 1:])


def write_table(path: Path, table: str, docs: list[dict]) -> None:
    """Replace a shard table with `docs`, atomically: one write of the whole file, in TinyDB's
    layout ({"table": {"1": doc, ...}}, numbered as its insert_multiple would), one document a
    line so that it can be read back in pieces."""
    # Serialized one at a time: orjson holds the GIL for a whole call, and one call for a
    # district's week of reports held the event loop for most of a second at every checkpoint.
    out = [b"{" + dumps(table) + b":{\n"]
    out += [b'"%d":' % (i + 1) + dumps(d) + (b",\n" if i + 1 < len(docs) else b"\n") for i, d in enumerate(docs)]
    out.append(b"}}")
    atomic_write(path, b"".join(out))


def remove_leftovers(db_dir: Path) -> None:
    """Temp files of a checkpoint a crash cut short: never renamed, so never part of the data
    (the journal still holds what they held), only disk space. Only the writer removes them:
    a reader beside a running bot would delete the temp file of a checkpoint in progress."""
    removed = 0
    for folder in [db_dir, *(p for p in db_dir.iterdir() if p.is_dir())]:
        for p in folder.iterdir():
            if TEMP_FILE.match(p.name) and p.is_file():
                try:
                    p.unlink()
                    removed += 1
                except OSError as e:
                    logger.warning("could not remove leftover temp file {}: {}", p, e)
    if removed:
        logger.info("removed {} temp file(s) left by an interrupted checkpoint", removed)
