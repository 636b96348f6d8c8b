"""The built-in WeCom emulator: WeCom's API paths under /emulator/cgi-bin/, its encrypted
callback towards the bot, and a chat page at / where a person plays any configured member.

The bot talks to it exactly as to WeCom: HTTP to gettoken, message/send, appchat/send,
media/get, media/upload and the robot's webhook/send and webhook/upload_media (wecom_api.py);
a tap on a template card comes back as WeCom's card event (card_side.py).
Everything the bot sends lands in the feed (state.py) that the chat page (chat_page.py) shows.
The AI bot (智能机器人) in the grid groups, with its JSON callback, streams and response_url, is
played by aibot_side.py (its part of the page: aibot_page.py). This module puts the parts
together on the app and sends WeCom's encrypted XML callback when a member speaks.
"""

from __future__ import annotations

import secrets
from typing import Any
from xml.sax.saxutils import escape

import aiohttp
from aiohttp import web

from bot.config import Config
from bot.emulator import cipher as crypto
from bot.emulator.aibot_gateway import GATEWAY_PATH, AibotGateway
from bot.emulator.aibot_page import AibotPage
from bot.emulator.aibot_side import AibotSide
from bot.emulator.card_side import CardSide
from bot.emulator.chat_page import ChatPage, ui_allowed
from bot.emulator.state import EmulatorState
from bot.emulator.wecom_api import API_PREFIX, WecomApi


class Emulator(EmulatorState):
    def __init__(self, config: Config):
        super().__init__(config)
        self.api = WecomApi(self)
        self.page = ChatPage(self)
        self.aibot = AibotSide(self)
        self.aibot_page = AibotPage(self.aibot)
        self.aibot.gateway = self.gateway = AibotGateway(self.aibot)
        self.cards = CardSide(self)

    # --- wiring ------------------------------------------------------------------------
    def attach(self, app: web.Application, runtime) -> None:
        self.runtime = runtime
        app[EMULATOR_KEY] = self
        before = set(app.router.routes())
        self.api.attach(app.router)
        self.page.attach(app.router)
        self.aibot.attach(app)
        self.aibot_page.attach(app.router)
        self.gateway.attach(app)
        self.cards.attach(app.router)
        # Every route added above, whatever its kind (page, API, static file, the AI bot's URLs):
        # the gate guards them all, so a route added later cannot forget the token.
        self.routes = frozenset(set(app.router.routes()) - before)
        app.middlewares.append(self._gate)
        app.middlewares.append(self._learn_origin)
        # After the bot's own cleanup (registered first), whose last replies still reach the feed.
        app.on_cleanup.append(self._close)

    async def _close(self, app: web.Application) -> None:
        self.transcript.close()

    @web.middleware
    async def _gate(self, request: web.Request, handler):
        # In live mode the emulator is an admin's tool: every one of its paths wants the token.
        if request.match_info.route in self.routes and not ui_allowed(self.config, request):
            raise web.HTTPForbidden(text=FORBIDDEN)
        return await handler(request)

    @web.middleware
    async def _learn_origin(self, request: web.Request, handler):
        # The bot's API base and the callback URL are this very server, whatever port it got.
        # Only from a request the emulator would serve: in live mode a stranger's Host header
        # must not decide where the page's messages go.
        if self.callback_url is None and ui_allowed(self.config, request):
            origin = f"{request.scheme}://{request.host}"
            self.set_origin(origin)
        return await handler(request)

    def set_origin(self, origin: str) -> None:
        self.origin = origin
        self.callback_url = origin + "/wecom/callback"
        if self.runtime is not None and self.runtime.bot.config.wecom.mode == "emulator":
            self.runtime.aibot_ws_url = "ws" + origin.removeprefix("http") + GATEWAY_PATH
            self.runtime.set_api_base(origin + API_PREFIX)

    # --- the callback towards the bot -------------------------------------------------------
    def build_xml(self, userid: str, msgtype: str, fields: dict[str, Any], create_time: int | None = None,
                  msgid: str | None = None) -> tuple[str, str]:
        """The plaintext XML WeCom would send; returns (xml, msgid)."""
        w = self.config.wecom
        msgid = msgid or self.new_msgid()
        ct = create_time or self.create_time()
        parts = [f"<ToUserName><![CDATA[{w.corp_id}]]></ToUserName>",
                 f"<FromUserName><![CDATA[{escape(userid)}]]></FromUserName>",
                 f"<CreateTime>{ct}</CreateTime>", f"<MsgType><![CDATA[{msgtype}]]></MsgType>"]
        for k, v in fields.items():
            v = str(v).replace("]]>", "]]]]><![CDATA[>")
            parts.append(f"<{k}><![CDATA[{v}]]></{k}>")
        if msgtype != "event":
            parts.append(f"<MsgId>{msgid}</MsgId>")
        parts.append(f"<AgentID>{w.agent_id}</AgentID>")
        return "<xml>" + "".join(parts) + "</xml>", msgid

    def encrypt_callback(self, xml: str) -> tuple[dict[str, str], str]:
        """Encrypt and sign as WeCom does; returns (query params, body)."""
        w = self.config.wecom
        enc = crypto.encrypt(w.encoding_aes_key.get_secret_value(), w.corp_id, xml)
        # Signed "now" by the bot's clock, which the bot checks it against (tests set it).
        ts, nonce = str(self.create_time()), str(secrets.randbelow(10**9))
        sig = crypto.signature(w.token.get_secret_value(), ts, nonce, enc)
        return ({"msg_signature": sig, "timestamp": ts, "nonce": nonce},
                crypto.callback_envelope(w.corp_id, w.agent_id, enc))

    async def deliver(self, userid: str, msgtype: str, fields: dict[str, Any], *,
                      create_time: int | None = None, msgid: str | None = None) -> tuple[int, str]:
        xml, msgid = self.build_xml(userid, msgtype, fields, create_time, msgid)
        params, body = self.encrypt_callback(xml)
        if self.callback_url is None:
            raise RuntimeError("emulator does not know the callback URL yet")
        async with aiohttp.ClientSession() as s:
            async with s.post(self.callback_url, params=params, data=body.encode(),
                              headers={"Content-Type": "text/xml"}) as r:
                await r.read()
                return r.status, msgid


EMULATOR_KEY = web.AppKey("emulator", Emulator)
FORBIDDEN = ("正式模式下使用模拟器需要管理员令牌:请在地址后加上 ?token=管理员令牌"
             "(配置文件 [emulator] admin_token)。\n"
             "The emulator needs the admin token in live mode: add ?token=… to the address.\n")
