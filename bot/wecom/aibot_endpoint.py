"""The 智能机器人 (AI bot) callback: a second inbound transport into the same events and handlers.

Each callback is journaled before it is answered, exactly like the app's. Its answer is what the
handlers say through `ctx.reply`, collected per callback: if the handlers finish within
`reply_wait_seconds` the answer goes back in the HTTP response as a finished stream frame; else
the response opens a stream that WeCom refreshes; an answer nobody came for (the stream ran out,
or the message was replayed after a restart) goes to the callback's one-shot response_url, and
failing that as an app message.
"""

from __future__ import annotations

import asyncio
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from loguru import logger

from bot import replies
from bot.context import Bot
from bot.events import AppEvent, Event, TextMessage
from bot.chat_groups import chat_grid
from bot.wecom.aibot_codec import AibotCodec, to_events
from bot.wecom.inbound import BadMessage, CallbackError, check_signed_time, query_of, read_capped

STREAM_LIMIT = 20480  # bytes of markdown in one stream frame
RESPONSE_URL_SECONDS = 3600
WORKING = "正在处理,请稍候…"
LOST = "消息已收到,处理结果将稍后单独发送。"
RECEIVED = "已收到。"


def to_markdown(text: str) -> str:
    """Our plain-text answers as WeCom markdown: nothing a sender typed may mention or format."""
    text = text.replace("<", "＜")  # "<@all>" in a report must not ping the whole group
    # A line starting with "#" ("#R12 已撤回") would become a heading.
    return re.sub(r"(?m)^(\s*)#", "\\1＃", text)


@dataclass
class Answer:
    thread: str
    userid: str
    chat_id: str
    response_url: str
    parts: int
    received: float  # unix time the callback arrived (the response_url's hour counts from it)
    is_event: bool = False
    lines: list[str] = field(default_factory=list)
    heard: list[str] = field(default_factory=list)  # speech-to-text we acted on, shown back
    finished: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)
    streaming: bool = False  # a callback answered with an open stream: WeCom will come for it
    shown_working: bool = False  # WeCom shows "正在处理": the stream must be finished, even empty
    taken: bool = False

    def text(self, limit: int | None = STREAM_LIMIT) -> str:
        """The answer as WeCom shows it; cut at `limit` bytes (None: whole, for a caller that
        sends it in several frames)."""
        if not self.lines:
            return ""
        body = "\n\n".join(self.lines)
        if self.heard:
            rid = re.search(r"#(R\d+)", body)
            fix = f"\n(听错了可发送“更正 #{rid.group(1)} …”改正)" if rid else ""
            body = "语音识别为:“" + " ".join(self.heard) + "”" + fix + "\n\n" + body
        body = to_markdown(body)
        if self.chat_id:
            body = f"<@{self.userid}>\n{body}"  # in the group, the answer names whom it answers
        if limit is not None and len(body.encode()) > limit:
            tail = "\n……(内容较长,已截断)"
            body = body.encode()[:limit - len(tail.encode())].decode(errors="ignore") + tail
        return body


class Answers:
    """Answers to AI-bot messages in the making, by callback (thread)."""

    def __init__(self, bot: Bot):
        self.bot = bot
        self._open: dict[str, Answer] = {}
        self._gone: OrderedDict[str, None] = OrderedDict()  # recently answered threads, bounded

    def was_answered(self, thread: str) -> bool:
        return thread in self._gone

    def _close(self, a: Answer) -> None:
        self._open.pop(a.thread, None)
        self._gone[a.thread] = None
        while len(self._gone) > 1000:
            self._gone.popitem(last=False)

    def _get(self, event: Event) -> Answer:
        a = self._open.get(event.thread)
        if a is None:
            a = self._open[event.thread] = Answer(
                thread=event.thread, userid=event.sender, chat_id=event.chat_id,
                response_url=event.response_url, parts=event.parts,
                received=float(event.create_time), is_event=isinstance(event, AppEvent))
        return a

    def channel(self, event: Event) -> dict[str, Any]:
        """What a handler's Context needs to answer this event where it came from."""
        if event.via != "aibot":
            return {}
        a = self._get(event)
        if isinstance(event, TextMessage) and event.spoken:
            a.heard.append(event.content)
        return {"answer": a.lines.append,
                "chat_grid": chat_grid(self.bot.config, self.bot.store, event.chat_id)}

    def stream(self, event: Event) -> Answer:
        """The callback is about to wait for this answer; WeCom will refresh it if it is late."""
        a = self._get(event)
        if not a.streaming:
            a.streaming = True
            seconds = self.bot.config.aibot.stream_seconds
            asyncio.get_running_loop().call_later(seconds, self._stream_over, a.thread)
        return a

    def find(self, thread: str) -> Answer | None:
        return self._open.get(thread)

    def part_done(self, event: Event) -> None:
        if event.via != "aibot":
            return
        a = self._open.get(event.thread)
        if a is None:
            return
        a.finished += 1
        if a.finished >= a.parts:
            a.done.set()
            if not a.streaming:
                self._later(a)

    def take(self, a: Answer, limit: int | None = STREAM_LIMIT) -> str:
        """The finished answer, handed to WeCom in a response: it is theirs now."""
        a.taken = True
        self._close(a)
        return a.text(limit)

    def release(self, thread: str) -> None:
        """The stream can no longer carry this answer (over the long connection: the connection
        went, or the stream's time is up): once done it goes by response_url, else as an app
        message."""
        self._stream_over(thread)

    def _stream_over(self, thread: str) -> None:
        a = self._open.get(thread)
        if a is None:
            return
        a.streaming = False
        if a.done.is_set():
            self._later(a)

    def _later(self, a: Answer) -> None:
        self._close(a)
        if a.taken or not a.lines:
            return
        fresh = self.bot.clock.now().timestamp() - a.received < RESPONSE_URL_SECONDS - 60
        self.bot.transport.answer_later(a.response_url if fresh else "", a.text(), a.userid)


