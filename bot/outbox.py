"""The outbox: every message the bot sends is on disk before it goes out, until WeCom took it.

Kept like the inbox: appended to a journal and fsynced (bot.store's put_many) before the
transport sends it, then marked with how it ended (sent, failed, expired, replaced, uncertain).
After a crash or a stop, what is not marked goes out again at start, oldest first; what is past
[transport] reply_hours is not sent late but logged. A message that was handled before a crash
but whose reply was never kept (the crash fell between storing its record and keeping its
reply) gets a short notice instead, so nobody is left without an answer.

The outbox has a Store of its own under data_dir/outbox (journal, weekly shards): replies do not
grow the main store, and only this week and last are read at start. A sent message's record is
cut down to what later decisions need: the message it answered and what WeCom's duplicate check
saw. Images and files wait as files beside it (blobs/), not inside the journal.

Repeats: each message carries an Idempotency-Key, the same on every attempt and after a restart,
which the built-in emulator honours. WeCom ignores it; for app messages WeCom's duplicate check
(enable_duplicate_check, duplicate_check_interval up to 4 hours) drops a request whose JSON
equals one it delivered within the interval, so each message is sent with the check and exactly
the same request every time. Two different replies that read the same would be one to WeCom: a
reply whose twin may still be inside the interval goes without the check (bot.transport then does
not repeat it after a lost answer).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import time
from collections import deque
from datetime import timedelta
from pathlib import Path
from typing import Callable

from loguru import logger

from bot import replies
from bot.clock import Clock, iso_week
from bot.journal import dumps
from bot.outgoing import Outgoing
from bot.store import Store, atomic_write
from bot.wecom.api import DUPLICATE_CHECK_MAX

TABLE = "outbox"
PRUNE_EVERY = 1000
KIND_ZH = {"image": "照片", "location": "位置", "voice": "语音", "card_action": "卡片操作", "app_event": "操作"}


def outgoing_from(d: dict, content) -> Outgoing:
    """A kept record (bot.outbox's or a row of the shared outbox, bot.pg_outbox) as the transport sends it."""
    msg = Outgoing(d["ch"], d["to"], d["ty"], content, mentioned=list(d.get("m", [])),
                   filename=d.get("fn", ""), fallback=d.get("fb", ""), alt_text=d.get("alt", ""),
                   id=d["id"], cause=d.get("cause"), created=d["t0"], until=d["until"],
                   dedupe=d.get("dc", 0), digest=d.get("h", ""))
    msg.kept = asyncio.get_running_loop().create_future()
    msg.kept.set_result(True)
    return msg


class Outbox:
    shared = False  # this process's own: the transport queues what it adds (bot.pg_outbox is shared)

    def __init__(self, folder: Path, clock: Clock, *, reply_seconds: float,
                 wall: Callable[[], float] = time.time):
        self.folder = folder
        self.store = Store(folder)
        self.clock = clock
        self.reply_seconds = reply_seconds
        self._wall = wall
        self._new: list[Outgoing] = []
        self._writing: list[Outgoing] = []
        self._ended: list[tuple[Outgoing, str]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._closing = False
        # Inbound messages with a reply kept: asked about only while the inbox replays at start.
        self._causes: set[str] | None = set()
        # WeCom's duplicate check, as far as this bot can know it: digest → until when a message
        # with that request may still be inside the interval (inf while one is unsent).
        self._checked: dict[str, float] = {}
        # (until, digest) in the order the intervals end (all are the same length, counted from
        # the send): pruning pops the ended ones from the front instead of scanning the dict,
        # which holds every reply of the last hours (a running bot's prune grew with its traffic).
        self._ending: deque[tuple[float, str]] = deque()
        self._unsent: list[dict] = []
        self._added = 0
        self.write_failures = 0

    @property
    def blobs(self) -> Path:
        return self.folder / "blobs"

    # --- start and stop -------------------------------------------------------------------------
    def load(self) -> None:
        """Read this week's and last week's records: what is unsent, what answered which message."""
        today = self.clock.today()
        self.store.load(recent_weeks=1, today=today)
        weeks = [iso_week(today - timedelta(weeks=1)), iso_week(today)]
        now = self._wall()
        referenced = set()
        for d in self.store.docs(TABLE, weeks):
            if d.get("cause"):
                self._causes.add(d["cause"])  # type: ignore[union-attr]
            if d.get("h") and d.get("dc"):
                until = math.inf if "r" not in d else d.get("t1", 0) + d["dc"]
                if until > now:
                    self._checked[d["h"]] = max(until, self._checked.get(d["h"], 0))
                    if until != math.inf:
                        self._ending.append((until, d["h"]))
            if "r" not in d:
                self._unsent.append(d)
                if d.get("b"):
                    referenced.add(d["b"])
        self._unsent.sort(key=lambda d: (d["t0"], int(d["id"][1:])))
        self._ending = deque(sorted(self._ending))
        self._remove_blobs(referenced)

    async def start(self) -> None:
        await self.store.start()
        self._task = asyncio.create_task(self._writer(), name="outbox-writer")

    async def close(self) -> None:
        """Write what is pending (new messages and how others ended), then close the store."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self.store.close()

    # --- keeping ---------------------------------------------------------------------------------
    def add(self, msg: Outgoing) -> None:
        """Give `msg` its record (id, deadline, duplicate check) and queue it for the disk."""
        now = self._wall()
        msg.id = self._next_id()
        msg.created = now
        msg.until = now + self.reply_seconds
        if msg.channel == "app" and msg.msgtype != "card_update":
            interval = max(60, int(min(DUPLICATE_CHECK_MAX, self.reply_seconds)))
            if isinstance(msg.content, (bytes, bytearray)):
                msg.dedupe = interval  # its request names a fresh media id: no twin possible
            else:
                msg.digest = hashlib.sha1(dumps([msg.target, msg.msgtype, msg.content])).hexdigest()[:20]
                if self._checked.get(msg.digest, 0) <= now:
                    msg.dedupe = interval
                    self._checked[msg.digest] = math.inf
        msg.kept = asyncio.get_running_loop().create_future()
        self._new.append(msg)
        self._wake.set()
        if msg.cause and self._causes is not None:
            self._causes.add(msg.cause)
        self._added += 1
        if self._added % PRUNE_EVERY == 0:
            self._prune(now)

    def _next_id(self) -> str:
        return self.store.next_local_id("O")

    def attach(self, transport) -> None:
        """The transport that sends what is kept here: it queues what is added, nothing to attach."""

    def closing(self) -> None:
        """The transport stops: what it holds is kept here already."""

    async def more(self, key: str) -> None:
        """Nothing to fetch: what this process adds, its transport has queued already."""

    async def drained(self) -> bool:
        return True  # what this process added, its transport queued: flush waits for those

    def files_waiting(self) -> int:
        """Images and files kept until they are sent."""
        return len(list(self.blobs.glob("*.bin"))) if self.blobs.exists() else 0

    async def keep(self, *msgs: Outgoing) -> None:
        """Wait until these messages are on disk (or keeping them failed: they go out anyway)."""
        for m in msgs:
            if m.kept is not None and not m.kept.done():
                await asyncio.shield(m.kept)

    async def settled(self) -> None:
        """Wait until everything added so far is on disk."""
        await self.keep(*self._new, *self._writing)

    def finish(self, msg: Outgoing, result: str) -> None:
        if msg.digest and msg.dedupe:
            # WeCom counts the interval from its delivery: from now, to be safe, whatever the result.
            until = self._checked[msg.digest] = self._wall() + msg.dedupe
            self._ending.append((until, msg.digest))
        if msg.kept is not None and msg.kept.done() and msg.kept.result():
            self._ended.append((msg, result))
            self._wake.set()

    def _prune(self, now: float) -> None:
        ending, checked = self._ending, self._checked
        while ending and ending[0][0] <= now:
            until, digest = ending.popleft()
            if checked.get(digest) == until:  # not sent again since (then a later entry ends it)
                del checked[digest]

    async def _writer(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            self._writing, self._new = self._new, []
            ended, self._ended = self._ended, []
            if not self._writing and not ended:
                if self._closing:
                    return
                continue
            ok = await self._write(self._writing, ended)
            for m in self._writing:
                if not m.kept.done():
                    m.kept.set_result(ok)
            self._writing = []
            done_files = [m for m, _ in ended if isinstance(m.content, (bytes, bytearray))]
            if ok and done_files:
                self._remove_blobs(keep=None, of=done_files)
            if self._closing:
                self._wake.set()  # one more round: anything added meanwhile, then stop

    async def _write(self, new: list[Outgoing], ended: list[tuple[Outgoing, str]]) -> bool:
        week = iso_week(self.clock.today())
        entries = [(TABLE, self._record(m), week) for m in new]
        now = self._wall()
        for m, result in ended:
            end = {"id": m.id, "r": result, "t1": now}
            if m.cause:
                end["cause"] = m.cause
            if m.digest and m.dedupe:
                end.update(h=m.digest, dc=m.dedupe)
            entries.append((TABLE, end, None))
        try:
            blobs = [m for m in new if isinstance(m.content, (bytes, bytearray))]
            if blobs:
                await asyncio.to_thread(self._write_blobs, blobs)
            await self.store.put_many(entries)
            return True
        except Exception as e:  # OSError (disk), RuntimeError (store closed): never stop the writer
            self.write_failures += 1
            logger.error("outbox: could not keep {} message(s) on disk ({}); they are sent all the same, "
                         "but a crash before they are would lose them", len(new),
                         getattr(e, "strerror", None) or type(e).__name__)
            return False

    def _record(self, m: Outgoing) -> dict:
        doc = {"id": m.id, "ch": m.channel, "to": m.target, "ty": m.msgtype, "t0": m.created, "until": m.until}
        if isinstance(m.content, (bytes, bytearray)):
            doc["b"] = f"{m.id}.bin"
        else:
            doc["c"] = m.content
        for name, value in (("m", m.mentioned), ("fn", m.filename), ("fb", m.fallback), ("alt", m.alt_text),
                            ("cause", m.cause), ("h", m.digest), ("dc", m.dedupe)):
            if value:
                doc[name] = value
        return doc

    def _write_blobs(self, msgs: list[Outgoing]) -> None:
        self.blobs.mkdir(parents=True, exist_ok=True)
        for m in msgs:
            atomic_write(self.blobs / f"{m.id}.bin", bytes(m.content))

    def _remove_blobs(self, keep: set[str] | None, of: list[Outgoing] | None = None) -> None:
        """Files of messages that ended (`of`), or every file but those in `keep` (at start)."""
        if not self.blobs.exists():
            return
        names = [f"{m.id}.bin" for m in of] if of is not None else [
            p.name for p in self.blobs.iterdir() if p.name not in (keep or set())]
        for name in names:
            try:
                os.unlink(self.blobs / name)
            except FileNotFoundError:
                pass
            except OSError as e:
                logger.warning("outbox: could not remove {}: {}", name, e)

    # --- after a restart -------------------------------------------------------------------------
    def unsent(self) -> list[Outgoing]:
        """The messages found unsent at start, as the transport queues them; those past their
        time are marked expired and logged, not sent late."""
        out, expired = [], 0
        now = self._wall()
        for d in self._unsent:
            content = d.get("c")
            if d.get("b"):
                try:
                    content = (self.blobs / d["b"]).read_bytes()
                except OSError as e:
                    logger.error("outbox: the file of {} is unreadable ({}); it is not sent", d["id"], e)
                    content = None
            msg = outgoing_from(d, content)
            if content is None:
                self.finish(msg, "failed")
            elif now >= msg.until:
                expired += 1
                self.finish(msg, "expired")
            else:
                out.append(msg)
        self._unsent = []
        if expired:
            logger.error("outbox: {} message(s) from before the restart are older than [transport] reply_hours "
                         "({:g} h) and are not sent late", expired, self.reply_seconds / 3600)
        if out:
            logger.info("outbox: {} message(s) not delivered before the restart go out now", len(out))
        return out

    def replay_done(self) -> None:
        """The inbox's replay is over: nobody asks `lost_reply` again, the answered set can go."""
        self._causes = None

    def lost_reply(self, event) -> str | None:
        """The notice for a message handled before a crash whose reply was never kept; None when
        it has a reply on record (or came by the AI bot, whose answer stream is gone)."""
        if self._causes is None or event.key in self._causes or event.via != "app":
            return None
        sent = self.clock.from_timestamp(event.create_time)
        when = f"{sent.month}月{sent.day}日 {sent:%H:%M}"
        content = getattr(event, "content", "")
        if content:
            what = f"“{content if len(content) <= 20 else content[:20] + '…'}”"
        else:
            what = KIND_ZH.get(event.kind, "消息")
        return replies.REPLY_LOST.format(when=when, what=what)
