"""Outbound messages for handlers and jobs: one queue per recipient, within WeCom's caps.
Handlers and jobs say what to send to whom (a person, a grid group); the transport splits long
texts, respects the per-member and per-robot rate caps and the enterprise-wide one (bot.send_pace:
replies before pushes) by waiting, never dropping, and sends.
With an outbox (bot.outbox, in the running bot) every message is on disk before it goes out and
is retried with backoff for as long as it still makes sense ([transport] reply_hours), each
recipient's in order; a call that went out but got no answer is repeated only where the receiver
drops repeats (bot.delivery), so nothing is sent twice. Retries are not logged one by one: an
outage is told in a few lines. Without an outbox (the command line) a few quick attempts are made.
A file over WeCom's upload cap (bot.outgoing.MEDIA_LIMITS) raises MediaTooLarge (logged) before
it is queued: no doomed upload, and the job that sent it knows."""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from typing import TYPE_CHECKING, Awaitable, Callable

import aiohttp
from loguru import logger

from bot import delivery
from bot.outgoing import (APP_PER_HOUR, APP_PER_MINUTE, REPLY_TO, ROBOT_MARKDOWN_LIMIT, ROBOT_PER_MINUTE,
                          TEXT_LIMIT, Outgoing, RateWindow, as_list, check_media, first_line, fit_robot_image,
                          flood_summary, split_text)
from bot.send_pace import DEFAULT_PER_HOUR, DEFAULT_PER_MINUTE, SendPace
from bot.wecom.api import WecomClient, WecomError, robot_image_payload
from bot.wecom.keepalive import NotSent

if TYPE_CHECKING:
    from bot.events import Event
    from bot.outbox import Outbox

__all__ = ["Transport", "Outgoing", "TEXT_LIMIT", "ROBOT_MARKDOWN_LIMIT", "split_text"]

SEND_ERRORS = (WecomError, aiohttp.ClientError, asyncio.TimeoutError)
_SAFE_TASK = re.compile(r"[^0-9A-Za-z_@-]")  # what a card's task id may hold

