"""The WeCom API client: the only code that speaks HTTP to WeCom (or the emulator).

Async on aiohttp: the access token is fetched once under a lock, cached until 60 s before it
expires and refreshed once on 40001/40014/42001 (wechatpy's client retries without bound).
Every call has a timeout, and api_base from config is used for every path, gettoken included.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from typing import Any

import aiohttp
import orjson
from loguru import logger
from yarl import URL

from bot.wecom.keepalive import KeepAliveClient, NotSent

TOKEN_ERRORS = {40001, 40014, 42001}
# Sent with every outgoing message, the same on each retry. WeCom ignores it; the built-in
# emulator answers a repeat of a key it has seen without delivering it again (the IETF draft
# "The Idempotency-Key HTTP Header Field").
IDEMPOTENCY_HEADER = "Idempotency-Key"
DUPLICATE_CHECK_MAX = 4 * 3600  # message/send's duplicate_check_interval may not exceed 4 hours
# Refusals for calling too often. 45009 "api freq out of limit": the enterprise's or this IP's
# limit per API; 45033: too many calls at once; HTTP 429 (a gateway in front of a private
# deployment) is told as 429. All of them mean: not delivered, everything slower (bot.send_pace).
# 130101 "send too fast, exceed 20 times per minute" is one group robot's own cap (WeCom then
# refuses that robot for a while): only its queue waits.
ENTERPRISE_RATE = {45009, 45033, 429}
RATE_LIMITED = ENTERPRISE_RATE | {130101}


class WecomError(Exception):
    def __init__(self, errcode: int, errmsg: str, path: str):
        self.errcode = errcode
        self.errmsg = errmsg
        self.path = path
        super().__init__(f"{path}: errcode {errcode} {errmsg}")

    @property
    def transient(self) -> bool:
        return self.errcode in RATE_LIMITED or self.errcode in (-1, -2)


class MediaExpired(WecomError):
    """errcode 40007: WeCom keeps media for 3 days."""


class WecomClient:
    def __init__(self, api_base: str, corp_id: str, secret: str, agent_id: int, *,
                 timeout: float = 10.0, session: aiohttp.ClientSession | None = None):
        self.api_base = api_base if api_base.endswith("/") else api_base + "/"
        self.corp_id = corp_id
        self._secret = secret
        self.agent_id = agent_id
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._timeout_s = timeout
        self._session = session
        self._own_session = session is None
        # JSON POSTs (every reply is one) go through a lean keep-alive client; an injected
        # session is the caller's choice of transport and is used for everything.
        self._keepalive = KeepAliveClient() if session is None else None
        self._token: str | None = None
        self._token_expires = 0.0
        self._token_lock = asyncio.Lock()
        self.token_fetches = 0
        # (api_base, path, token) -> URL: a reply is one call, and building its URL each time
        # (parse, quote the token) is a noticeable part of it.
        self._urls: dict[tuple[str, str, str], URL] = {}

    def set_timeout(self, seconds: float) -> None:
        """How long one call may wait for WeCom's answer ([transport] timeout_seconds)."""
        self._timeout = aiohttp.ClientTimeout(total=seconds)
        self._timeout_s = seconds

    def __repr__(self) -> str:
        return f"WecomClient(api_base={self.api_base!r}, corp_id={self.corp_id!r}, agent_id={self.agent_id})"

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
            self._own_session = True
        return self._session

    async def close(self) -> None:
        if self._keepalive is not None:
            await self._keepalive.close()
        if self._own_session and self._session and not self._session.closed:
            await self._session.close()

    async def _post_json(self, url: URL | str, payload: Any, path: str, key: str = "") -> dict:
        headers = {IDEMPOTENCY_HEADER: key} if key else None
        if self._keepalive is None:
            async with self.session.post(url, json=payload, headers=headers, timeout=self._timeout) as r:
                return await _json(r, path)
        url = url if isinstance(url, URL) else URL(url)
        r = await self._keepalive.request("POST", url, orjson.dumps(payload), "application/json", self._timeout_s,
                                          headers)
        return _parse_json(r.status, r.body, path)

    # --- token ---------------------------------------------------------------------
    async def token(self, rejected: str | None = None) -> str:
        """The cached token; `rejected` is one WeCom just refused, so fetch anew unless
        another caller already did."""
        if self._token and self._token != rejected and time.monotonic() < self._token_expires - 60:
            return self._token  # the common case: no lock to take
        async with self._token_lock:
            fresh = self._token and time.monotonic() < self._token_expires - 60
            if fresh and self._token != rejected:
                return self._token
            try:
                async with self.session.get(self.api_base + "gettoken", timeout=self._timeout,
                                            params={"corpid": self.corp_id, "corpsecret": self._secret}) as r:
                    data = await _json(r, "gettoken")
            except aiohttp.ClientResponseError as e:
                raise _without_url(e, "gettoken") from None
            self.token_fetches += 1
            if data.get("errcode", 0) != 0:
                raise WecomError(data.get("errcode", -1), data.get("errmsg", ""), "gettoken")
            self._token = data["access_token"]
            self._token_expires = time.monotonic() + int(data.get("expires_in", 7200))
            return self._token

    async def _call(self, method: str, path: str, *, params: dict | None = None, json: Any = None,
                    data: Any = None, raw: bool = False, limit: int | None = None, key: str = "") -> Any:
        rejected = None
        for attempt in (0, 1):
            try:
                token = await self.token(rejected)
            except (aiohttp.ClientError, asyncio.TimeoutError) as e:
                # Without a token the call itself never went out.
                raise NotSent(f"gettoken: {type(e).__name__}") from None
            url = self._url(path, token)
            if json is not None and not params:
                body = await self._post_json(url, json, path, key)
            else:
                try:
                    async with self.session.request(method, url, params=params, json=json, data=data,
                                                    timeout=self._timeout) as r:
                        if r.status >= 500:
                            raise WecomError(-1, f"HTTP {r.status}", path)
                        ctype = r.headers.get("Content-Type", "")
                        if raw and "json" not in ctype and "text/plain" not in ctype:
                            return await _read_at_most(r, limit, path) if limit else await r.read()
                        body = await _json(r, path)
                except aiohttp.ClientResponseError as e:
                    raise _without_url(e, path) from None
            code = body.get("errcode", 0)
            if code in TOKEN_ERRORS and attempt == 0:
                logger.info("access token rejected ({}), refreshing once", code)
                rejected = token
                continue
            if code == 40007:
                raise MediaExpired(code, body.get("errmsg", ""), path)
            if code != 0:
                raise WecomError(code, body.get("errmsg", ""), path)
            return body
        raise WecomError(-1, "token refresh failed", path)  # pragma: no cover

    def _url(self, path: str, token: str) -> URL:
        key = (self.api_base, path, token)
        url = self._urls.get(key)
        if url is None:
            if len(self._urls) > 64:  # old tokens and api_bases
                self._urls.clear()
            url = self._urls[key] = URL(self.api_base + path).with_query(access_token=token)
        return url

    # --- app messages --------------------------------------------------------------
    async def message_send(self, touser: list[str], msgtype: str, content: dict, *, key: str = "",
                           duplicate_check: int = 0) -> dict:
        """`duplicate_check` (seconds, at most 4 hours) turns on WeCom's duplicate check: a request
        whose JSON equals one delivered within that time is answered but not delivered again, so a
        retry after a lost answer cannot make a second copy when it repeats the request exactly."""
        payload = {"touser": "|".join(touser), "msgtype": msgtype, "agentid": self.agent_id,
                   msgtype: content, "safe": 0}
        if duplicate_check:
            payload["enable_duplicate_check"] = 1
            payload["duplicate_check_interval"] = min(int(duplicate_check), DUPLICATE_CHECK_MAX)
        return await self._call("POST", "message/send", json=payload, key=key)

    async def update_template_card(self, userid: str, response_code: str, replace_name: str, *,
                                   key: str = "") -> dict:
        """Grey out a template card's buttons with `replace_name` ("已通过"): the response code
        of the tap (or of the send) may be used once, within 72 hours."""
        return await self._call("POST", "message/update_template_card", json={
            "userids": [userid], "agentid": self.agent_id, "response_code": response_code,
            "button": {"replace_name": replace_name}}, key=key)

    async def appchat_send(self, chatid: str, msgtype: str, content: dict, *, key: str = "") -> dict:
        return await self._call("POST", "appchat/send", json={"chatid": chatid, "msgtype": msgtype,
                                                               msgtype: content, "safe": 0}, key=key)

    async def media_upload(self, kind: str, data: bytes, filename: str) -> str:
        # quote_fields=False: WeCom takes the UTF-8 filename as is; aiohttp's default would
        # percent-encode it and a leader would receive "%E5%B9%B8….xlsx".
        form = aiohttp.FormData(quote_fields=False)
        form.add_field("media", data, filename=filename, content_type="application/octet-stream")
        body = await self._call("POST", "media/upload", params={"type": kind}, data=form)
        return body["media_id"]

    async def media_get(self, media_id: str, limit: int | None = None) -> bytes:
        """The file's bytes; WecomError -3 when it is over `limit` bytes (nothing beyond is read)."""
        result = await self._call("GET", "media/get", params={"media_id": media_id}, raw=True, limit=limit)
        if isinstance(result, dict):
            raise WecomError(-1, "media/get returned JSON", "media/get")
        return result

    # --- URLs that carry their own credential (no access token) ----------------------
    async def _post_to(self, url: str, payload: dict, path: str, key: str = "") -> dict:
        body = await self._post_json(url, payload, path, key)
        if body.get("errcode", 0) != 0:
            raise WecomError(body["errcode"], body.get("errmsg", ""), path)
        return body

    async def robot_send(self, webhook: str, payload: dict, *, key: str = "") -> dict:
        """A grid group's robot: the key is in the webhook URL. WeCom's robots have no duplicate
        check: a push whose answer was lost cannot be sent again safely."""
        return await self._post_to(webhook, payload, "webhook/send", key)

    async def response_url_send(self, url: str, payload: dict, *, key: str = "") -> dict:
        """The one-shot answer URL of an AI-bot callback."""
        return await self._post_to(url, payload, "response_url", key)

    async def download(self, url: str, limit: int) -> bytes:
        """A file behind a short-lived URL (AI-bot images), at most `limit` bytes."""
        async with self.session.get(url, timeout=self._timeout) as r:
            if r.status in (403, 404, 410):
                raise MediaExpired(r.status, "the file's URL has expired", "download")
            if r.status >= 400:
                raise WecomError(-1, f"HTTP {r.status}", "download")
            return await _read_at_most(r, limit, "download")

    async def robot_upload(self, webhook: str, data: bytes, filename: str) -> str:
        url = webhook.replace("webhook/send", "webhook/upload_media")
        form = aiohttp.FormData(quote_fields=False)  # UTF-8 filename as is, as in media_upload
        form.add_field("media", data, filename=filename, content_type="application/octet-stream")
        async with self.session.post(url, params={"type": "file"}, data=form, timeout=self._timeout) as r:
            body = await _json(r, "webhook/upload_media")
        if body.get("errcode", 0) != 0:
            raise WecomError(body["errcode"], body.get("errmsg", ""), "webhook/upload_media")
        return body["media_id"]


