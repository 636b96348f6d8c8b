"""The inbox: accept → dedupe → journal → (200) → per-sender dispatch → done marks → replay.

A message is acknowledged (HTTP 200) only after it is in the journal; the work happens in a
tracked background task, one sender at a time so a photo follows the text it belongs to.
After a crash, messages journaled but never marked done are dispatched again at start; a
message whose record already exists (found by MsgId) only gets its lost done mark.
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
from bot.errors import report_failure
from bot.events import Event, event_from_dict
from bot.outgoing import REPLY_TO
from bot.records import weeks_between
from bot.router import Router

DONE = "inbox_done"
KIND_ZH = {"text": "文字消息", "image": "照片", "location": "位置", "voice": "语音", "app_event": "操作",
           "card_action": "卡片操作"}
DONE_BATCH_SECONDS = 0.05
RECENT_WEEKS = 14

# What an inbound channel adds to a handler's Context for one event (e.g. the AI bot's answer
# stream and the group the message was said in), and hears when the handler is done.
ChannelOf = Callable[[Event], dict[str, Any]]


class Inbox:
    def __init__(self, bot: Bot, router: Router, channel_of: ChannelOf, part_done: Callable[[Event], None]):
        self.bot = bot
        self.router = router
        self._channel_of = channel_of
        self._part_done = part_done
        self._inflight: set[str] = set()
        self._done: list[tuple[str, str]] = []
        self._done_wake = asyncio.Event()
        self._done_task: asyncio.Task | None = None
        self._sender_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

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
        if event.key in self._inflight or self.store.get("inbox", event.key, deep=False) is not None:
            return "duplicate"
        self._inflight.add(event.key)
        try:
            clock = self.bot.clock
            week = iso_week(clock.from_timestamp(event.create_time).date())
            received = clock.now().timestamp()
            await self.store.put_many([("inbox", {"id": e.key, "event": e.to_dict(), "received": received}, week)
                                       for e in (event, *more)])
        finally:
            self._inflight.discard(event.key)
        for e in (event, *more):
            self._schedule(e)
        return "new"

    def _schedule(self, event: Event) -> None:
        self.bot.spawn(self._handle(event), name=f"handle:{event.key}")

    async def _handle(self, event: Event) -> None:
        REPLY_TO.set(event.key)  # what this task sends answers this message (bot.outbox)
        async with self._sender_locks[event.sender]:
            person = self.bot.config.person(event.sender)
            ctx = None
            try:
                if person is not None:
                    ctx = Context(self.bot, event, person, **self._channel_of(event))
                    handled = await self.router.dispatch(event, ctx)
                    if not handled:
                        logger.debug("no handler for {} {}", event.kind, event.key)
            except Exception as e:
                who = person.name if person else event.sender
                report_failure(self.bot, f"handler:{event.kind}", e,
                               f"处理{who}的{KIND_ZH.get(event.kind, '消息')}时出错")
                if ctx is not None:
                    ctx.reply(replies.INTERNAL_ERROR)
            finally:
                self._part_done(event)
            self._mark_done(event.key)

    # --- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        self._done_task = asyncio.create_task(self._write_done_marks(), name="inbox-done")
        self._replay()

    async def stop(self) -> None:
        if self._done_task is not None:
            self._done_task.cancel()
            await asyncio.gather(self._done_task, return_exceptions=True)
            await self._flush_done_marks()

    def _replay(self) -> None:
        today = self.bot.clock.today()
        recent = weeks_between(today - timedelta(weeks=RECENT_WEEKS), today)
        done = {d["id"] for d in self.store.docs(DONE, recent)}
        pending = [d for d in self.store.docs("inbox", recent) if d["id"] not in done]
        if not pending:
            return
        logger.info("replaying {} acknowledged message(s) not yet handled", len(pending))
        weeks = {self.store.shard_of("inbox", d["id"]) for d in pending}
        handled = self._handled_keys(weeks)
        for doc in sorted(pending, key=lambda d: (d["event"]["create_time"], d["id"])):
            if doc["id"] in handled:
                # Handled before the crash, only the "done" mark was lost: never a second record.
                # If its reply was lost too, the person is told (bot.outbox).
                self.bot.transport.recover_reply(event_from_dict(doc["event"]))
                self._mark_done(doc["id"])
                continue
            self._schedule(event_from_dict(doc["event"]))

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
