"""WeCom's AI-bot gateway for the long connection (长连接), played by the emulator at
/emulator/aibot/ws, so that `[aibot] mode = "websocket"` runs offline like everything else.

As WeCom's (see the protocol notes): every frame from the bot is answered in order with
`{headers: {req_id}, errcode, errmsg}` and no cmd. Nothing but a ping is taken before a
subscribe with the configured Bot ID and Secret; wrong credentials get 853000 and the socket
stays open. One subscribed connection per bot: a new subscribe sends the old one a
`disconnected_event`, routes nothing more to it, refuses its sends (846609) but still answers its
pings, and drops it without a close frame a little later. A connection that stops pinging is
dropped. People's messages (aibot_side) go to the subscribed connection as msg and event
callbacks, each with a fresh req_id bound to that connection, a msgid and a response_url; images
lie behind short-lived URLs, encrypted with a key of their own that the message carries. What was
said while no connection was subscribed is lost, as with WeCom.
Replies are checked as WeCom checks them (the rules live in aibot_gateway_rules) and what the
chat finally shows lands in the emulator's feed, so the chat page's group view is the same over
the socket as over callbacks. Tests and demos can drop a connection, delay the answers, refuse
subscribes, and shorten the time limits.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web
from loguru import logger

from bot.emulator.aibot_gateway_rules import (ERR_BAD_CREDENTIALS, ERR_BAD_FRAME, ERR_NOT_SUBSCRIBED, Callback,
                                              ReplyRules)
from bot.emulator.aibot_side import AibotSide, Chat, Delivery

GATEWAY_PATH = "/emulator/aibot/ws"
MAX_FRAME = 4 * 1024 * 1024
KEEP_CALLBACKS = 5000  # req_ids a connection remembers (WeCom: a reply may come within 24 h)
NOT_CONNECTED = "机器人没有连上长连接,这条消息没有送达(企业微信不会补发)"


@dataclass(eq=False)
class Connection:
    ws: web.WebSocketResponse
    transport: asyncio.BaseTransport | None
    last_ping: float
    subscribed: bool = False
    kicked: bool = False
    sent: int = 0  # callbacks sent on it
    callbacks: OrderedDict[str, Callback] = field(default_factory=OrderedDict)

    @property
    def usable(self) -> bool:
        return self.subscribed and not self.kicked and not self.ws.closed


class AibotGateway:
    def __init__(self, side: AibotSide):
        self.side = side
        self.emu = side.emu
        self.rules = ReplyRules(side)
        self.connections: list[Connection] = []
        self.current: Connection | None = None
        self.frames: list[dict] = []  # every frame the bot sent, newest last (bounded): tests read it
        self.subscribes = 0
        self.pings = 0
        self.sent = 0  # callbacks sent on any connection
        self.lost: list[str] = []  # msgids said while no connection was subscribed
        self._req = itertools.count(1)
        self._tasks: set[asyncio.Task] = set()
        # Knobs (tests, demos); WeCom's own values where known.
        self.kick_close_after = 2.0  # WeCom: 2–300 s after the kick, without a close frame
        self.idle_timeout = 120.0  # WeCom drops a connection that stops pinging "after a while"
        self.ack_delay = 0.0  # seconds before each answer (a slow gateway)
        self.refuse_subscribe = False
        # The Bot ID and Secret WeCom holds; None: the configured ones (a test may reset the
        # secret "in the console" to see the bot refused).
        self.credentials: tuple[str, str] | None = None

    @property
    def config(self):
        return self.emu.config

    def attach(self, app: web.Application) -> None:
        app.router.add_get(GATEWAY_PATH, self.handle)
        app.on_shutdown.append(self._shutdown)

    # --- the socket ----------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.config.wecom.mode != "emulator":
            # In live mode the bot talks to WeCom's gateway; this one is no door to leave open
            # (refused like the emulator's other WeCom paths).
            return web.json_response({"errcode": 40014, "errmsg": "emulator API is off in live mode"},
                                     status=403)
        ws = web.WebSocketResponse(autoping=True, heartbeat=None, max_msg_size=MAX_FRAME)
        await ws.prepare(request)
        loop = asyncio.get_running_loop()
        conn = Connection(ws, request.transport, last_ping=loop.time())
        self.connections.append(conn)
        watchdog = asyncio.create_task(self._watch(conn), name="aibot-gateway-idle")
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._on_frame(conn, msg.data)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            watchdog.cancel()
            self.connections.remove(conn)
            if self.current is conn:
                self.current = None
        return ws

    async def _watch(self, conn: Connection) -> None:
        loop = asyncio.get_running_loop()
        while not conn.ws.closed:
            await asyncio.sleep(min(5.0, self.idle_timeout / 4))
            if loop.time() - conn.last_ping > self.idle_timeout:
                logger.info("AI-bot gateway: no ping for {:.0f} s, dropping the connection", self.idle_timeout)
                self._abort(conn)
                return

    async def _on_frame(self, conn: Connection, data: str) -> None:
        try:
            frame = json.loads(data)
            req_id = frame["headers"]["req_id"]
            if not isinstance(req_id, str) or not req_id:
                raise TypeError("req_id")
        except (ValueError, KeyError, TypeError):
            await self._send(conn, {"headers": {"req_id": ""}, "errcode": ERR_BAD_FRAME, "errmsg": "invalid frame"})
            return
        self.frames.append(frame)
        del self.frames[:-500]
        body = frame.get("body") if isinstance(frame.get("body"), dict) else {}
        code, errmsg = self._answer(conn, str(frame.get("cmd", "")), req_id, body)
        if self.ack_delay:
            await asyncio.sleep(self.ack_delay)
        await self._send(conn, {"headers": {"req_id": req_id}, "errcode": code, "errmsg": errmsg})

    def _answer(self, conn: Connection, cmd: str, req_id: str, body: dict) -> tuple[int, str]:
        if cmd == "aibot_subscribe":
            return self._subscribe(conn, body)
        if cmd == "ping":
            conn.last_ping = asyncio.get_running_loop().time()
            self.pings += 1
            return 0, "ok"  # a kicked connection still gets its pings answered
        if not conn.usable:
            return ERR_NOT_SUBSCRIBED, "aibot websocket not subscribed"
        if cmd == "aibot_respond_msg":
            return self.rules.respond(conn.callbacks.get(req_id), body)
        if cmd == "aibot_respond_welcome_msg":
            return self.rules.welcome(conn.callbacks.get(req_id), body)
        if cmd == "aibot_respond_update_msg":
            return self.rules.card_update(conn.callbacks.get(req_id), body)
        if cmd == "aibot_send_msg":
            return self.rules.push(body)
        return ERR_BAD_FRAME, f"unsupported cmd in the emulator: {cmd[:40]}"

    def _subscribe(self, conn: Connection, body: dict) -> tuple[int, str]:
        a = self.config.aibot
        bot_id, secret = self.credentials or (a.bot_id, a.secret.get_secret_value())
        good = (not self.refuse_subscribe and bool(bot_id and secret) and body.get("bot_id") == bot_id
                and secrets.compare_digest(str(body.get("secret", "")), secret))
        if not good:
            return ERR_BAD_CREDENTIALS, ("invalid bot_id or secret, hint: [emulator], from ip: 127.0.0.1, more info "
                                         "at https://open.work.weixin.qq.com/devtool/query?e=853000")
        old = self.current
        if old is not None and old is not conn:
            self._kick(old)
        conn.subscribed, conn.kicked = True, False
        self.current = conn
        self.subscribes += 1
        return 0, "ok"

    def _kick(self, old: Connection) -> None:
        old.kicked = True
        frame = {"cmd": "aibot_event_callback", "headers": {"req_id": self._new_req_id()},
                 "body": {"msgid": f"kick{next(self._req)}", "create_time": int(time.time()),
                          "aibotid": self.config.aibot.bot_id, "msgtype": "event",
                          "event": {"eventtype": "disconnected_event"}}}

        async def tell_then_drop() -> None:
            await self._send(old, frame)
            await asyncio.sleep(self.kick_close_after)
            self._abort(old)
        self._spawn(tell_then_drop())

    async def _send(self, conn: Connection, frame: dict) -> bool:
        if conn.ws.closed:
            return False
        try:
            await conn.ws.send_str(json.dumps(frame, ensure_ascii=False))
            return True
        except (ConnectionResetError, RuntimeError):
            return False

    # --- what people say ---------------------------------------------------------------------------
    async def deliver(self, chat: Chat, msgtype: str, body: dict, *, msgid: str, create_time: int | None = None
                      ) -> Delivery:
        kind = "msg" if msgtype != "event" else ("enter_chat" if body.get("eventtype") == "enter_chat" else "event")
        self.rules.heard_from(chat)
        conn = self.current
        if conn is None or not conn.usable:
            logger.info("AI-bot gateway: nobody connected, message {} is lost", msgid)
            self.lost.append(msgid)
            del self.lost[:-200]
            return Delivery(0, msgid, error=NOT_CONNECTED)
        payload = self.side.payload(chat, msgtype, body, msgid=msgid, create_time=create_time,
                                    response_url=self.side.new_response_url(chat, msgid))
        req_id = self._new_req_id()
        conn.callbacks[req_id] = Callback(kind, chat, msgid, asyncio.get_running_loop().time())
        while len(conn.callbacks) > KEEP_CALLBACKS:
            conn.callbacks.popitem(last=False)
        self.side.callbacks.append(payload)
        del self.side.callbacks[:-200]
        cmd = "aibot_event_callback" if msgtype == "event" else "aibot_msg_callback"
        if not await self._send(conn, {"cmd": cmd, "headers": {"req_id": req_id}, "body": payload}):
            self.lost.append(msgid)
            return Delivery(0, msgid, error=NOT_CONNECTED)
        conn.sent += 1
        self.sent += 1
        return Delivery(200, msgid)

    def _new_req_id(self) -> str:
        return f"emu_{next(self._req)}_{secrets.token_hex(4)}"

    # --- faults and waits (tests, demos) ------------------------------------------------------------
    def drop(self, conn: Connection | None = None) -> None:
        """Cuts a connection (the subscribed one by default) as a network fault does: no close
        frame, the bot sees 1006."""
        conn = conn or self.current
        if conn is not None:
            self._abort(conn)

    def restart(self) -> None:
        """The gateway restarts: every connection dropped, every req_id given out forgotten."""
        for conn in list(self.connections):
            conn.callbacks.clear()
            self._abort(conn)

    def _abort(self, conn: Connection) -> None:
        if self.current is conn:
            self.current = None
        conn.subscribed = False
        if conn.transport is not None:
            conn.transport.abort()
        else:
            self._spawn(conn.ws.close())

    async def wait_subscribed(self, count: int = 1, timeout: float = 10.0) -> Connection:
        """Waits until `count` subscribes in all have happened and one connection is usable."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while not (self.subscribes >= count and self.current is not None and self.current.usable):
            if loop.time() > end:
                raise TimeoutError(f"no subscribed AI-bot connection after {timeout} s")
            await asyncio.sleep(0.01)
        return self.current

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _shutdown(self, app: web.Application) -> None:
        for conn in list(self.connections):
            await conn.ws.close(code=1001, message=b"server shutdown")
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
