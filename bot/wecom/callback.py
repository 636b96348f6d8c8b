"""The self-built app's callback (GET: URL check, POST: encrypted messages) at /wecom/callback.

POST: size cap → signature + decrypt (wechatpy) → event → the inbox journals it → 200. A
message that could not be stored gets 503, so WeCom sends it again.
"""

from __future__ import annotations

from aiohttp import web
from loguru import logger

from bot.inbox import Inbox
from bot.wecom.inbound import (BadMessage, CallbackError, check_signed_time, decrypt, make_crypto, query_of,
                               read_capped, to_event, verify_url)

CALLBACK_PATH = "/wecom/callback"


class AppCallback:
    def __init__(self, inbox: Inbox):
        self.inbox = inbox
        self._crypto: tuple[tuple[str, str, str], object] | None = None

    @property
    def crypto(self):
        w = self.inbox.bot.config.wecom
        key = (w.token.get_secret_value(), w.encoding_aes_key.get_secret_value(), w.corp_id)
        if self._crypto is None or self._crypto[0] != key:  # a reload changed the token or key
            self._crypto = (key, make_crypto(*key))
        return self._crypto[1]

    def attach(self, app: web.Application) -> None:
        app.router.add_get(CALLBACK_PATH, self.get)
        app.router.add_post(CALLBACK_PATH, self.post)

    async def get(self, request: web.Request) -> web.Response:
        q = query_of(request)
        try:
            plain = verify_url(self.crypto, q.get("msg_signature", ""), q.get("timestamp", ""),
                               q.get("nonce", ""), q.get("echostr", ""))
        except CallbackError as e:
            logger.warning("callback URL check refused: {}", e)
            return web.Response(status=403, text="forbidden")
        return web.Response(text=plain)

    async def post(self, request: web.Request) -> web.Response:
        server = self.inbox.bot.config.server
        body = await read_capped(request, server.max_body_bytes, server.read_timeout_seconds)
        if isinstance(body, web.Response):
            return body
        q = query_of(request)
        try:
            xml = decrypt(self.crypto, body, q.get("msg_signature", ""), q.get("timestamp", ""), q.get("nonce", ""))
            check_signed_time(q.get("timestamp", ""), self.inbox.bot.clock.now().timestamp())
            event = to_event(xml)
        except BadMessage as e:
            logger.warning("callback refused as malformed: {}", e)
            return web.Response(status=400, text="bad request")
        except CallbackError as e:
            logger.warning("callback refused: {}", e)
            return web.Response(status=403, text="forbidden")
        if not event.sender:
            return web.Response(status=400, text="bad request")
        try:
            await self.inbox.accept(event)
        except OSError as e:
            # Not stored, so not acknowledged: WeCom will retry.
            logger.error("could not store message {}: {}", event.key, e)
            return web.Response(status=503, text="try again")
        return web.Response(text="")
