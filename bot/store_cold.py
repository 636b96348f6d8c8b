"""The Store's cold tables: every raw message (inbox) and its done mark (inbox_done).

Each is written once per message and read back only to answer "was this MsgId seen?" and, at
start, "which acknowledged messages were never handled?". Kept whole in memory they cost more
than all the records together (a big street: 1.1 of 1.6 GB), and rewriting a week of them at
every checkpoint grew with the week. So on disk a cold table is one append-only file per shard,
JSON lines (<shard>/<table>.jsonl), each checkpoint appends what is new, and memory holds only
the documents not appended yet and, per shard asked about, the set of ids.

A crash in the middle of an append leaves a torn last line: readers skip it, and the writer cuts
it off before its next append (the journal still holds those documents and replays them). A
document appended twice (a crash between the append and the checkpoint mark) reads back once.
Files of the earlier layout (<table>.json, TinyDB's format) are still read.

Beside each log, <table>.ids holds its ids, one a line, each append's followed by a mark line
"#<size of the log after it>": a restart reads a district's two weeks of message ids from these
(a few MB) instead of scanning 400 MB of raw messages (2 s). They are a cache: trusted only while
the last mark is the log's size now, made again from the log by the next append otherwise (a
crash between the two writes, a data folder of an earlier version), and never needed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable

from loguru import logger

from bot.journal import dumps, fsync_dir, loads
from bot.store_files import atomic_write, read_table
from bot.store_open import carry_open, read_open, write_open

COLD = frozenset({"inbox", "inbox_done"})
# Every line starts with the document's id (dumps keeps the key order, and "id" comes first):
# ids are found by one regex over the file, without parsing a single document. Anchored on the
# newline itself, not on re.M's ^, so the regex engine can skip ahead by its literal prefix: four
# times faster, and a district's two weeks of raw messages are 400 MB read at every start. An id
# with an escape in it does not match: the line count then differs and the file is parsed.
_ID_AT_START = re.compile(rb'\n\{"id":"([^"\\\n]*)"')

Key = tuple[str, str]  # (shard, table)


_MARK = re.compile(rb"#(\d+)\n$")
_MARKS = re.compile(r"^#\d+$", re.M)
ID_FILE_READS = {"scans": 0}  # logs read for their ids for want of a valid .ids (tests count them)


def _id_lines(ids: Iterable[str], size: int) -> bytes | None:
    """Ids and the mark of the log's size, as a .ids file holds them (None: an id a line cannot
    hold, so this table keeps no .ids). Joined and checked whole: a district week's million ids
    one by one took a second."""
    ids = list(ids)
    if not ids:
        return b"#%d\n" % size
    body = "\n".join(ids).encode()
    if "" in ids or body.count(b"\n") != len(ids) - 1 or body.startswith(b"#") or b"\n#" in body:
        return None
    return body + b"\n#%d\n" % size


def _marked_size(path: Path) -> int | None:
    """The log size the .ids file's last mark names (None: no file, or torn)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 32))
            m = _MARK.search(f.read())
    except FileNotFoundError:
        return None
    return int(m.group(1)) if m else None


def _lines(raw: bytes) -> list[bytes]:
    lines = raw.split(b"\n")
    return [ln for ln in lines if ln.strip()]


