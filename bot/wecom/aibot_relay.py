"""The AI bot over its long connection (`[aibot] mode = "websocket"`): what the socket brings goes
into the same inbox as the callbacks, and the answers go back as stream frames.

A message from the socket becomes the same events as the AI-bot callback's (bot.wecom.aibot_codec),
is deduplicated by msgid and journaled (`Inbox.accept`) before any answer goes out: WeCom never
sends a message again, so a message that could not be stored is answered with a request to send
it again. The answer is collected as for the callback (bot.wecom.aibot_endpoint's `Answers`) and
pushed on the callback's req_id: one finished stream frame when the handlers are quick, else a
"正在处理" frame first and the answer in the same stream when it is ready. An answer longer than a
stream frame takes several streams on the same req_id. When the stream cannot be used any more
(its time is up, the connection went and its req_ids with it), the answer goes by response_url,
else as a message, as for the callback.
Pushes (reminders, tallies, notices to a person) go by the AI bot's proactive send first, where
WeCom takes them (`[aibot] proactive_push`), and otherwise by the group robot or app message.
"""

from __future__ import annotations

import asyncio
import secrets
import time

from aiohttp import web
from loguru import logger

from bot import replies
from bot.chat_groups import bindings
from bot.events import AppEvent, Event
from bot.transport import Outgoing, split_text
from bot.wecom.aibot_codec import to_events
from bot.wecom.aibot_endpoint import LOST, RECEIVED, RESPONSE_URL_SECONDS, STREAM_LIMIT, WORKING, to_markdown
from bot.wecom.aibot_socket import LOST as CONNECTION_LOST
from bot.wecom.aibot_socket import KICKED_ZH, AibotSocket, SocketError
from bot.wecom.inbound import CallbackError

WELCOME_SECONDS = 4.5  # WeCom takes a welcome within 5 s of enter_chat
STORE_FAILED = "网格助手暂时无法保存消息,刚才这条没有记下,请稍后再发一次。"
REFUSED_FOR = 3600.0  # a chat that refused a push is not tried again for an hour
SHUTDOWN_WAIT = 5.0  # seconds the answers in progress get to go out before the socket closes


def with_mentions(cfg, text: str, userids: list[str]) -> str:
    """A robot's mentioned_list as AI-bot markdown: "@张三" in the text becomes the mention
    itself, whoever the text does not name is mentioned at the end (as the robot shows them)."""
    rest = []
    for u in userids:
        person = cfg.person(u)
        named = f"@{person.name}" if person else ""
        if named and named in text:
            text = text.replace(named, f"<@{u}>", 1)
        else:
            rest.append(f"<@{u}>")
    return text + ("\n" + " ".join(rest) if rest else "")


def stream_id() -> str:
    return "s" + secrets.token_hex(8)


async def _within(event: asyncio.Event, seconds: float) -> bool:
    if event.is_set():
        return True
    if seconds <= 0:
        return False
    try:
        await asyncio.wait_for(event.wait(), seconds)
        return True
    except asyncio.TimeoutError:
        return False


