"""WeCom's side of the AI bot (智能机器人), played by the emulator.

A member @-mentions the bot in a grid group (or talks to it alone, by text, voice or photo); WeCom
POSTs an encrypted JSON callback to the bot, takes the passive reply (a markdown stream, refreshed
every second or so while it is unfinished) and shows it to the chat. The bot may also answer once
through the callback's response_url. Photos reach the bot as short-lived URLs serving encrypted
bytes. Everything the group sees lands in the emulator's feed, tagged with its grid, so the page
shows one timeline per grid group beside the robot's pushes.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from loguru import logger

from bot.emulator import cipher as crypto

if TYPE_CHECKING:
    from bot.emulator.state import EmulatorState

FILE_PATH = "/emulator/aibot/file/"
RESPONSE_PATH = "/emulator/aibot/response/"
FILE_TTL = 5 * 60          # WeCom: an image URL works for five minutes
RESPONSE_TTL = 3600        # a response_url takes one POST within an hour
STREAM_LIMIT = 6 * 60      # WeCom stops refreshing an unfinished stream after six minutes
REFRESH_EVERY = 0.7
CALLBACK_TIMEOUT = 10.0
# Refreshes in a row without a stream frame (bot down, refusing, unreadable) before giving up:
# otherwise a stopped bot would be asked every second for six minutes, each a logged failure.
MAX_MISSES = 5


@dataclass(frozen=True)
class Chat:
    """Where a message was said and where its answer shows."""
    chattype: str            # "group" | "single"
    userid: str
    chatid: str = ""
    grid: str = ""           # the grid whose group this is ("" in a single chat)

    def where(self) -> dict[str, str]:
        return {"chattype": self.chattype, "chatid": self.chatid, "grid": self.grid}


@dataclass
class Delivery:
    """One callback and the bot's passive reply (decrypted), if any."""
    status: int
    msgid: str
    reply: dict | None = None
    error: str = ""
    refresh: asyncio.Task | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.status == 200 and not self.error


@dataclass
class ResponseUrl:
    chat: Chat
    reply_to: str
    expires: float
    used: bool = False
    key: str = ""  # the Idempotency-Key of the POST that used it: its repeat is answered "ok"


