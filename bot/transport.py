"""Outbound messages for handlers and jobs: one queue per recipient, within WeCom's caps.

Handlers and jobs say what to send to whom (a person, a grid group); the transport splits long
texts, respects the per-member and per-robot rate caps by waiting (never dropping), retries
transient failures with backoff and logs, without secrets, what it finally could not deliver.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import aiohttp
from loguru import logger

from bot.wecom.api import WecomClient, WecomError, robot_image_payload

TEXT_LIMIT = 2048
ROBOT_MARKDOWN_LIMIT = 4096
APP_PER_MINUTE = 30
APP_PER_HOUR = 1000
ROBOT_PER_MINUTE = 20
ROBOT_IMAGE_LIMIT = 2 * 1024 * 1024
_SAFE_TASK = re.compile(r"[^0-9A-Za-z_@-]")  # what a card's task id may hold


def split_text(text: str, limit: int) -> list[str]:
    """Split on line boundaries into parts of at most `limit` UTF-8 bytes."""
    if len(text.encode()) <= limit:
        return [text]
    parts, cur = [], ""
    for line in text.split("\n"):
        while len(line.encode()) > limit:  # a single overlong line: cut by characters
            cut = limit
            while len(line[:cut].encode()) > limit:
                cut -= 1
            if cur:
                parts.append(cur)
                cur = ""
            parts.append(line[:cut])
            line = line[cut:]
        candidate = f"{cur}\n{line}" if cur else line
        if len(candidate.encode()) > limit:
            parts.append(cur)
            cur = line
        else:
            cur = candidate
    if cur:
        parts.append(cur)
    return parts


@dataclass
class Outgoing:
    channel: str  # "app" (a person), "robot" (a grid group), "appchat" or "answer" (AI bot)
    target: str  # userid, grid id or chat id
    msgtype: str  # text, markdown, image, file
    content: Any
    mentioned: list[str] = field(default_factory=list)
    filename: str = ""
    attempts: int = 0
    fallback: str = ""  # "answer": the person who gets it as an app message if the URL refuses
    alt_text: str = ""  # a card's text version, sent instead if WeCom refuses the card
    # A summary being gathered while the person's cap is reached: the first line of each reply
    # folded into it (its own first), sent as one message when the cap allows.
    folded: list[str] = field(default_factory=list)

    def describe(self) -> str:
        # A response_url carries its own credential: never in a log line.
        target = "response_url" if self.channel == "answer" else self.target
        return f"{self.channel}:{target}:{self.msgtype}"


class RateWindow:
    def __init__(self, limits: list[tuple[int, float]]):
        self.limits = limits
        self.sent: deque[float] = deque()

    def wait_time(self, now: float) -> float:
        horizon = max(p for _, p in self.limits)
        while self.sent and now - self.sent[0] >= horizon:
            self.sent.popleft()
        wait = 0.0
        # `sent` is in time order, so the cap is reached when the count-th latest send is
        # still inside the period: one lookup per cap, not a scan of the last hour.
        for count, period in self.limits:
            if len(self.sent) >= count:
                t = self.sent[-count]
                if now - t < period:
                    wait = max(wait, t + period - now)
        return wait

    def record(self, now: float) -> None:
        self.sent.append(now)


class Transport:
    """Queues sends per recipient; `flush()` waits until everything queued was tried."""

    def __init__(self, client: WecomClient, robot_url: Callable[[str], str], *,
                 max_attempts: int = 5, backoff: float = 1.0,
                 monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.client = client
        self._now = monotonic
        self._sleep = sleep
        self.coalesced = 0
        self.robot_url = robot_url
        self.max_attempts = max_attempts
        self.backoff = backoff
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
        for u in _as_list(users):
            for part in split_text(text, TEXT_LIMIT):
                self._enqueue(Outgoing("app", u, "text", part))

    def send_markdown(self, users: str | list[str], text: str) -> None:
        for u in _as_list(users):
            for part in split_text(text, TEXT_LIMIT):
                self._enqueue(Outgoing("app", u, "markdown", part))

    def send_image(self, users: str | list[str], data: bytes, filename: str = "chart.png") -> None:
        for u in _as_list(users):
            self._enqueue(Outgoing("app", u, "image", data, filename=filename))

    def send_file(self, users: str | list[str], data: bytes, filename: str) -> None:
        for u in _as_list(users):
            self._enqueue(Outgoing("app", u, "file", data, filename=filename))

    def send_card(self, users: str | list[str], card: dict, alt_text: str) -> None:
        """A template card (bot.cards) to each person; `alt_text` goes instead where WeCom refuses it."""
        for u in _as_list(users):
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
        self._enqueue(Outgoing("robot", grid_id, "file", data, filename=filename))

    def answer_later(self, response_url: str, text: str, userid: str) -> None:
        """An AI-bot answer that missed its stream: the callback's one-shot URL, else an app message."""
        if response_url:
            self._enqueue(Outgoing("answer", response_url, "markdown", text, fallback=userid))
        else:
            self.send_text(userid, text)

    # --- queueing ----------------------------------------------------------------------
    def _enqueue(self, msg: Outgoing) -> None:
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
            fold.folded.append(_first_line(msg.content))
            self.coalesced += 1
            return
        q.put_nowait(msg)
        if key not in self._workers or self._workers[key].done():
            self._workers[key] = asyncio.create_task(self._work(key), name=f"send:{key}")

    def pending(self) -> int:
        return sum(q.qsize() for q in self._queues.values())

    async def _work(self, key: str) -> None:
        q, window = self._queues[key], self._windows[key]
        while not q.empty():
            msg = q.get_nowait()
            try:
                while True:
                    wait = window.wait_time(self._now())
                    if wait > 0:
                        if msg.channel == "app" and msg.msgtype == "text" and self._folds.get(key) is not msg:
                            self._open_fold(key, msg, q)
                        await self._sleep(wait)
                        continue
                    if self._folds.get(key) is msg:
                        del self._folds[key]  # closed: later replies start afresh
                    if len(msg.folded) > 1:
                        msg.content = _summary(msg.folded)
                        msg.folded = []
                    window.record(self._now())
                    try:
                        await self._deliver(msg)
                        self.delivered += 1
                        break
                    except (WecomError, aiohttp.ClientError, asyncio.TimeoutError) as e:
                        msg.attempts += 1
                        permanent = isinstance(e, WecomError) and not e.transient
                        if permanent or msg.attempts >= self.max_attempts:
                            if msg.alt_text:
                                logger.warning("{} refused ({}); sending its text instead", msg.describe(), e)
                                self.send_text(msg.target, msg.alt_text)
                                break
                            if msg.fallback:
                                logger.warning("{} refused ({}); sending it as an app message", msg.describe(), e)
                                self.send_text(msg.fallback, msg.content)
                                break
                            self.failed.append(msg)
                            logger.error("could not deliver {} after {} attempt(s): {}",
                                         msg.describe(), msg.attempts, e)
                            break
                        await self._sleep(self.backoff * 2 ** (msg.attempts - 1))
            finally:
                q.task_done()

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
        first.folded = [_first_line(m.content) for m in texts]
        self.coalesced += len(texts) - 1
        self._folds[key] = first

    async def flush(self, timeout: float | None = None) -> None:
        async def _all():
            while any(not t.done() for t in self._workers.values()):
                await asyncio.gather(*self._workers.values(), return_exceptions=True)
        await asyncio.wait_for(_all(), timeout)

    async def close(self, timeout: float = 5.0) -> None:
        try:
            await self.flush(timeout)
        except asyncio.TimeoutError:
            left = self.pending()
            logger.error("shutting down with {} message(s) not yet delivered", left)
            for t in self._workers.values():
                t.cancel()

    # --- delivery ----------------------------------------------------------------------
    async def _deliver(self, msg: Outgoing) -> None:
        if self.first_way is not None and msg.channel in ("app", "robot") and msg.msgtype in ("text", "markdown"):
            try:
                if await self.first_way(msg):
                    return
            except (WecomError, aiohttp.ClientError, asyncio.TimeoutError) as e:
                logger.info("{} not taken by the AI bot ({}); sending it the usual way", msg.describe(), e)
        c = self.client
        if msg.channel == "app":
            if msg.msgtype in ("text", "markdown"):
                await c.message_send([msg.target], msg.msgtype, {"content": msg.content})
            elif msg.msgtype == "template_card":
                await c.message_send([msg.target], "template_card", msg.content)
            elif msg.msgtype == "card_update":
                await c.update_template_card(msg.target, msg.content["response_code"], msg.content["replace_name"])
            else:
                media_id = await c.media_upload(msg.msgtype, msg.content, msg.filename)
                await c.message_send([msg.target], msg.msgtype, {"media_id": media_id})
        elif msg.channel == "robot":
            url = self.robot_url(msg.target)
            if not url:
                raise WecomError(93000, "grid has no robot_webhook", "webhook/send")
            if msg.msgtype == "text":
                content = {"content": msg.content}
                if msg.mentioned:
                    content["mentioned_list"] = msg.mentioned
                await c.robot_send(url, {"msgtype": "text", "text": content})
            elif msg.msgtype == "markdown":
                await c.robot_send(url, {"msgtype": "markdown", "markdown": {"content": msg.content}})
            elif msg.msgtype == "image":
                await c.robot_send(url, robot_image_payload(_fit_robot_image(msg.content)))
            else:
                media_id = await c.robot_upload(url, msg.content, msg.filename)
                await c.robot_send(url, {"msgtype": "file", "file": {"media_id": media_id}})
        elif msg.channel == "answer":
            await c.response_url_send(msg.target, {"msgtype": "markdown", "markdown": {"content": msg.content}})
        else:
            await c.appchat_send(msg.target, msg.msgtype, {"content": msg.content})