class SocketRelay:
    def __init__(self, rt):
        self.rt = rt  # the BotRuntime: inbox, answers, transport; bot.config is the current one
        self.socket = AibotSocket(lambda: rt.bot.config.aibot, self.url, self._on_callback,
                                  ready=rt.bot.api_ready, on_kicked=self._tell_admins)
        self._refused: dict[str, float] = {}  # chat id → until when pushes there are not tried

    def url(self) -> str:
        # In emulator mode the gateway is this very server (the emulator sets the address).
        return self.rt.aibot_ws_url or self.rt.bot.config.aibot.ws_url

    def start(self) -> None:
        self.rt.transport.first_way = self.push
        self.socket.start()

    async def stop(self) -> None:
        try:
            await self.rt.bot.idle(timeout=SHUTDOWN_WAIT)
        except asyncio.TimeoutError:
            pass  # what is still running answers by response_url
        self.rt.transport.first_way = None
        await self.socket.stop()

    def _tell_admins(self) -> None:
        """Kicked: besides the log, the admins hear it (by app message: the AI bot is gone)."""
        cfg = self.rt.bot.config
        for admin in cfg.people_with_role("admin"):
            self.rt.transport.send_text(admin.userid, f"【{cfg.bot.name}】{KICKED_ZH}")

    # --- inbound -----------------------------------------------------------------------------
    def _on_callback(self, cmd: str, req_id: str, body: dict) -> None:
        self.rt.bot.spawn(self._callback(req_id, body), name=f"aibot-socket:{req_id}")

    async def _callback(self, req_id: str, body: dict) -> None:
        rt = self.rt
        cfg = rt.bot.config
        try:
            events = to_events(body, bot_name=cfg.bot.name, received=int(rt.clock.now().timestamp()))
        except CallbackError as e:
            logger.warning("AI-bot message over the long connection refused: {}", e)
            return
        first = events[0]
        if not first.sender:
            return
        if cfg.person(first.sender) is None:
            logger.info("AI-bot message from unregistered sender {}", first.sender)
            await self._say(req_id, to_markdown(replies.UNREGISTERED), first)
            return
        try:
            outcome = await rt.inbox.accept(*events)
        except OSError as e:
            logger.error("could not store AI-bot message {}: {}", first.key, e)
            await self._say(req_id, STORE_FAILED, first)
            return
        if outcome != "new":
            return  # a duplicate is answered by the work its first copy started
        if isinstance(first, AppEvent):
            await self._welcome(req_id, first)
        else:
            await self._stream(req_id, first)

    # --- answers -----------------------------------------------------------------------------
    async def _frame(self, req_id: str, sid: str, content: str, finish: bool) -> bool:
        try:
            await self.socket.request("aibot_respond_msg", {
                "msgtype": "stream", "stream": {"id": sid, "finish": finish, "content": content}}, req_id=req_id)
            return True
        except SocketError as e:
            logger.warning("AI-bot stream frame not taken (errcode {}: {})", e.errcode, e.errmsg)
            return False

    async def _say(self, req_id: str, text: str, event: Event) -> None:
        """A one-frame answer that needs no handler (not registered, not stored)."""
        if event.chat_id:
            text = f"<@{event.sender}>\n{text}"
        await self._frame(req_id, stream_id(), text, True)

    async def _stream(self, req_id: str, first: Event) -> None:
        answers = self.rt.answers
        cfg = self.rt.bot.config.aibot
        a = answers.stream(first)
        sid = stream_id()
        loop = asyncio.get_running_loop()
        began = loop.time()
        if not await _within(a.done, cfg.reply_wait_seconds):
            a.shown_working = True
            if not await self._frame(req_id, sid, WORKING, False):
                answers.release(a.thread)
                return
            # Close the bubble a little before WeCom would expire the stream, so the person is
            # told where the answer will come from instead of seeing "正在处理" forever.
            margin = min(5.0, cfg.stream_seconds / 10)
            if not await _within(a.done, cfg.stream_seconds - margin - (loop.time() - began)):
                await self._frame(req_id, sid, LOST, True)
                answers.release(a.thread)
                return
        if answers.find(a.thread) is not a:
            return  # its time ran out just now: it went by response_url
        shown_working = a.shown_working
        text = answers.take(a, limit=None)
        if not text:
            if shown_working:
                await self._frame(req_id, sid, RECEIVED, True)  # a "正在处理" bubble is up: close it
            return
        parts = split_text(text, STREAM_LIMIT)
        for i, part in enumerate(parts):
            if not await self._frame(req_id, sid if i == 0 else stream_id(), part, True):
                self._later(a.response_url, a.received, "\n".join(parts[i:]), a.userid)
                return

    def _later(self, response_url: str, received: float, text: str, userid: str) -> None:
        fresh = self.rt.clock.now().timestamp() - received < RESPONSE_URL_SECONDS - 60
        self.rt.transport.answer_later(response_url if fresh else "", text, userid)

    async def _welcome(self, req_id: str, first: AppEvent) -> None:
        answers = self.rt.answers
        a = answers.stream(first)
        if not await _within(a.done, WELCOME_SECONDS):
            answers.release(a.thread)
            return
        text = answers.take(a)
        if not text:
            return
        try:
            await self.socket.request("aibot_respond_welcome_msg", {"msgtype": "text", "text": {"content": text}},
                                      req_id=req_id)
        except SocketError as e:
            logger.warning("AI-bot welcome not taken (errcode {}: {})", e.errcode, e.errmsg)

    # --- pushes --------------------------------------------------------------------------------
    async def push(self, msg: Outgoing) -> bool:
        """The transport's first way for a grid push or a person's text: the AI bot's proactive
        send. False when it does not apply (turned off, not connected, the group's chat id is
        not known, the chat refused lately); SocketError when WeCom refused it."""
        rt = self.rt
        cfg = rt.bot.config
        if not cfg.aibot.proactive_push or not self.socket.subscribed.is_set():
            return False
        if msg.channel == "robot":
            chat_id, chat_type = bindings(cfg, rt.store).get(msg.target, ("", ""))[0], 2
        else:
            chat_id, chat_type = msg.target, 1
        now = time.monotonic()
        if not chat_id or self._refused.get(chat_id, 0.0) > now:
            return False
        content = with_mentions(cfg, to_markdown(msg.content) if msg.msgtype == "text" else msg.content,
                                msg.mentioned)
        body: dict = {"chatid": chat_id, "msgtype": "markdown", "markdown": {"content": content}}
        if cfg.aibot.send_chat_type:
            body["chat_type"] = chat_type
        try:
            await self.socket.request("aibot_send_msg", body)
        except SocketError as e:
            if e.errcode != CONNECTION_LOST:
                # Not allowed there (never talked to the bot, no group pushes, over the cap):
                # the usual way for a while, not a refusal per message.
                self._refused[chat_id] = now + REFUSED_FOR
            raise
        return True


def attach_aibot_socket(app: web.Application, rt) -> SocketRelay:
    """Starts the long connection with the app and closes it first at shutdown, after the
    answers in progress went out (on_shutdown runs before the server waits for its handlers)."""
    relay = SocketRelay(rt)
    rt.aibot_relay = relay

    async def ctx(app: web.Application):
        relay.start()
        yield
        await relay.stop()  # already stopped at on_shutdown, unless the app never served

    async def on_shutdown(app: web.Application) -> None:
        await relay.stop()

    app.cleanup_ctx.append(ctx)
    app.on_shutdown.append(on_shutdown)
    return relay