class ColdTables:
    def __init__(self, db_dir: Path, readonly: bool = False):
        self.db_dir = db_dir
        self.readonly = readonly
        self.fresh: dict[Key, dict[str, dict]] = {}  # not appended yet
        self._ids: dict[Key, set[str]] = {}  # every id of the shard's table, for those asked about

    def _paths(self, shard: str, table: str) -> tuple[Path, Path]:
        folder = self.db_dir / shard
        return folder / f"{table}.json", folder / f"{table}.jsonl"

    def _ids_path(self, shard: str, table: str) -> Path:
        return self.db_dir / shard / f"{table}.ids"

    # --- reading the files ---------------------------------------------------------------
    def _disk_docs(self, shard: str, table: str) -> dict[str, dict]:
        old, log = self._paths(shard, table)
        docs = read_table(old, table, keep=False) if old.exists() else {}
        try:
            raw = log.read_bytes()
        except FileNotFoundError:
            return docs
        for line in _lines(raw):
            try:
                doc = loads(line)
            except ValueError:
                continue  # a torn last line: its documents are still in the journal
            docs[doc["id"]] = doc
        return docs

    def _disk_ids(self, shard: str, table: str) -> set[str]:
        old, log = self._paths(shard, table)
        ids = set(read_table(old, table, keep=False)) if old.exists() else set()
        kept = self._kept_ids(shard, table, log)
        if kept is not None:
            return ids | kept
        try:
            raw = log.read_bytes()
        except FileNotFoundError:
            return ids
        ID_FILE_READS["scans"] += 1
        found = _ID_AT_START.findall(b"\n" + raw)
        if len(found) == raw.count(b"\n"):
            scanned = set(map(bytes.decode, found))
            if not self.readonly:  # last week's log is appended to no more: kept for next start
                try:
                    self._write_ids(shard, table, scanned, len(raw))
                except OSError as e:
                    logger.warning("{}: message ids not kept ({})", self._ids_path(shard, table), e)
            ids.update(scanned)
        else:  # a line not of our making (or torn): read the file the slow way
            ids.update(self._disk_docs(shard, table))
        return ids

    def _write_ids(self, shard: str, table: str, ids: Iterable[str], size: int) -> None:
        lines = _id_lines(ids, size)
        if lines is None:  # ids a line cannot hold: this table is scanned
            self._ids_path(shard, table).unlink(missing_ok=True)
        else:
            atomic_write(self._ids_path(shard, table), lines)

    def _kept_ids(self, shard: str, table: str, log: Path) -> set[str] | None:
        """The log's ids from its .ids file, if that was written for the log as it is now."""
        path = self._ids_path(shard, table)
        try:
            raw = path.read_bytes()
            size = os.stat(log).st_size
        except FileNotFoundError:
            return None
        m = _MARK.search(raw[-32:])
        if m is None or int(m.group(1)) != size:
            return None
        # Split whole and the marks taken out after: a line at a time was most of the read.
        text = raw.decode()
        ids = set(text.split("\n"))
        ids.difference_update(_MARKS.findall(text))
        ids.discard("")
        return ids

    # --- what the Store asks -------------------------------------------------------------
    def put(self, shard: str, table: str, doc: dict) -> None:
        self.fresh.setdefault((shard, table), {})[doc["id"]] = doc
        ids = self._ids.get((shard, table))
        if ids is not None:
            ids.add(doc["id"])

    def ids(self, shard: str, table: str, keep: bool = True) -> set[str]:
        """Every id of the shard's table; `keep` holds the set for the next question."""
        known = self._ids.get((shard, table))
        if known is None:
            known = self._disk_ids(shard, table) | set(self.fresh.get((shard, table), ()))
            if keep:
                self._ids[(shard, table)] = known
        return known

    def asked(self, table: str) -> list[str]:
        """Shards whose ids are held or that have documents not appended yet."""
        return sorted({s for s, t in self._ids if t == table} | {s for s, t in self.fresh if t == table})

    def get(self, shard: str, table: str, key: str) -> dict | None:
        doc = self.fresh.get((shard, table), {}).get(key)
        if doc is not None or key not in self.ids(shard, table):
            return doc
        return self._disk_docs(shard, table).get(key)

    def docs(self, shard: str, table: str) -> Iterable[dict]:
        docs = self._disk_docs(shard, table)
        docs.update(self.fresh.get((shard, table), {}))
        return docs.values()

    def forget_before(self, week: str) -> None:
        """Drop the id sets of the week shards before `week` (asked again, they are read again)."""
        for key in [k for k in self._ids if k[0] < week and k[0][:1].isdigit()]:
            del self._ids[key]

    # --- the checkpoint ------------------------------------------------------------------
    def pending(self) -> dict[Key, list[dict]]:
        return {k: list(v.values()) for k, v in self.fresh.items() if v}

    def append_all(self, appends: dict[Key, list[dict]]) -> None:
        """A checkpoint's appends (in its thread), then each week's list of messages not yet
        handled carried forward with them (bot.store_open)."""
        sizes = {key: self.append(*key, docs) for key, docs in appends.items()}
        for shard in sorted({s for s, _ in appends}):
            try:
                carry_open(self, shard, appends, sizes)
            except OSError as e:  # only a cache: the next start works it out from the ids
                logger.warning("{}: messages not yet handled not kept ({})", self.db_dir / shard, e)

    def append(self, shard: str, table: str, docs: list[dict]) -> tuple[int, int]:
        """Add documents at the end of the shard's file, fsynced (in the checkpoint's thread);
        returns its size before and after. On failure the file is cut back to where it ended,
        so nothing half-written stays."""
        _, log = self._paths(shard, table)
        created = not log.exists()
        log.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(log, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            size = os.lseek(fd, 0, os.SEEK_END)
            if size and os.pread(fd, 1, size - 1) != b"\n":
                # A torn line from an append a crash cut short: its documents are in the journal.
                tail = os.pread(fd, min(size, 1 << 20), max(0, size - (1 << 20)))
                cut = tail.rfind(b"\n")
                size = max(0, size - len(tail)) + (cut + 1 if cut >= 0 else 0)
                os.ftruncate(fd, size)
            data = b"".join(dumps(d) + b"\n" for d in docs)
            try:
                written = 0
                while written < len(data):
                    written += os.pwrite(fd, data[written:], size + written)
                os.fsync(fd)
            except BaseException:
                os.ftruncate(fd, size)
                raise
        finally:
            os.close(fd)
        if created:
            fsync_dir(log.parent)
        try:
            self._append_ids(shard, table, [d["id"] for d in docs], size, size + len(data))
        except OSError as e:  # only a cache: the log is scanned for its ids instead
            logger.warning("{}: message ids not kept ({})", self._ids_path(shard, table), e)
        return size, size + len(data)

    def log_size(self, shard: str, table: str) -> int:
        try:
            return os.stat(self._paths(shard, table)[1]).st_size
        except FileNotFoundError:
            return 0

    def unhandled(self, shard: str) -> set[str]:
        """Ids of the shard's messages with no done mark: from the list kept at the last
        checkpoint when it describes the logs as they are (else from their ids, and then kept),
        with what the journal's tail adds."""
        keep = not self.readonly
        found = read_open(self, shard)
        if found is None:
            sizes = {t: self.log_size(shard, t) for t in COLD}
            found = self._disk_ids(shard, "inbox") - self._disk_ids(shard, "inbox_done")
            if keep:
                try:
                    write_open(self, shard, sizes, found)
                except OSError as e:
                    logger.warning("{}: messages not yet handled not kept ({})", self.db_dir / shard, e)
        found = found | set(self.fresh.get((shard, "inbox"), ()))
        return found - set(self.fresh.get((shard, "inbox_done"), ()))

    def _append_ids(self, shard: str, table: str, ids: list[str], before: int, after: int) -> None:
        """Keep the .ids file in step with the log (in the checkpoint's thread, after the log's
        append): appended to while it matched the log before this append, else made again."""
        path = self._ids_path(shard, table)
        if _marked_size(path) == before:
            lines = _id_lines(ids, after)
            if lines is not None:
                with open(path, "ab") as f:
                    f.write(lines)
                    f.flush()
                    os.fsync(f.fileno())
                return
            path.unlink(missing_ok=True)  # ids a line cannot hold: this table is scanned
            return
        _, log = self._paths(shard, table)
        with open(log, "rb") as f:
            raw = f.read(after)
        found = _ID_AT_START.findall(b"\n" + raw)
        if len(found) == raw.count(b"\n"):
            self._write_ids(shard, table, map(bytes.decode, found), after)
        else:
            path.unlink(missing_ok=True)

    def appended(self, shard: str, table: str, docs: list[dict]) -> None:
        """After an append: the documents are on disk, memory can let them go (unless put
        again meanwhile)."""
        fresh = self.fresh.get((shard, table))
        if fresh is None:
            return
        for d in docs:
            if fresh.get(d["id"]) is d:
                del fresh[d["id"]]
        if not fresh:
            del self.fresh[(shard, table)]