async def _read_at_most(r: aiohttp.ClientResponse, limit: int, path: str) -> bytes:
    """The body, read no further than `limit` bytes: a file too large is refused (-3) after at
    most limit + 1 bytes, whatever the length it announces."""
    if r.content_length is not None and r.content_length > limit:
        raise WecomError(-3, "file too large", path)
    data = bytearray()
    while len(data) <= limit and (chunk := await r.content.read(min(1 << 20, limit + 1 - len(data)))):
        data += chunk
    if len(data) > limit:
        raise WecomError(-3, "file too large", path)
    return bytes(data)


def _without_url(e: aiohttp.ClientResponseError, path: str) -> WecomError:
    """aiohttp's response errors (a redirect loop, a bad status) print the request's URL, and
    with it the access token: what reaches a log names the call instead. Transient (-1)."""
    return WecomError(-1, type(e).__name__ + (f" (HTTP {e.status})" if e.status else ""), path)


async def _json(r: aiohttp.ClientResponse, path: str) -> dict:
    if r.status >= 500:
        raise WecomError(-1, f"HTTP {r.status}", path)
    return _parse_json(r.status, await r.read(), path)


def _parse_json(status: int, raw: bytes, path: str) -> dict:
    """WeCom answers JSON; anything else (a proxy's error page, a 5xx) is a transient error."""
    if status >= 500:
        raise WecomError(-1, f"HTTP {status}", path)
    if status == 429:
        raise WecomError(429, "HTTP 429 Too Many Requests", path)
    try:
        body = orjson.loads(raw)
    except ValueError:
        raise WecomError(-2, f"HTTP {status}, not JSON", path) from None
    if not isinstance(body, dict):
        raise WecomError(-2, "unexpected JSON", path)
    return body


def robot_image_payload(data: bytes) -> dict:
    return {"msgtype": "image", "image": {"base64": base64.b64encode(data).decode(),
                                          "md5": hashlib.md5(data).hexdigest()}}