class Transport:
    """Queues sends per recipient; `flush()` waits until everything queued was tried."""

    def __init__(self, client: WecomClient, robot_url: Callable[[str], str], *,
                 max_attempts: int = 5, backoff: float = 1.0, max_backoff: float = 30.0,
                 outbox: "Outbox | None" = None, monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.client = client
        self._now, self._wall, self._sleep = monotonic, time.time, sleep
        self.coalesced = 0
        self.robot_url = robot_url
        # Without an outbox (the command line): this many attempts. With one: until `until`.
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.outbox = outbox
        # The receiver drops a repeat of an Idempotency-Key it has seen (the built-in emulator):
        # then any call whose answer was lost may be repeated. WeCom does not.
        self.keyed_receiver = False
        # Set when outbound calls can go out (in emulator mode the API is this very server).
        self.ready: asyncio.Event | None = None
        self.outage = delivery.OutageLog()
        # WeCom's enterprise-wide rate ([transport] api_per_minute), on this transport's clock.
        self.pace = SendPace(DEFAULT_PER_MINUTE, DEFAULT_PER_HOUR, now=lambda: self._now(), sleep=lambda d: self._sleep(d))
        self._queues: dict[str, asyncio.Queue[Outgoing]] = {}
        self._workers: dict[str, asyncio.Task] = {}
        self._windows: dict[str, RateWindow] = {}
        self._folds: dict[str, Outgoing] = {}  # per queue: the summary gathering replies
        # The latest undeliverable messages (each also logged); bounded for a long-running bot.
        self.failed: deque[Outgoing] = deque(maxlen=1000)
        self.delivered = 0
        # Another way tried first for a grid push or a person's text (the AI bot's proactive
        # send over its long connection): True when it took the message, False when it does
        # not apply; when it fails the message goes the usual way (robot webhook, app message).
        self.first_way: Callable[[Outgoing], Awaitable[bool]] | None = None

    # --- what handlers and jobs call -------------------------------------------------
    def send_text(self, users: str | list[str], text: str) -> None:
        for u in as_list(users):
            for part in split_text(text, TEXT_LIMIT):
                self._enqueue(Outgoing("app", u, "text", part))

    def send_markdown(self, users: str | list[str], text: str) -> None:
        for u in as_list(users):
            for part in split_text(text, TEXT_LIMIT):
                self._enqueue(Outgoing("app", u, "markdown", part))

    def send_image(self, users: str | list[str], data: bytes, filename: str = "chart.png") -> None:
        check_media("image", data, filename)
        for u in as_list(users):
            self._enqueue(Outgoing("app", u, "image", data, filename=filename))

    def send_file(self, users: str | list[str], data: bytes, filename: str) -> None:
        check_media("file", data, filename)
        for u in as_list(users):
            self._enqueue(Outgoing("app", u, "file", data, filename=filename))

    def send_card(self, users: str | list[str], card: dict, alt_text: str) -> None:
        """A template card (bot.cards) to each person; `alt_text` goes instead where WeCom refuses it."""
        for u in as_list(users):
            # WeCom refuses a task id it has seen from this app: one per recipient.
            task = f"{card.get('task_id', 'card')}-{_SAFE_TASK.sub('_', u)}"[:128]
            self._enqueue(Outgoing("app", u, "template_card", {**card, "task_id": task}, alt_text=alt_text))

    def update_card(self, userid: str, response_code: str, replace_name: str) -> None:
        """Grey out the buttons of the card `userid` tapped, saying what was decided."""
        if response_code:
            self._enqueue(Outgoing("app", userid, "card_update", {"response_code": response_code,
                                                                   "replace_name": replace_name}))

    def push_text(self, grid_id: str, text: str, mentioned: list[str] | None = None) -> None:
        parts = split_text(text, TEXT_LIMIT)
        for i, part in enumerate(parts):
            # Mention once, on the last part, so people are pinged where the list ends.
            self._enqueue(Outgoing("robot", grid_id, "text", part,
                                   mentioned=list(mentioned or []) if i == len(parts) - 1 else []))

    def push_markdown(self, grid_id: str, text: str) -> None:
        for part in split_text(text, ROBOT_MARKDOWN_LIMIT):
            self._enqueue(Outgoing("robot", grid_id, "markdown", part))

    def push_image(self, grid_id: str, data: bytes) -> None:
        self._enqueue(Outgoing("robot", grid_id, "image", data))

    def push_file(self, grid_id: str, data: bytes, filename: str) -> None:
        check_media("robot_file", data, filename)
        self._enqueue(Outgoing("robot", grid_id, "file", data, filename=filename))

    def answer_later(self, response_url: str, text: str, userid: str) -> None:
        """An AI-bot answer that missed its stream: the callback's one-shot URL, else an app message."""
        if response_url:
            self._enqueue(Outgoing("answer", response_url, "markdown", text, fallback=userid))
        else:
            self.send_text(userid, text)

    # --- the outbox's part --------------------------------------------------------------
    async def kept(self) -> None:
        """Wait until every message queued so far is on disk (the inbox marks a message handled
        only then: its reply is either sent or kept)."""
        if self.outbox is not None:
            await self.outbox.settled()

    def resend_kept(self) -> int:
        """Queue what the outbox holds unsent from before a restart, oldest first."""
        if self.outbox is None:
            return 0
        waiting = self.outbox.unsent()
        for msg in waiting:
            self._enqueue(msg)
        return len(waiting)

    def recover_reply(self, event: "Event") -> None:
        """`event` was handled before a crash but its reply was never kept: tell the person."""
        if self.outbox is not None and (text := self.outbox.lost_reply(event)):
            self._enqueue(Outgoing("app", event.sender, "text", text, cause=event.key))

    # --- queueing ----------------------------------------------------------------------
    def _enqueue(self, msg: Outgoing) -> None:
        if msg.cause is None:
            msg.cause = REPLY_TO.get()
        if self.outbox is not None and not msg.id:
            self.outbox.add(msg)
            if self.outbox.shared:
                return  # sent by the worker that holds the recipient's lane (bot.pg_drain)
        self._queue(msg)

    def _queue(self, msg: Outgoing) -> None:
        key = f"{msg.channel}:{msg.target}"
        q = self._queues.get(key)
        if q is None:
            q = self._queues[key] = asyncio.Queue()
            limits = [(ROBOT_PER_MINUTE, 60.0)] if msg.channel == "robot" else [
                (APP_PER_MINUTE, 60.0), (APP_PER_HOUR, 3600.0)]
            self._windows[key] = RateWindow(limits)
        fold = self._folds.get(key)
        if fold is not None and msg.msgtype == "text":
            # The person's cap is reached: the reply joins the summary waiting for it, so a
            # flood leaves one queued message per person, not one per message.
            fold.folded.append(first_line(msg.content))
            fold.covers.append(msg)
            self.coalesced += 1
            return
        q.put_nowait(msg)
        if key not in self._workers or self._workers[key].done():
            self._workers[key] = asyncio.create_task(self._work(key), name=f"send:{key}")

    def pending(self) -> int:
        return sum(q.qsize() for q in self._queues.values())

    async def _work(self, key: str) -> None:
        # Started from whichever handler sent first: what this worker sends later is not its reply.
        REPLY_TO.set(None)
        q, window = self._queues[key], self._windows[key]
        while not q.empty():
            msg = q.get_nowait()
            try:
                if self.ready is not None and msg.channel != "answer":  # a response_url needs no api_base
                    await self.ready.wait()
                await self._send(key, msg, q, window)
            finally:
                q.task_done()

    async def _send(self, key: str, msg: Outgoing, q: asyncio.Queue, window: RateWindow) -> None:
        while True:
            wait = window.wait_time(self._now())
            if wait > 0:
                if msg.channel == "app" and msg.msgtype == "text" and self._folds.get(key) is not msg:
                    self._open_fold(key, msg, q)
                await self._sleep(wait)
                if self.outbox is not None:
                    await self.outbox.more(key)  # shared: what came meanwhile joins the summary
                continue
            if self._folds.get(key) is msg:
                del self._folds[key]  # closed: later replies start afresh
            if len(msg.folded) > 1:
                msg.content = flood_summary(msg.folded)
                msg.folded = []
            if self.outbox is not None:
                # On disk before it leaves: a crash from here on resends it, never loses it.
                await self.outbox.keep(msg, *msg.covers)
            if msg.until is not None and self._wall() >= msg.until:
                self._give_up(msg, "expired", "it is older than [transport] reply_hours")
                return
            await self.pace.turn(msg)
            window.record(self._now())
            try:
                await self._deliver(msg)
            except SEND_ERRORS as e:
                msg.attempts += 1
                kind = delivery.classify(e)
                if kind == "refused" and msg.tried:  # nothing went out: a takeover may send it again
                    await self.outbox.not_sent(msg)
                if delivery.too_fast(e):  # not delivered: retried once the enterprise's block is over
                    self.pace.too_fast(delivery.reason(e))
                if kind == "unknown" and not delivery.may_repeat(msg, self.keyed_receiver, self._wall()):
                    logger.warning("{}: no answer from WeCom ({}); it may have arrived and WeCom could not "
                                   "drop a repeat, so it is not sent again", msg.describe(), delivery.reason(e))
                    self._finish(msg, "uncertain")
                    return
                out_of_time = (msg.until is None and msg.attempts >= self.max_attempts) or (
                    msg.until is not None and self._wall() >= msg.until)
                if kind == "permanent" or out_of_time:
                    self._refused(msg, e, kind)
                    return
                self.outage.failed(id(msg), e, self.pending() + 1,
                                   self.outbox.reply_seconds / 3600 if self.outbox is not None else None)
                await self._pause(delivery.backoff(msg.attempts, self.backoff, self.max_backoff))
                continue
            self.delivered += 1
            self.pace.succeeded()
            self.outage.succeeded()
            self._finish(msg, "sent")
            return

    async def _pause(self, seconds: float) -> None:
        """Wait before the next attempt; the first success elsewhere (WeCom is back) ends the wait."""
        back = self.outage.recovered
        sleeper = asyncio.ensure_future(self._sleep(seconds))
        woken = asyncio.ensure_future(back.wait())
        try:
            await asyncio.wait({sleeper, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            woken.cancel()

    def _refused(self, msg: Outgoing, e: BaseException, kind: str) -> None:
        REPLY_TO.set(msg.cause)  # what goes instead answers the same message
        if msg.alt_text:
            logger.warning("{} refused ({}); sending its text instead", msg.describe(), e)
            self._finish(msg, "replaced")
            self.send_text(msg.target, msg.alt_text)
        elif msg.fallback:
            logger.warning("{} refused ({}); sending it as an app message", msg.describe(), e)
            self._finish(msg, "replaced")
            self.send_text(msg.fallback, msg.content)
        elif kind == "permanent":
            self._give_up(msg, "failed", f"refused: {delivery.reason(e)}")
        else:
            self._give_up(msg, "failed", delivery.reason(e))
        REPLY_TO.set(None)

    def _give_up(self, msg: Outgoing, result: str, why: str) -> None:
        self.failed.append(msg)
        if msg.until is None:
            logger.error("could not deliver {} after {} attempt(s): {}", msg.describe(), msg.attempts, why)
        else:
            logger.error("gave up on {} after {} attempt(s) over {:.0f} min: {}", msg.describe(), msg.attempts,
                         max(0.0, self._wall() - msg.created) / 60, why)
        self._finish(msg, result)

    def _finish(self, msg: Outgoing, result: str) -> None:
        if self.outbox is not None:
            self.outbox.finish(msg, result)
            for covered in msg.covers:
                self.outbox.finish(covered, result)

    def _open_fold(self, key: str, first: Outgoing, q: asyncio.Queue) -> None:
        """The person's cap is reached: `first` becomes the one summary of their text replies,
        taking in those already queued now and, until it is sent, every new one."""
        texts, others = [first], []
        while not q.empty():
            m = q.get_nowait()
            q.task_done()
            (texts if m.msgtype == "text" else others).append(m)
        for m in others:
            q.put_nowait(m)
        first.folded = [first_line(m.content) for m in texts]
        first.covers.extend(texts[1:])
        self.coalesced += len(texts) - 1
        self._folds[key] = first

    async def flush(self, timeout: float | None = None, *, through_outage: bool = True) -> None:
        """Wait until every queued message was sent or given up. Not `through_outage` (a stop):
        while WeCom is not taking messages, only until each is kept; they go out after the start."""
        async def _all():
            while True:
                while workers := [t for t in self._workers.values() if not t.done()]:
                    if not through_outage and self.outbox is not None and self.outage.since is not None:
                        await self.outbox.settled()
                        return
                    await asyncio.wait(workers, timeout=None if through_outage else 0.2)
                # Shared (bot.pg_outbox): until this worker finds no lane left to send to.
                if not (through_outage and self.outbox is not None and self.outbox.shared) \
                        or await self.outbox.drained():
                    return
        await asyncio.wait_for(_all(), timeout)

    async def close(self, timeout: float = 5.0) -> None:
        if self.outbox is not None:
            self.outbox.closing()  # a shared outbox claims nothing more for this worker to send
        try:
            await self.flush(timeout, through_outage=False)
            if any(not t.done() for t in self._workers.values()):
                raise asyncio.TimeoutError
        except asyncio.TimeoutError:
            left = self.pending() + sum(1 for t in self._workers.values() if not t.done())
            if self.outbox is not None:
                logger.warning("stopping with about {} message(s) not yet delivered: they are kept and go out "
                               "after the next start", left)
            else:
                logger.error("shutting down with {} message(s) not yet delivered", left)
            for t in (tasks := [*self._workers.values(), *self.pace.tasks()]):
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # --- delivery ----------------------------------------------------------------------
    async def _deliver(self, msg: Outgoing) -> None:
        if self.first_way is not None and msg.channel in ("app", "robot") and msg.msgtype in ("text", "markdown"):
            try:
                if await self.first_way(msg):
                    return
            except SEND_ERRORS as e:
                logger.info("{} not taken by the AI bot ({}); sending it the usual way", msg.describe(), e)
        c, key = self.client, msg.idempotency_key
        if msg.channel == "app":
            check = msg.dedupe if msg.msgtype in delivery.CHECKED else 0
            if msg.msgtype in ("text", "markdown"):
                await c.message_send([msg.target], msg.msgtype, {"content": msg.content}, key=key,
                                     duplicate_check=check)
            elif msg.msgtype == "template_card":
                await c.message_send([msg.target], "template_card", msg.content, key=key, duplicate_check=check)
            elif msg.msgtype == "card_update":
                await c.update_template_card(msg.target, msg.content["response_code"], msg.content["replace_name"],
                                             key=key)
            else:
                if not msg.media_id:
                    try:
                        msg.media_id = await c.media_upload(msg.msgtype, msg.content, msg.filename)
                    except (aiohttp.ClientError, asyncio.TimeoutError) as e:
                        # An upload is not a message: whatever became of it, nobody received anything.
                        raise NotSent(f"media/upload: {delivery.reason(e)}") from None
                # The same media id on every retry: the request repeats exactly (duplicate check).
                await c.message_send([msg.target], msg.msgtype, {"media_id": msg.media_id}, key=key,
                                     duplicate_check=check)
        elif msg.channel == "robot":
            url = self.robot_url(msg.target)
            if not url:
                raise WecomError(93000, "grid has no robot_webhook", "webhook/send")
            if msg.msgtype == "text":
                content = {"content": msg.content}
                if msg.mentioned:
                    content["mentioned_list"] = msg.mentioned
                await c.robot_send(url, {"msgtype": "text", "text": content}, key=key)
            elif msg.msgtype == "markdown":
                await c.robot_send(url, {"msgtype": "markdown", "markdown": {"content": msg.content}}, key=key)
            elif msg.msgtype == "image":
                await c.robot_send(url, robot_image_payload(fit_robot_image(msg.content)), key=key)
            else:
                if not msg.media_id:
                    try:
                        msg.media_id = await c.robot_upload(url, msg.content, msg.filename)
                    except (aiohttp.ClientError, asyncio.TimeoutError) as e:
                        raise NotSent(f"webhook/upload_media: {delivery.reason(e)}") from None
                await c.robot_send(url, {"msgtype": "file", "file": {"media_id": msg.media_id}}, key=key)
        elif msg.channel == "answer":
            await c.response_url_send(msg.target, {"msgtype": "markdown", "markdown": {"content": msg.content}},
                                      key=key)
        else:
            await c.appchat_send(msg.target, msg.msgtype, {"content": msg.content}, key=key)
