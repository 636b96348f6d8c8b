"""A stand-in for WeCom's API that the tests can take down and bring back, or make stall.

It behaves like the real service in what matters to delivery: gettoken and agent/get for the
bot's start-up check; message/send, appchat/send and the robot's webhook/send, which count what
they deliver; message/send's duplicate check as WeCom documents it ("enable_duplicate_check": 1
drops a request whose JSON equals one delivered within duplicate_check_interval seconds, default
1800, at most 4 hours); and no key of its own: like WeCom it ignores the Idempotency-Key header
(`honour_keys=True` makes it honour it, as the built-in emulator does).

`down()` closes the listening socket (callers get "connection refused"); `up()` listens again on
the same port. `stall_next(path, n)` makes the next n calls deliver and then never answer, as a
WeCom that took the message but whose answer was lost.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import time
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web

from tests.support.factories import AGENT_ID, CORP_ID, SECRET


def duplicate_check(checked: dict[str, float], body: dict) -> tuple[str | None, bool]:
    """message/send's duplicate check: (the request's key when it asks for the check, whether it
    equals one delivered within its interval). The caller records the key's delivery time."""
    if body.get("enable_duplicate_check") not in (1, "1", True):
        return None, False
    check = json.dumps(body, sort_keys=True, ensure_ascii=False)
    interval = min(int(body.get("duplicate_check_interval", 1800)), 4 * 3600)
    seen = checked.get(check)
    return check, seen is not None and time.time() - seen < interval


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Delivered:
    path: str
    to: str  # userid (message/send), chat id (appchat/send) or robot key (webhook/send)
    content: str
    key: str = ""  # the Idempotency-Key header the bot sent


@dataclass
class FakeWecom:
    honour_keys: bool = False
    corp_id: str = CORP_ID
    secret: str = SECRET
    agent_id: int = AGENT_ID
    port: int = field(default_factory=free_port)
    delivered: list[Delivered] = field(default_factory=list)
    attempts: Counter = field(default_factory=Counter)  # path → calls that reached us
    suppressed: int = 0  # duplicates dropped by the duplicate check or the key
    stalls: dict[str, int] = field(default_factory=dict)
    _tokens: set[str] = field(default_factory=set)
    _checked: dict[str, float] = field(default_factory=dict)  # request JSON → when delivered
    _keys: set[str] = field(default_factory=set)
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/cgi-bin/"

    def robot_url(self, key: str) -> str:
        return f"{self.url}webhook/send?key={key}"

    # --- control -------------------------------------------------------------------------
    async def up(self) -> None:
        app = web.Application()
        p = "/cgi-bin/"
        app.router.add_get(p + "gettoken", self._gettoken)
        app.router.add_get(p + "agent/get", self._agent_get)
        app.router.add_post(p + "message/send", self._message_send)
        app.router.add_post(p + "appchat/send", self._appchat_send)
        app.router.add_post(p + "webhook/send", self._webhook_send)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def down(self) -> None:
        """Stop listening and drop every open connection: from now on, connection refused."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def stall_next(self, path: str, count: int = 1) -> None:
        self.stalls[path] = self.stalls.get(path, 0) + count

    def texts(self, to: str | None = None) -> list[str]:
        return [d.content for d in self.delivered if to is None or d.to == to]

    # --- WeCom's paths -------------------------------------------------------------------------
    async def _gettoken(self, request: web.Request) -> web.Response:
        if request.query.get("corpid") != self.corp_id or request.query.get("corpsecret") != self.secret:
            return web.json_response({"errcode": 40001, "errmsg": "invalid credential"})
        tok = secrets.token_urlsafe(16)
        self._tokens.add(tok)
        return web.json_response({"errcode": 0, "errmsg": "ok", "access_token": tok, "expires_in": 7200})

    async def _agent_get(self, request: web.Request) -> web.Response:
        return web.json_response({"errcode": 0, "errmsg": "ok", "agentid": self.agent_id, "name": "网格助手"})

    async def _message_send(self, request: web.Request) -> web.Response:
        if request.query.get("access_token") not in self._tokens:
            return web.json_response({"errcode": 40014, "errmsg": "invalid access_token"})
        body = await request.json()
        msgtype = body.get("msgtype", "text")
        content = body.get(msgtype, {})
        text = content.get("content", "") if isinstance(content, dict) else ""
        check, repeat = duplicate_check(self._checked, body)
        if repeat:
            return await self._answer(request, "message/send", None)
        return await self._answer(request, "message/send",
                                  Delivered("message/send", str(body.get("touser", "")), str(text)), check)

    async def _appchat_send(self, request: web.Request) -> web.Response:
        body = await request.json()
        content = body.get(body.get("msgtype", "text"), {})
        return await self._answer(request, "appchat/send",
                                  Delivered("appchat/send", str(body.get("chatid", "")), str(content.get("content", ""))))

    async def _webhook_send(self, request: web.Request) -> web.Response:
        body = await request.json()
        content = body.get(body.get("msgtype", "text"), {})
        if not str(content.get("content", "")).strip():  # the bot's start-up check of the robot
            return web.json_response({"errcode": 44004, "errmsg": "text content is empty"})
        return await self._answer(request, "webhook/send",
                                  Delivered("webhook/send", request.query.get("key", ""), str(content.get("content", ""))))

    async def _answer(self, request: web.Request, path: str, delivery: Delivered | None,
                      check: str | None = None) -> web.Response:
        self.attempts[path] += 1
        key = request.headers.get("Idempotency-Key", "")
        if delivery is None or (self.honour_keys and key and key in self._keys):
            self.suppressed += 1
        else:
            delivery.key = key
            self.delivered.append(delivery)
            if key:
                self._keys.add(key)
            if check is not None:
                self._checked[check] = time.time()
        if self.stalls.get(path, 0) > 0:
            self.stalls[path] -= 1
            await asyncio.sleep(3600)  # taken, but the answer never comes
        return web.json_response({"errcode": 0, "errmsg": "ok", "msgid": secrets.token_hex(8)})
