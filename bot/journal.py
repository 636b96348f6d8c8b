"""Append-only journal: the durable record of every change, fsynced before we acknowledge.

Appends from concurrent coroutines share one write and one fsync (group commit), so the
cost per message stays flat under load. A torn last line (crash mid-write) is ignored on replay;
a failed write is cut back so it never glues onto the next line. The segment is written through
its file descriptor, never through a buffered file: a buffer would keep the refused part of a
failed write and write it out with the next one, bringing back a record whose sender was told
it was not stored.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any, Callable, Iterator

import orjson
from loguru import logger

SEGMENT_SUFFIX = ".log"


# orjson would write datetimes and dataclasses that json refuses; a store must refuse them too,
# or a document would read back different from what was put.
_STRICT = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON, as json.dumps(ensure_ascii=False) writes it, at orjson's speed."""
    try:
        return orjson.dumps(obj, option=_STRICT)
    except TypeError:
        # What orjson refuses and json takes (non-string keys, integers beyond 64 bits), or
        # json's own error for what neither takes.
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def loads(raw: bytes | str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        # Files written by json.dumps may hold NaN or Infinity, which orjson refuses.
        return json.loads(raw)


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def segment_number(p: Path) -> int:
    return int(p.stem)


def list_segments(folder: Path) -> list[Path]:
    if not folder.exists():
        return []
    return sorted((p for p in folder.iterdir() if p.suffix == SEGMENT_SUFFIX and p.stem.isdigit()),
                  key=segment_number)


def read_segment(path: Path) -> Iterator[dict]:
    with open(path, "rb") as f:
        data = f.read()
    for raw in data.split(b"\n"):
        if not raw.strip():
            continue
        try:
            yield loads(raw)
        except ValueError:
            # Only the tail can be torn (we cut back failed writes); skip it.
            logger.warning("journal {}: skipped a torn record", path.name)


class Journal:
    def __init__(self, folder: Path, start_seq: int = 0):
        self.folder = folder
        self.seq = start_seq
        self._pending: list[tuple[int, bytes, asyncio.Future, Callable[[], None] | None]] = []
        self.written_seq = start_seq
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._fd: int | None = None
        self._size = 0
        # A failed write whose cut-back failed too left a fragment at the end of the segment:
        # the next write starts on a new line, so the fragment stays a torn line of its own.
        self._torn = False
        self.segment: Path | None = None
        self._closing = False
        # Held while a batch is written and while the segment is switched: the file is never
        # closed under a write in flight.
        self._io = asyncio.Lock()

    def _open_new_segment(self) -> None:
        """Switch to a fresh segment. The new file is made (and its name made durable) before
        the current one is let go: when the kernel refuses it (no space, no inodes, no file
        descriptors), the current segment stays open and in use, exactly as durable as before,
        and the caller's checkpoint fails and is tried again later."""
        self.folder.mkdir(parents=True, exist_ok=True)
        segs = list_segments(self.folder)
        n = max(segment_number(segs[-1]) if segs else 0,
                segment_number(self.segment) if self.segment else 0) + 1
        path = self.folder / f"{n:08d}{SEGMENT_SUFFIX}"
        # Exclusive: a number is never reused for a file in use.
        new = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        try:
            # A record is acknowledged once its file is fsynced; that is worth nothing after a
            # crash unless the file's name is durable too.
            fd = os.open(self.folder, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except BaseException:
            os.close(new)
            try:
                path.unlink()
            except OSError:
                pass
            raise
        old, self._fd, self.segment, self._size, self._torn = self._fd, new, path, 0, False
        if old is not None:
            os.close(old)

    async def start(self) -> None:
        self._open_new_segment()
        self._task = asyncio.create_task(self._writer(), name="journal-writer")

    async def append(self, record: dict, on_durable: Callable[[], None] | None = None) -> int:
        """Durably append one record; returns its sequence number.

        `on_durable` runs in the writer right after the fsync, in sequence order, before any
        later record is written: so whoever drains the journal sees every written record applied.
        """
        if self._task is None or self._closing:
            raise RuntimeError("journal is not running")
        self.seq += 1
        record = {"s": self.seq, **record}
        line = dumps(record) + b"\n"
        fut = asyncio.get_running_loop().create_future()
        self._pending.append((self.seq, line, fut, on_durable))
        self._wake.set()
        await fut
        return record["s"]

    async def rotate(self) -> tuple[Path | None, int]:
        """Start a new segment; returns the finished one and the last sequence number in it
        (every record up to it is written and applied)."""
        await self.drain()
        async with self._io:
            old, last = self.segment, self.written_seq
            await asyncio.to_thread(self._open_new_segment)
        return old, last

    async def drain(self) -> None:
        """Wait until every record appended so far is written (or failed)."""
        futs = [f for _, _, f, _ in self._pending]
        if futs:
            await asyncio.gather(*futs, return_exceptions=True)
        async with self._io:
            pass

    def _write_sync(self, data: bytes) -> None:
        fd = self._fd
        if self._torn:
            data = b"\n" + data
        try:
            view = memoryview(data)
            while view:  # a full disk may take part of a write before it refuses the rest
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError:
            # Cut the refused records back off: they were answered "not stored" (503), so
            # they must not come back at the next start, nor glue onto the next record.
            try:
                os.ftruncate(fd, self._size)
            except OSError as e:
                self._torn = True
                logger.critical("journal {}: could not cut back a failed write ({}); its fragment "
                                "stays as a torn line", self.segment.name if self.segment else "?", e)
            raise
        self._size += len(data)
        self._torn = False

    async def _writer(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            async with self._io:
                batch, self._pending = self._pending, []
                if not batch:
                    if self._closing:
                        return
                    continue
                try:
                    await asyncio.to_thread(self._write_sync, b"".join(line for _, line, _, _ in batch))
                except Exception as e:  # the writer must survive anything, or appends hang
                    logger.error("journal write failed ({}): {} records not stored",
                                 getattr(e, "strerror", None) or type(e).__name__, len(batch))
                    err = e if isinstance(e, OSError) else OSError(str(e))
                    for _, _, fut, _ in batch:
                        if not fut.done():
                            fut.set_exception(err)
                    continue
                for seq, _, fut, on_durable in batch:
                    if on_durable is not None:
                        try:
                            on_durable()
                        except Exception as e:
                            logger.exception("applying journal record {} failed", seq)
                            if not fut.done():
                                fut.set_exception(e)
                    self.written_seq = seq
                for _, _, fut, _ in batch:
                    if not fut.done():
                        fut.set_result(None)

    async def close(self) -> None:
        await self.drain()
        self._closing = True
        self._wake.set()
        if self._task:
            await self._task
            self._task = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