class AibotSide:
    def __init__(self, emulator: EmulatorState):
        self.emu = emulator
        self.files: dict[str, tuple[bytes, float]] = {}
        self.response_urls: dict[str, ResponseUrl] = {}
        self.tasks: set[asyncio.Task] = set()
        # Where callbacks go; None means the bot's own [aibot] path on the app's origin.
        self.target: str | None = None
        self.refresh_every = REFRESH_EVERY
        self.stream_limit = STREAM_LIMIT
        self.callbacks: list[dict] = []  # every plaintext callback sent, newest last (bounded)
        self.errors: list[str] = []      # the bot broke the protocol: shown in logs, checked by tests
        self._msgid = itertools.count(int(time.time() * 1000))
        self._session: aiohttp.ClientSession | None = None
        # The long connection's gateway (aibot_gateway): with `[aibot] mode = "websocket"` what
        # people say goes over it instead of an HTTP callback.
        self.gateway = None

    def attach(self, app: web.Application) -> None:
        r = app.router
        r.add_get(FILE_PATH + "{token}", self.serve_file)
        r.add_post(RESPONSE_PATH + "{token}", self.take_response)
        # Before the bot's own cleanup: a refresh loop must not call a bot that is stopping.
        app.on_shutdown.append(self._shutdown)

    @property
    def config(self):
        return self.emu.config

    # --- group ↔ grid ------------------------------------------------------------------------
    @staticmethod
    def chat_id(grid) -> str:
        # A grid without a configured chat_id still has a group; the bot learns it from "绑定".
        return grid.chat_id or f"wrchat-{grid.id}"

    def grid_of(self, chatid: str):
        return next((g for g in self.config.grids if self.chat_id(g) == chatid), None)

    def group(self, userid: str, grid_id: str) -> Chat:
        g = self.config.grid(grid_id)
        if g is None:
            raise ValueError(f"unknown grid {grid_id!r}")
        return Chat("group", userid, self.chat_id(g), g.id)

    @staticmethod
    def single(userid: str) -> Chat:
        return Chat("single", userid)

    # --- what people do ----------------------------------------------------------------------
    def mention(self, text: str) -> str:
        """The text as WeCom delivers it: the bot's @-mention first, unless the person typed it."""
        at = "@" + self.config.bot.name
        return text if at in text else f"{at} {text}"

    async def group_text(self, userid: str, grid_id: str, text: str) -> Delivery:
        chat = self.group(userid, grid_id)
        text = self.mention(text)
        self._said(chat, "text", text)
        return await self.deliver(chat, "text", {"content": text})

    async def single_text(self, userid: str, text: str) -> Delivery:
        chat = self.single(userid)
        self._said(chat, "text", text)
        return await self.deliver(chat, "text", {"content": text})

    async def voice(self, userid: str, text: str) -> Delivery:
        """A voice message in a single chat; `text` is what WeCom's speech recognition heard."""
        chat = self.single(userid)
        self._said(chat, "voice", text)
        return await self.deliver(chat, "voice", {"content": text})

    async def image(self, userid: str, images: list[tuple[bytes, str, str]], text: str = "") -> Delivery:
        """Photos (data, filename, content type) in a single chat, with text they become "mixed"."""
        chat = self.single(userid)
        # The page shows the plain photo; the bot gets an encrypted copy behind a short-lived URL.
        media = [f"/emulator/ui/media/{self.emu._store_media(d, name, ctype)}" for d, name, ctype in images]
        items = [{"msgtype": "image", "image": self.image_item(d)} for d, _, _ in images]
        if text.strip() or len(items) > 1:
            self._said(chat, "mixed", text, media_urls=media)
            msg = ([{"msgtype": "text", "text": {"content": text}}] if text.strip() else []) + items
            return await self.deliver(chat, "mixed", {"msg_item": msg})
        self._said(chat, "image", "", media_urls=media)
        return await self.deliver(chat, "image", items[0]["image"])

    async def event(self, userid: str, eventtype: str = "enter_chat", grid_id: str | None = None,
                    extra: dict | None = None) -> Delivery:
        chat = self.group(userid, grid_id) if grid_id else self.single(userid)
        return await self.deliver(chat, "event", {"eventtype": eventtype, **(extra or {})},
                                  create_time=self.emu.create_time())

    def _said(self, chat: Chat, msgtype: str, content: str, **more) -> None:
        self.emu._record(kind="aibot_message", **chat.where(), frm=chat.userid,
                         from_name=self.emu._name(chat.userid), msgtype=msgtype, content=content, **more)

    # --- the callback ------------------------------------------------------------------------
    def _origin(self) -> str:
        origin = self.emu.origin
        if origin is None:
            raise RuntimeError("emulator does not know the bot's address yet")
        return origin

    def url(self) -> str:
        return self.target or self._origin() + self.config.aibot.path

    def payload(self, chat: Chat, msgtype: str, body: dict, *, msgid: str,
                response_url: str | None = None, create_time: int | None = None) -> dict:
        """The plaintext JSON WeCom sends, in its field order."""
        p: dict[str, Any] = {"msgid": msgid, "aibotid": self.config.aibot.bot_id}
        if create_time is not None:
            p["create_time"] = create_time
        if chat.chattype == "group":
            p["chatid"] = chat.chatid
        p["chattype"] = chat.chattype
        p["from"] = {"userid": chat.userid}
        if response_url:
            p["response_url"] = response_url
        p["msgtype"] = msgtype
        p[msgtype] = body
        return p

    def over_socket(self) -> bool:
        return self.config.aibot.mode == "websocket" and self.gateway is not None

    async def deliver(self, chat: Chat, msgtype: str, body: dict, *, msgid: str | None = None,
                      create_time: int | None = None) -> Delivery:
        msgid = msgid or f"aibot{next(self._msgid)}"
        if self.over_socket():
            return await self.gateway.deliver(chat, msgtype, body, msgid=msgid, create_time=create_time)
        self._forget_expired()
        payload = self.payload(chat, msgtype, body, msgid=msgid, create_time=create_time,
                               response_url=self.new_response_url(chat, msgid))
        status, reply, error = await self._post(payload)
        d = Delivery(status, msgid, reply, error)
        if reply is not None:
            d.refresh = self._take_reply(chat, msgid, reply)
        return d

    def new_response_url(self, chat: Chat, reply_to: str) -> str:
        """A one-shot URL where the bot may answer `reply_to` later, within the hour."""
        token = secrets.token_urlsafe(18)
        self.response_urls[token] = ResponseUrl(chat, reply_to, self.emu.now() + RESPONSE_TTL)
        return self.emu.own_url(RESPONSE_PATH + token)

    async def _post(self, payload: dict) -> tuple[int, dict | None, str]:
        a = self.config.aibot
        token, key = a.token.get_secret_value(), a.encoding_aes_key.get_secret_value()
        self.callbacks.append(payload)
        del self.callbacks[:-200]
        enc = crypto.encrypt(key, "", json.dumps(payload, ensure_ascii=False))
        # Signed "now" by the bot's clock, which the bot checks it against (tests set it).
        ts, nonce = str(self.emu.create_time()), str(secrets.randbelow(10**9))
        params = {"msg_signature": crypto.signature(token, ts, nonce, enc), "timestamp": ts, "nonce": nonce}
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=CALLBACK_TIMEOUT))
        try:
            async with self._session.post(self.url(), params=params, json={"encrypt": enc}) as r:
                status, raw = r.status, await r.read()
        except (aiohttp.ClientError, TimeoutError) as e:
            return 0, None, self._error(f"callback failed: {type(e).__name__}")
        if status != 200:
            return status, None, ""
        if not raw.strip():
            return status, None, ""  # nothing to say: WeCom shows nothing
        try:
            envelope = json.loads(raw)
            if str(envelope.get("nonce")) != nonce:
                return status, None, self._error("reply nonce differs from the callback's")
            plain = crypto.open_json(token, key, envelope)
            return status, json.loads(plain), ""
        except crypto.SignatureError:
            return status, None, self._error("reply signature mismatch")
        except (ValueError, TypeError, AttributeError) as e:
            return status, None, self._error(f"reply unreadable: {type(e).__name__}: {e}")

    def _error(self, what: str) -> str:
        logger.warning("AI bot reply refused by the emulator: {}", what)
        self.errors.append(what)
        del self.errors[:-100]
        return what

    # --- the bot's answers -------------------------------------------------------------------
    def _take_reply(self, chat: Chat, msgid: str, reply: dict) -> asyncio.Task | None:
        kind = reply.get("msgtype")
        if kind == "stream":
            s = reply.get("stream") or {}
            sid, content = str(s.get("id") or ""), str(s.get("content") or "")
            if s.get("finish"):
                self._answered(chat, msgid, content, "stream", "markdown", stream_id=sid)
                return None
            if not sid:
                self._error("unfinished stream without an id")
                return None
            # The chat shows the unfinished frame at once ("正在处理…") and updates it in place.
            self._answered(chat, msgid, content, "stream", "markdown", stream_id=sid, final=False)
            task = asyncio.create_task(self._refresh(chat, msgid, sid, content), name=f"aibot-stream:{sid}")
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            return task
        if kind == "text":
            self._answered(chat, msgid, str((reply.get("text") or {}).get("content", "")), "passive", "text")
        else:
            self._answered(chat, msgid, json.dumps(reply, ensure_ascii=False)[:500], "passive", str(kind))
        return None

    async def _refresh(self, chat: Chat, reply_to: str, sid: str, content: str) -> None:
        """Asks for the stream again until it finishes, as WeCom does while the chat shows it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.stream_limit
        misses = 0
        while loop.time() < deadline and misses < MAX_MISSES:
            await asyncio.sleep(self.refresh_every)
            payload = self.payload(chat, "stream", {"id": sid}, msgid=f"aibot{next(self._msgid)}")
            _, reply, _ = await self._post(payload)
            if not reply or reply.get("msgtype") != "stream":
                misses += 1
                continue
            misses = 0
            s = reply.get("stream") or {}
            if str(s.get("id") or sid) != sid:
                self._error(f"refresh of stream {sid} answered for stream {s.get('id')}")
                continue
            shown = content
            if s.get("content"):
                content = str(s["content"])
            if s.get("finish"):
                self._answered(chat, reply_to, content, "stream", "markdown", stream_id=sid)
                return
            if content != shown:
                self._answered(chat, reply_to, content, "stream", "markdown", stream_id=sid, final=False)
        # WeCom gave up (time is over, or the bot stopped answering): the chat keeps what it showed.
        self._answered(chat, reply_to, content, "stream", "markdown", stream_id=sid, gave_up=True)

    def _answered(self, chat: Chat, reply_to: str, content: str, via: str, msgtype: str, *,
                  stream_id: str = "", final: bool = True, **more) -> None:
        """Records what the chat shows. A stream's frames share its id: the page shows the
        newest in place; `final` marks the one the chat keeps."""
        if not content.strip():
            return
        self.emu._record(kind="aibot_reply", **chat.where(), to=chat.userid, to_name=self.emu._name(chat.userid),
                         msgtype=msgtype, content=content, via=via, reply_to=reply_to, stream_id=stream_id,
                         final=final, **more)

    def answers(self, *, grid: str | None = None, to: str | None = None) -> list[dict]:
        """The bot's answers as the chats finally show them, oldest first (tests)."""
        return [e for e in self.emu.feed if e["kind"] == "aibot_reply" and e.get("final")
                and (grid is None or e.get("grid") == grid) and (to is None or e.get("to") == to)]

    async def take_response(self, request: web.Request) -> web.Response:
        ru = self.response_urls.get(request.match_info["token"])
        if ru is None or self.emu.now() > ru.expires:
            return web.json_response({"errcode": 40099, "errmsg": "response_url expired or unknown"})
        key = request.headers.get("Idempotency-Key", "")
        if ru.used:
            if key and key == ru.key:  # the bot's retry of the answer it sent: taken once
                return web.json_response({"errcode": 0, "errmsg": "ok"})
            return web.json_response({"errcode": 40098, "errmsg": "response_url already used"})
        try:
            body = await request.json()
            kind = body["msgtype"]
            if kind == "markdown":
                content = body["markdown"]["content"]
                if not isinstance(content, str) or not content.strip():
                    raise ValueError("empty markdown")
            elif kind == "template_card":
                content = json.dumps(body["template_card"], ensure_ascii=False)[:500]
            else:
                return web.json_response({"errcode": 40008, "errmsg": f"invalid message type {kind!r}"})
        except (ValueError, KeyError, TypeError):
            return web.json_response({"errcode": 40035, "errmsg": "invalid request body"})
        ru.used, ru.key = True, key
        self._answered(ru.chat, ru.reply_to, content, "response_url", kind)
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    # --- photos behind short-lived URLs ----------------------------------------------------------
    def image_item(self, data: bytes) -> dict:
        """An image as a message carries it: over the long connection with a key of its own
        (base64 of 32 random bytes, without its "=" as WeCom sends it), else under the bot's key."""
        if not self.over_socket():
            return {"url": self.host_file(data)}
        key = base64.b64encode(os.urandom(32)).decode().rstrip("=")
        return {"url": self.host_file(data, key), "aeskey": key}

    def host_file(self, data: bytes, key: str | None = None) -> str:
        key = key or self.config.aibot.encoding_aes_key.get_secret_value()
        token = secrets.token_urlsafe(18)
        self.files[token] = (crypto.encrypt_file(key, data), self.emu.now() + FILE_TTL)
        return self.emu.own_url(FILE_PATH + token)

    async def serve_file(self, request: web.Request) -> web.Response:
        got = self.files.get(request.match_info["token"])
        if got is None or self.emu.now() > got[1]:
            raise web.HTTPNotFound(text="expired")
        return web.Response(body=got[0], content_type="application/octet-stream")

    def _forget_expired(self) -> None:
        now = self.emu.now()
        for t in [t for t, (_, exp) in self.files.items() if exp < now]:
            del self.files[t]
        for t in [t for t, ru in self.response_urls.items() if ru.expires < now]:
            del self.response_urls[t]

    # --- lifecycle -----------------------------------------------------------------------------
    async def idle(self, timeout: float = 30) -> None:
        """Waits until no stream is being refreshed (tests)."""
        if self.tasks:
            await asyncio.wait_for(asyncio.gather(*list(self.tasks), return_exceptions=True), timeout)

    async def _shutdown(self, app: web.Application) -> None:
        for t in list(self.tasks):
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