def _first_line(text: str) -> str:
    return text.split("\n", 1)[0]


def _summary(lines: list[str]) -> str:
    head = f"【消息较多,合并回复】您的{len(lines)}条消息均已记录:"
    body, used = [head], len(head.encode())
    for i, line in enumerate(lines):
        tail = f"……另有{len(lines) - i}条回复从略。"
        if used + len(line.encode()) + len(tail.encode()) + 2 > TEXT_LIMIT:
            body.append(tail)
            break
        body.append(line)
        used += len(line.encode()) + 1
    return "\n".join(body)


def _as_list(users: str | list[str]) -> list[str]:
    return [users] if isinstance(users, str) else list(users)


def _fit_robot_image(data: bytes) -> bytes:
    """Robots take at most 2 MB: downscale larger images until they fit."""
    if len(data) <= ROBOT_IMAGE_LIMIT:
        return data
    import io

    from PIL import Image
    img = Image.open(io.BytesIO(data)).convert("RGB")
    while True:
        img = img.resize((max(1, img.width * 3 // 4), max(1, img.height * 3 // 4)))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=85)
        if buf.tell() <= ROBOT_IMAGE_LIMIT:
            return buf.getvalue()


class DryRunTransport(Transport):
    """Prints what would be sent instead of sending (gridbot jobs run --dry-run)."""

    def __init__(self, out: Callable[[str], None] = print):
        super().__init__(client=None, robot_url=lambda g: g)  # type: ignore[arg-type]
        self.out = out

    async def _deliver(self, msg: Outgoing) -> None:
        if isinstance(msg.content, dict):  # a card (its text version) or a card's update
            body = msg.alt_text or str(msg.content)
        else:
            body = msg.content if isinstance(msg.content, str) else f"<{len(msg.content)} bytes {msg.filename}>"
        who = f"@{' @'.join(msg.mentioned)} " if msg.mentioned else ""
        self.out(f"[{msg.channel} → {msg.target} · {msg.msgtype}] {who}\n{body}\n")
