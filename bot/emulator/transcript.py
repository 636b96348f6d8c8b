"""The emulator's transcript on disk: everything the chat page shows (members' messages, the
bot's replies, group pushes, the AI bot's messages), kept in the bot's data folder so that a
restart does not empty the page.

One JSON line per entry, appended and flushed at once (a killed process loses nothing the page
showed), synced to disk at most once a second (an fsync per message would cost every message a
disk round trip on a slow card). The file is bounded: past KEEP + SLACK entries it is rewritten
with the newest KEEP, atomically (temp file, fsync, rename), so it never grows without end and
the rewrite happens once per SLACK messages, not on every one. A line torn by a crash is skipped
when the file is read, and the file is rewritten clean before anything is appended to it.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from loguru import logger

from bot.store import atomic_file

KEEP = 5000
SLACK = 1000
SYNC_DELAY = 1.0


class Transcript:
    def __init__(self, path: Path, *, keep: int = KEEP, slack: int = SLACK):
        self.path = path
        self.keep = keep
        self.slack = slack
        self._file = None
        self._failed = False       # a write failed: said once in the log, the page goes on from memory
        self._closed = False       # after close(), each late entry is written and synced on its own
        self._sync_pending: asyncio.TimerHandle | None = None

    @property
    def limit(self) -> int:
        """How many entries may pile up before the file is trimmed to `keep`."""
        return self.keep + self.slack

    # --- reading ---------------------------------------------------------------------------
    def load(self) -> list[dict[str, Any]]:
        """The entries on disk, oldest first, at most `keep`. Unreadable lines are skipped and
        named (file:line) in the log; then the file is rewritten clean."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as e:
            logger.error("emulator transcript {} unreadable, the chat page starts empty: {}", self.path, e)
            return []
        lines = raw.split(b"\n")
        entries: list[dict[str, Any]] = []
        skipped = 0
        for no, line in enumerate(lines, 1):
            if not line.strip():
                continue
            entry = _entry(line)
            if entry is None:
                skipped += 1
                torn = no == len(lines)  # no newline after it: the write was cut short
                if torn:
                    logger.warning("{}:{}: last line of the emulator transcript is incomplete (the bot "
                                   "stopped while writing it); skipped", self.path, no)
                elif skipped <= 5:
                    logger.warning("{}:{}: line of the emulator transcript is not a feed entry; skipped",
                                   self.path, no)
                continue
            entries.append(entry)
        if skipped > 5:
            logger.warning("{}: {} unreadable lines skipped in all", self.path, skipped)
        # A last line without its newline, even a whole one, would swallow the next append.
        if skipped or len(entries) > self.keep or (raw and not raw.endswith(b"\n")):
            entries = entries[-self.keep:]
            self.rewrite(entries)
        return entries

    # --- writing ---------------------------------------------------------------------------
    def append(self, entry: dict[str, Any]) -> None:
        if self._failed:
            return
        try:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = open(self.path, "a", encoding="utf-8")
            self._file.write(_line(entry))
            self._file.flush()
        except (OSError, TypeError, ValueError) as e:
            self._fail(e)
            return
        if self._closed:
            self.sync()
            self._close_file()
        else:
            self._sync_soon()

    def rewrite(self, entries: list[dict[str, Any]]) -> None:
        """The file replaced by exactly `entries`, whole or not at all."""
        if self._failed:
            return
        self._close_file()
        try:
            with atomic_file(self.path) as f:
                f.write("".join(_line(e) for e in entries).encode("utf-8"))
        except (OSError, TypeError, ValueError) as e:
            self._fail(e)

    def sync(self) -> None:
        self._sync_pending = None
        if self._file is None:
            return
        try:
            os.fsync(self._file.fileno())
        except OSError as e:
            self._fail(e)

    def close(self) -> None:
        self._closed = True
        if self._sync_pending is not None:
            self._sync_pending.cancel()
        self.sync()
        self._close_file()

    def _sync_soon(self) -> None:
        if self._sync_pending is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.sync()  # no loop (a command, a test): now
            return
        self._sync_pending = loop.call_later(SYNC_DELAY, self.sync)

    def _close_file(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None

    def _fail(self, e: Exception) -> None:
        logger.error("emulator transcript {} cannot be written ({}: {}); the chat page keeps working, "
                     "but after a restart it shows only what came after", self.path, type(e).__name__, e)
        self._failed = True
        self._close_file()


def _line(entry: dict[str, Any]) -> str:
    return json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n"


def _entry(line: bytes) -> dict[str, Any] | None:
    try:
        e = json.loads(line)
    except ValueError:  # also a torn multi-byte character (UnicodeDecodeError)
        return None
    if not isinstance(e, dict) or not isinstance(e.get("seq"), int) or not isinstance(e.get("kind"), str):
        return None
    return e