# --- HTTP ----------------------------------------------------------------------------------


class AibotEndpoint:
    """GET (URL check) and POST (messages, stream refreshes) at `[aibot] path`."""

    def __init__(self, rt):
        self.rt = rt  # the BotRuntime: accept() journals, answers collects, bot.config is current
        self._codec: tuple[tuple[str, str], AibotCodec] | None = None

    @property
    def codec(self) -> AibotCodec:
        a = self.rt.bot.config.aibot
        key = (a.token.get_secret_value(), a.encoding_aes_key.get_secret_value())
        if self._codec is None or self._codec[0] != key:  # a reload changed the token or key
            self._codec = (key, AibotCodec(*key))
        return self._codec[1]

    async def get(self, request: web.Request) -> web.Response:
        q = query_of(request)
        try:
            plain = self.codec.verify_url(q.get("msg_signature", ""), q.get("timestamp", ""),
                                          q.get("nonce", ""), q.get("echostr", ""))
        except CallbackError as e:
            logger.warning("AI-bot URL check refused: {}", e)
            return web.Response(status=403, text="forbidden")
        return web.Response(text=plain)

    async def post(self, request: web.Request) -> web.Response:
        rt, cfg = self.rt, self.rt.bot.config
        body = await read_capped(request, cfg.server.max_body_bytes, cfg.server.read_timeout_seconds)
        if isinstance(body, web.Response):
            return body
        q = query_of(request)
        nonce = q.get("nonce", "")
        codec = self.codec
        wait = cfg.aibot.reply_wait_seconds
        try:
            payload = codec.decrypt(body, q.get("msg_signature", ""), q.get("timestamp", ""), nonce)
            check_signed_time(q.get("timestamp", ""), rt.clock.now().timestamp())
            if cfg.aibot.bot_id and payload.get("aibotid") != cfg.aibot.bot_id:
                raise CallbackError("callback for another bot")
            if payload.get("msgtype") == "stream":
                sid = (payload.get("stream") or {}).get("id")
                if not isinstance(sid, str) or not sid:
                    raise CallbackError("stream refresh without id")
                a = rt.answers.find(sid)
                if a is None:
                    # Taken already, or this process restarted: then it comes by response_url.
                    return _frame(codec, nonce, sid, "" if rt.answers.was_answered(sid) else LOST, True)
                return await self._answer(codec, nonce, a, wait)
            events = to_events(payload, bot_name=cfg.bot.name, received=int(rt.clock.now().timestamp()))
        except BadMessage as e:
            logger.warning("AI-bot callback refused as malformed: {}", e)
            return web.Response(status=400, text="bad request")
        except CallbackError as e:
            logger.warning("AI-bot callback refused: {}", e)
            return web.Response(status=403, text="forbidden")
        first = events[0]
        if not first.sender:
            return web.Response(status=400, text="bad request")
        if cfg.person(first.sender) is None:
            logger.info("AI-bot message from unregistered sender {}", first.sender)
            return _frame(codec, nonce, first.thread, to_markdown(replies.UNREGISTERED), True)
        try:
            outcome = await rt.inbox.accept(*events)
        except OSError as e:
            logger.error("could not store AI-bot message {}: {}", first.key, e)
            return web.Response(status=503, text="try again")
        if outcome == "duplicate":
            # WeCom resends a callback it got no timely answer to: answer from the same work
            # (looked up now: a resend that waited for the original's write finds its answer).
            return await self._answer(codec, nonce, rt.answers.find(first.thread), wait)
        return await self._answer(codec, nonce, rt.answers.stream(first), wait)

    async def _answer(self, codec: AibotCodec, nonce: str, a: Answer | None, wait: float) -> web.Response:
        if a is None:
            return web.Response(text="")
        if not a.done.is_set():
            try:
                await asyncio.wait_for(a.done.wait(), wait)
            except asyncio.TimeoutError:
                a.shown_working = True
                return _frame(codec, nonce, a.thread, WORKING, False)
        if a.taken:  # another request took it meanwhile (WeCom resent the callback)
            return web.Response(text="")
        is_event, shown_working = a.is_event, a.shown_working
        text = self.rt.answers.take(a)
        if not text:
            # Nothing to say (chit-chat), but a "正在处理" bubble is up: close it quietly.
            return _frame(codec, nonce, a.thread, RECEIVED, True) if shown_working else web.Response(text="")
        if is_event:  # enter_chat: the one place WeCom takes a plain text answer
            return _json(codec.encrypt({"msgtype": "text", "text": {"content": text}}, nonce))
        return _frame(codec, nonce, a.thread, text, True)


def _json(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="application/json")


def _frame(codec: AibotCodec, nonce: str, stream_id: str, content: str, finish: bool) -> web.Response:
    return _json(codec.encrypt({"msgtype": "stream",
                                "stream": {"id": stream_id, "finish": finish, "content": content}}, nonce))


def attach_aibot(app: web.Application, rt, path: str) -> None:
    endpoint = AibotEndpoint(rt)
    app.router.add_get(path, endpoint.get)
    app.router.add_post(path, endpoint.post)
