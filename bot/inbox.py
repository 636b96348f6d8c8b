"""The inbox: accept → dedupe → journal → (200) → per-sender dispatch → done marks → replay.

A message is acknowledged (HTTP 200) only after it is in the journal; the work happens in a
tracked background task, one sender at a time so a photo follows the text it belongs to.
After a crash, messages journaled but never marked done are dispatched again at start; a
message whose record already exists (found by MsgId) only gets its lost done mark.

A resend of a message still being written waits for that write and is acknowledged only if it
succeeded. A message whose handler failed for lack of disk space is not marked done: it waits
(its sender told once) and is handled again when space is back, or at the next start.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import timedelta
from typing import Any, Callable

from loguru import logger

from bot import replies
from bot.clock import iso_week, week_bounds
from bot.context import Bot, Context
from bot.errors import out_of_space, report_failure
from bot.events import Event, event_from_dict
from bot.outgoing import REPLY_TO
from bot.pg_inbox import PgInbox
from bot.records import weeks_between
from bot.router import Router

DONE = "inbox_done"
# Weeks (before last week) found at a start with every message handled: later starts do not read
# their ids again. A message accepted into such a week takes the week off the list.
CLEAN = ("meta", "inbox_clean")
KIND_ZH = {"text": "文字消息", "image": "照片", "location": "位置", "voice": "语音", "app_event": "操作",
           "card_action": "卡片操作"}
DONE_BATCH_SECONDS = 0.05
RECENT_WEEKS = 14
# Messages parked for lack of space are tried again after this, doubling up to RETRY_MAX.
RETRY_FIRST_SECONDS = 2.0
RETRY_MAX_SECONDS = 60.0
# How long an action on a record that does not exist yet waits for the messages of others
# in the same grid that are still being handled ("整改 #P1" right after "问题:…").
SETTLE_SECONDS = 2.0

# What an inbound channel adds to a handler's Context for one event (e.g. the AI bot's answer
# stream and the group the message was said in), and hears when the handler is done.
ChannelOf = Callable[[Event], dict[str, Any]]


class Inbox:
    def __init__(self, bot: Bot, router: Router, channel_of: ChannelOf, part_done: Callable[[Event], None]):
        self.bot = bot
        self.router = router
        self._channel_of = channel_of
        self._part_done = part_done
        # key -> the journal write of that message in progress (True once it is stored)
        self._inflight: dict[str, asyncio.Future[bool]] = {}
        # key -> (sender, sender's grid, resolved when handled): accepted, not yet handled
        self._open: dict[str, tuple[str, str | None, asyncio.Future[None]]] = {}
        self._parked: dict[str, Event] = {}  # failed for lack of space, waiting for it
        self._told_full: set[str] = set()
        self._retry_task: asyncio.Task | None = None
        self._done: list[tuple[str, str]] = []
        self._done_wake = asyncio.Event()
        self._done_task: asyncio.Task | None = None
        self._sender_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._clean: set[str] = set()
        # Several workers on one PostgreSQL database: their sender locks, the sweep (bot.pg_inbox).
        self._pg = PgInbox(self, RECENT_WEEKS) if getattr(bot.store, "backend", None) == "postgres" else None
        bot.settle = self.settle_grid

    @property
    def store(self):
        return self.bot.store

    # --- accepting -------------------------------------------------------------------
    async def accept(self, event: Event, *more: Event) -> str:
        """Journal a new message (an AI-bot mixed message brings several parts, stored together);
        returns 'new', 'duplicate' or 'unknown_sender'. The first part's key is the dedupe key.
        Raises OSError when it could not be stored: then it must not be acknowledged."""
        cfg = self.bot.config
        person = cfg.person(event.sender)
        if person is None:
            logger.info("message from unregistered sender {}", event.sender)
            if event.via == "app":
                self.bot.transport.send_text(event.sender, replies.UNREGISTERED)
            return "unknown_sender"
        while (writing := self._inflight.get(event.key)) is not None:
            # WeCom resent a message we are still writing (a slow disk): its answer is that
            # write's. If it failed, this resend tries the write itself.
            if await asyncio.shield(writing):
                return "duplicate"
        clock = self.bot.clock
        week = iso_week(clock.from_timestamp(event.create_time).date())
        # A resend has the CreateTime of the first try, so it is in the same week's ids.
        if self.store.has("inbox", event.key, week):
            return "duplicate"
        parts = (event, *more)
        written = asyncio.get_running_loop().create_future()
        self._inflight[event.key] = written
        for e in parts:
            self._track(e)
        stored = False
        try:
            received = clock.now().timestamp()
            entries = [("inbox", {"id": e.key, "event": e.to_dict(), "received": received}, week) for e in parts]
            if week in self._clean:  # a message dated in a week already settled (rare)
                entries.append((CLEAN[0], {"id": CLEAN[1], "weeks": sorted(self._clean - {week})}, None))
            await self.store.put_many(entries)
            self._clean.discard(week)
            stored = True
        finally:
            del self._inflight[event.key]  # before waking the resends, or they would wait again
            written.set_result(stored)
            if not stored:
                for e in parts:
                    self._untrack(e.key)
        for e in parts:
            self._schedule(e)
        return "new"

    def _schedule(self, event: Event) -> asyncio.Task:
        self._track(event)
        return self.bot.spawn(self._handle(event), name=f"handle:{event.key}")

    # --- messages in flight, for actions that overtake what they act on ------------------
    def _track(self, event: Event) -> None:
        if event.key not in self._open:
            person = self.bot.config.person(event.sender)
            self._open[event.key] = (event.sender, person.grid if person else None,
                                     asyncio.get_running_loop().create_future())

    def _untrack(self, key: str) -> None:
        entry = self._open.pop(key, None)
        if entry is not None and not entry[2].done():
            entry[2].set_result(None)

    async def settle_grid(self, grid: str | None, sender: str, timeout: float = SETTLE_SECONDS) -> None:
        """Wait (at most `timeout` s) until the messages other people sent before now, in this
        grid or about no grid in particular (all of them when `grid` is None), are handled."""
        if self._pg is not None:  # and those accepted by other workers
            return await self._pg.settle_grid(grid, sender, timeout)
        waits = self.open_of_others(grid, sender)
        if waits:
            await asyncio.wait(waits, timeout=timeout)

    def open_of_others(self, grid: str | None, sender: str) -> list[asyncio.Future]:
        return [f for who, g, f in self._open.values()
                if who != sender and (grid is None or g is None or g == grid) and not f.done()]

    # --- hooks of bot.pg_inbox ---------------------------------------------------------
    def open_keys(self) -> dict[str, str]:
        return {key: who for key, (who, _, _) in self._open.items()}

    def sender_lock(self, sender: str) -> asyncio.Lock:
        return self._sender_locks[sender]

    def finished_elsewhere(self, event: Event) -> None:
        self._part_done(event)
        self._untrack(event.key)

    async def _handle(self, event: Event) -> None:
        REPLY_TO.set(event.key)  # what this task sends answers this message (bot.outbox)
        async with self._sender_locks[event.sender]:
            if self._pg is not None:
                await self._pg.handle(event)
            elif await self.run(event):
                self._mark_done(event.key)

    async def run(self, event: Event) -> bool:
        """Dispatch one message; False when it is parked for lack of space (not done)."""
        person = self.bot.config.person(event.sender)
        ctx = None
        parked = False
        try:
            if person is not None:
                ctx = Context(self.bot, event, person, **self._channel_of(event))
                handled = await self.router.dispatch(event, ctx)
                if not handled:
                    logger.debug("no handler for {} {}", event.kind, event.key)
        except Exception as e:
            who = person.name if person else event.sender
            what = KIND_ZH.get(event.kind, "消息")
            if out_of_space(e):
                parked = True
                self._park(event)
                if event.key in self._told_full:  # a retry that met a full disk again
                    logger.info("{} still waits for disk space", event.key)
                else:
                    self._told_full.add(event.key)
                    report_failure(self.bot, "storage:full", e,
                                   f"存储空间不足,{who}的{what}暂未处理(空间恢复后自动处理)")
                    if ctx is not None:
                        ctx.reply(replies.STORAGE_FULL)
            else:
                report_failure(self.bot, f"handler:{event.kind}", e, f"处理{who}的{what}时出错")
                if ctx is not None:
                    ctx.reply(replies.INTERNAL_ERROR)
        finally:
            self._part_done(event)
            self._untrack(event.key)
        if not parked:
            self._told_full.discard(event.key)
        return not parked

    # --- waiting for disk space ----------------------------------------------------------
    # Not marked done, so a restart replays a parked message too; while the bot runs, they are
    # tried again with a growing pause (a retry downloads and decodes a photo again).
    def _park(self, event: Event) -> None:
        self._parked[event.key] = event
        if self._retry_task is None or self._retry_task.done():
            # Not one of bot.tasks: waiting for space is not work in progress that idle() (tests,
            # shutdown) should wait for; the journal keeps these messages anyway.
            self._retry_task = asyncio.create_task(self._retry_parked(), name="inbox-retry-parked")

    async def _retry_parked(self) -> None:
        pause = RETRY_FIRST_SECONDS
        while self._parked:
            await asyncio.sleep(pause)
            batch, self._parked = self._parked, {}
            logger.info("trying {} message(s) again that waited for disk space", len(batch))
            tasks = [self._schedule(e) for e in sorted(batch.values(), key=lambda e: (e.create_time, e.key))]
            await asyncio.gather(*tasks, return_exceptions=True)
            pause = RETRY_FIRST_SECONDS if len(self._parked) < len(batch) else min(pause * 2, RETRY_MAX_SECONDS)

    # --- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        self._done_task = asyncio.create_task(self._write_done_marks(), name="inbox-done")
        if self._pg is not None:
            self._pg.start()
        self._recovered: list[Event] = []
        clean = self._replay()
        if self._recovered:
            await self._pg.recover(self._recovered)  # before the outbox forgets which were answered
        if clean != self._clean:
            await self.store.put(CLEAN[0], {"id": CLEAN[1], "weeks": sorted(clean)})
        self._clean = clean

    async def stop(self) -> None:
        if self._retry_task is not None:
            self._retry_task.cancel()
            await asyncio.gather(self._retry_task, return_exceptions=True)
        if self._done_task is not None:
            self._done_task.cancel()
            await asyncio.gather(self._done_task, return_exceptions=True)
            await self._flush_done_marks()
        if self._pg is not None:
            await self._pg.stop()

    def _replay(self) -> set[str]:
        """Dispatch again what was acknowledged and never handled; returns the settled weeks."""
        today = self.bot.clock.today()
        recent = weeks_between(today - timedelta(weeks=RECENT_WEEKS), today)
        settled = iso_week(today - timedelta(days=7))  # weeks before last week may settle
        known = set((self.store.get(*CLEAN) or {}).get("weeks", []))
        clean = {w for w in known if w in recent}
        # By ids, week by week: the messages themselves stay on disk, and only the few never
        # marked done are read back.
        pending = []
        for week in recent:
            if week in clean:
                continue
            open_keys = self.store.unhandled(week)  # kept at each checkpoint (bot.store_open)
            for key in open_keys:
                # has() keeps the week's ids: the message's done mark looks for it there.
                if self.store.has("inbox", key, week):
                    pending.append(self.store.get("inbox", key, deep=False))
            if not open_keys and week < settled:
                clean.add(week)
        if not pending:
            return clean
        logger.info("replaying {} acknowledged message(s) not yet handled", len(pending))
        weeks = {self.store.shard_of("inbox", d["id"]) for d in pending}
        handled = self._handled_keys(weeks)
        for doc in sorted(pending, key=lambda d: (d["event"]["create_time"], d["id"])):
            if doc["id"] in handled:
                # Handled before the crash, only the "done" mark was lost: never a second record.
                # If its reply was lost too, the person is told (bot.outbox).
                if self._pg is not None:  # under its sender's lock: another worker may be on it
                    self._recovered.append(event_from_dict(doc["event"]))
                    continue
                self.bot.transport.recover_reply(event_from_dict(doc["event"]))
                self._mark_done(doc["id"])
                continue
            self._schedule(event_from_dict(doc["event"]))
        return clean

    def _handled_keys(self, weeks: set[str]) -> set[str]:
        keys: set[str] = set()
        # A late report may sit in an earlier week than its message: look one week back too.
        shards = set(weeks) | {iso_week(week_bounds(w)[0] - timedelta(days=7)) for w in weeks} | {"main"}
        for table in ("reports", "checkins", "problems"):
            for d in self.store.docs(table, sorted(shards)):
                keys.add(d.get("msgid"))
                keys.update(h.get("msgid") for h in d.get("history", []) if isinstance(h, dict))
        keys.discard(None)
        return keys

    # --- done marks ------------------------------------------------------------------
    # Done marks are batched: each one is tiny, and a lost one only means the message is
    # looked at again at start, where its record (found by MsgId) stops a second one.
    def _mark_done(self, key: str) -> None:
        shard = self.store.shard_of("inbox", key)
        if shard is not None:
            self._done.append((key, shard))
            self._done_wake.set()

    async def _write_done_marks(self) -> None:
        while True:
            await self._done_wake.wait()
            await asyncio.sleep(DONE_BATCH_SECONDS)
            self._done_wake.clear()
            await self._flush_done_marks()

    async def _flush_done_marks(self) -> None:
        batch, self._done = self._done, []
        if not batch:
            return
        # Their replies are on disk first: a message marked handled is never left unanswered.
        await self.bot.transport.kept()
        try:
            await self.store.put_many([(DONE, {"id": key}, shard) for key, shard in batch])
        except Exception:
            logger.exception("could not mark {} message(s) handled; they are checked again at start",
                             len(batch))
