"""The built-in WeCom emulator: WeCom's API paths under /emulator/cgi-bin/, its encrypted
callback towards the bot, and a chat page at / where a person plays any configured member.

The bot talks to it exactly as to WeCom: HTTP to gettoken, message/send, appchat/send,
media/get, media/upload and the robot's webhook/send and webhook/upload_media. Everything the
bot sends lands in the feed that the chat page shows. The AI bot (智能机器人) in the grid groups,
with its JSON callback, streams and response_url, is played by aibot.py.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import aiohttp
from aiohttp import web

from bot.clock import iso_week
from bot.config import Config
from bot.emulator import cipher as crypto
from bot.emulator.aibot_side import AibotSide

STATIC = Path(__file__).with_name("static")
API_PREFIX = "/emulator/cgi-bin/"
MEDIA_TTL = 3 * 24 * 3600
USERID = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
CHECKIN_FLAGS = {"duplicate": "重复", "stale": "旧照片", "offhours": "非工作时段", "outside": "网格外",
                 "no_exif": "无拍摄信息"}


def _fence_center(fence) -> dict[str, float] | None:
    # The page's "发送位置" button sends this, so a demo location lands inside the grid.
    if fence is None:
        return None
    if fence.polygon:
        pts = fence.polygon
        return {"lat": sum(p[0] for p in pts) / len(pts), "lng": sum(p[1] for p in pts) / len(pts)}
    if fence.lat is not None and fence.lng is not None:
        return {"lat": fence.lat, "lng": fence.lng}
    return None


@dataclass
class Media:
    data: bytes
    filename: str
    content_type: str
    created: float


@dataclass
class Failure:
    errcode: int = 0
    status: int = 200
    count: int = 1
    delay: float = 0.0


class Emulator:
    def __init__(self, config: Config):
        self._config = config
        self.tokens: dict[str, float] = {}
        self.media: dict[str, Media] = {}
        self.feed: list[dict[str, Any]] = []
        self._seq = itertools.count(1)
        self._msgid = itertools.count(int(time.time() * 1000))
        self._changed = asyncio.Event()
        self.failures: dict[str, list[Failure]] = {}
        self.calls: dict[str, int] = {}
        self.runtime = None
        self.callback_url: str | None = None
        self.origin: str | None = None
        self.aibot = AibotSide(self)
        # WeCom's caps, enforced as WeCom does: app messages beyond 30/min per member are
        # dropped silently; robots answer 45009 beyond 20/min. Tests swap `now` for a fake clock.
        self.now = time.time
        self._app_sends: dict[str, list[float]] = {}
        self._robot_sends: dict[str, list[float]] = {}
        self.dropped: list[dict] = []

    # --- wiring ------------------------------------------------------------------------
    def attach(self, app: web.Application, runtime) -> None:
        self.runtime = runtime
        app[EMULATOR_KEY] = self
        r = app.router
        p = API_PREFIX
        r.add_get(p + "gettoken", self.api_gettoken)
        r.add_post(p + "message/send", self.api_message_send)
        r.add_get(p + "agent/get", self.api_agent_get)
        r.add_post(p + "appchat/send", self.api_appchat_send)
        r.add_get(p + "media/get", self.api_media_get)
        r.add_post(p + "media/upload", self.api_media_upload)
        r.add_post(p + "webhook/send", self.api_webhook_send)
        r.add_post(p + "webhook/upload_media", self.api_webhook_upload)
        r.add_get("/", self.ui_page)
        r.add_get("/emulator/ui/state", self.ui_state)
        r.add_post("/emulator/ui/send", self.ui_send)
        r.add_get("/emulator/ui/feed", self.ui_feed)
        r.add_get("/emulator/ui/media/{media_id}", self.ui_media)
        r.add_get("/emulator/ui/checkins", self.ui_checkins)
        r.add_get("/emulator/ui/checkin-thumb/{checkin_id}", self.ui_checkin_thumb)
        if STATIC.exists():
            r.add_static("/emulator/static/", STATIC)
        self.aibot.attach(app)
        app.middlewares.append(self._learn_origin)

    @property
    def config(self) -> Config:
        # Follow hot reloads: the runtime holds the current config.
        return self.runtime.bot.config if self.runtime is not None else self._config

    @web.middleware
    async def _learn_origin(self, request: web.Request, handler):
        # The bot's API base and the callback URL are this very server, whatever port it got.
        if self.callback_url is None:
            origin = f"{request.scheme}://{request.host}"
            self.set_origin(origin)
        return await handler(request)

    def set_origin(self, origin: str) -> None:
        self.origin = origin
        self.callback_url = origin + "/wecom/callback"
        if self.runtime is not None and self.runtime.bot.config.wecom.mode == "emulator":
            self.runtime.set_api_base(origin + API_PREFIX)

    # --- test and demo controls ----------------------------------------------------------
    def fail_next(self, path: str, *, errcode: int = 0, status: int = 200, count: int = 1,
                  delay: float = 0.0) -> None:
        """Make the next `count` calls of an API path fail (WeCom errcode or HTTP status)."""
        self.failures.setdefault(path, []).append(Failure(errcode, status, count, delay))

    def expire_media(self, media_id: str) -> None:
        self.media.pop(media_id, None)

    def sent(self, kind: str | None = None) -> list[dict]:
        return [e for e in self.feed if kind is None or e["kind"] == kind]

    # --- helpers -------------------------------------------------------------------------
    def _record(self, **entry) -> dict:
        entry = {"seq": next(self._seq), "time": datetime.now(self.config.tz).isoformat(timespec="seconds"),
                 **entry}
        self.feed.append(entry)
        if len(self.feed) > 5000:
            del self.feed[:1000]
        self._changed.set()
        self._changed = asyncio.Event()
        return entry

    def _within(self, windows: dict[str, list[float]], key: str, count: int, period: float) -> bool:
        now = self.now()
        recent = [t for t in windows.get(key, []) if now - t < period]
        if len(recent) >= count:
            windows[key] = recent
            return False
        windows[key] = recent + [now]
        return True

    def _name(self, userid: str) -> str:
        p = self.config.person(userid)
        return p.name if p else userid

    async def _injected(self, path: str) -> web.Response | None:
        if self.config.wecom.mode != "emulator":
            # Playing WeCom next to a live bot would only confuse: the API stays closed.
            return web.json_response({"errcode": 40014, "errmsg": "emulator API is off in live mode"},
                                     status=403)
        self.calls[path] = self.calls.get(path, 0) + 1
        queue = self.failures.get(path)
        if not queue:
            return None
        f = queue[0]
        f.count -= 1
        if f.count <= 0:
            queue.pop(0)
        if f.delay:
            await asyncio.sleep(f.delay)
        if f.status != 200:
            return web.Response(status=f.status, text="injected failure")
        if f.errcode:
            return web.json_response({"errcode": f.errcode, "errmsg": "injected failure"})
        return None

    def _check_token(self, request: web.Request) -> web.Response | None:
        tok = request.query.get("access_token", "")
        exp = self.tokens.get(tok)
        if exp is None:
            return web.json_response({"errcode": 40014, "errmsg": "invalid access_token"})
        if exp < time.time():
            return web.json_response({"errcode": 42001, "errmsg": "access_token expired"})
        return None

    def _store_media(self, data: bytes, filename: str, content_type: str) -> str:
        # Like WeCom, forget media after three days, so a long demo does not grow without end.
        now = time.time()
        for mid in [m for m, v in self.media.items() if now - v.created > MEDIA_TTL]:
            del self.media[mid]
        media_id = "emu" + secrets.token_hex(12)
        self.media[media_id] = Media(data, filename, content_type, time.time())
        return media_id

    # --- WeCom API -----------------------------------------------------------------------
    async def api_gettoken(self, request: web.Request) -> web.Response:
        if (r := await self._injected("gettoken")) is not None:
            return r
        w = self.config.wecom
        if request.query.get("corpid") != w.corp_id:
            return web.json_response({"errcode": 40013, "errmsg": "invalid corpid"})
        if request.query.get("corpsecret") != w.secret.get_secret_value():
            return web.json_response({"errcode": 40001, "errmsg": "invalid credential"})
        tok = secrets.token_urlsafe(24)
        self.tokens[tok] = time.time() + 7200
        return web.json_response({"errcode": 0, "errmsg": "ok", "access_token": tok, "expires_in": 7200})

    async def api_message_send(self, request: web.Request) -> web.Response:
        if (r := await self._injected("message/send")) is not None:
            return r
        if (r := self._check_token(request)) is not None:
            return r
        body = await request.json()
        if int(body.get("agentid", -1)) != self.config.wecom.agent_id:
            return web.json_response({"errcode": 40056, "errmsg": "invalid agentid"})
        users = [u for u in str(body.get("touser", "")).split("|") if u]
        # WeCom's directory holds more people than the bot's config: any well-formed userid exists.
        known = [u for u in users if USERID.fullmatch(u)]
        invalid = [u for u in users if not USERID.fullmatch(u)]
        if not known:
            return web.json_response({"errcode": 81013, "errmsg": "all recipients invalid",
                                      "invaliduser": "|".join(invalid)})
        msgtype = body.get("msgtype", "text")
        content = self._content(msgtype, body.get(msgtype, {}))
        delivered = [u for u in known if self._within(self._app_sends, u, 30, 60)]
        for u in set(known) - set(delivered):
            self.dropped.append({"to": u, **content})
        if delivered:
            self._record(kind="app_message", to=delivered, to_name="、".join(self._name(u) for u in delivered),
                         **content)
        return web.json_response({"errcode": 0, "errmsg": "ok", "invaliduser": "|".join(invalid),
                                  "msgid": str(next(self._msgid))})

    async def api_agent_get(self, request: web.Request) -> web.Response:
        if (r := await self._injected("agent/get")) is not None:
            return r
        if (r := self._check_token(request)) is not None:
            return r
        if request.query.get("agentid") != str(self.config.wecom.agent_id):
            return web.json_response({"errcode": 40056, "errmsg": "invalid agentid"})
        return web.json_response({"errcode": 0, "errmsg": "ok", "agentid": self.config.wecom.agent_id,
                                  "name": self.config.bot.name})

    async def api_appchat_send(self, request: web.Request) -> web.Response:
        if (r := await self._injected("appchat/send")) is not None:
            return r
        if (r := self._check_token(request)) is not None:
            return r
        body = await request.json()
        msgtype = body.get("msgtype", "text")
        self._record(kind="appchat", to=body.get("chatid", ""), to_name=body.get("chatid", ""),
                     **self._content(msgtype, body.get(msgtype, {})))
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    def _content(self, msgtype: str, content: dict) -> dict:
        if msgtype in ("text", "markdown"):
            return {"msgtype": msgtype, "content": str(content.get("content", ""))}
        if msgtype in ("image", "file", "voice", "video"):
            mid = content.get("media_id", "")
            m = self.media.get(mid)
            return {"msgtype": msgtype, "content": "", "media_url": f"/emulator/ui/media/{mid}",
                    "filename": m.filename if m else ""}
        return {"msgtype": msgtype, "content": json.dumps(content, ensure_ascii=False)[:500]}

    async def api_media_get(self, request: web.Request) -> web.Response:
        if (r := await self._injected("media/get")) is not None:
            return r
        if (r := self._check_token(request)) is not None:
            return r
        m = self.media.get(request.query.get("media_id", ""))
        if m is None or time.time() - m.created > MEDIA_TTL:
            return web.json_response({"errcode": 40007, "errmsg": "invalid media_id"})
        return web.Response(body=m.data, content_type=m.content_type,
                            headers={"Content-Disposition": f'attachment; filename="{m.filename}"'})

    async def _read_upload(self, request: web.Request) -> tuple[bytes, str] | None:
        reader = await request.multipart()
        async for part in reader:
            if part.name == "media":
                data = await part.read(decode=False)
                return bytes(data), part.filename or "file"
        return None

    async def api_media_upload(self, request: web.Request) -> web.Response:
        if (r := await self._injected("media/upload")) is not None:
            return r
        if (r := self._check_token(request)) is not None:
            return r
        got = await self._read_upload(request)
        if got is None or len(got[0]) <= 5:
            return web.json_response({"errcode": 40005, "errmsg": "invalid file"})
        data, filename = got
        kind = request.query.get("type", "file")
        ctype = "image/png" if data[:4] == b"\x89PNG" else "image/jpeg" if data[:2] == b"\xff\xd8" \
            else "application/octet-stream"
        mid = self._store_media(data, filename, ctype)
        return web.json_response({"errcode": 0, "errmsg": "ok", "type": kind, "media_id": mid,
                                  "created_at": str(int(time.time()))})

    def _robot_grid(self, request: web.Request):
        key = request.query.get("key", "")
        for g in self.config.grids:
            gkey = g.robot_webhook.split("key=")[-1] if "key=" in g.robot_webhook else g.id
            if key in (gkey, g.id):
                return g
        return None

    async def api_webhook_send(self, request: web.Request) -> web.Response:
        if (r := await self._injected("webhook/send")) is not None:
            return r
        grid = self._robot_grid(request)
        if grid is None:
            return web.json_response({"errcode": 93000, "errmsg": "invalid webhook url"})
        if not self._within(self._robot_sends, grid.id, 20, 60):
            return web.json_response({"errcode": 45009, "errmsg": "api freq out of limit"})
        body = await request.json()
        msgtype = body.get("msgtype", "text")
        content = body.get(msgtype, {})
        mentioned = list(content.get("mentioned_list", []) or []) if msgtype == "text" else []
        if msgtype in ("text", "markdown") and not str(content.get("content", "")).strip():
            return web.json_response({"errcode": 44004, "errmsg": "text content is empty"})
        if msgtype == "image":
            data = base64.b64decode(content.get("base64", ""))
            if hashlib.md5(data).hexdigest() != content.get("md5") or len(data) > 2 * 1024 * 1024:
                return web.json_response({"errcode": 40009, "errmsg": "invalid image"})
            mid = self._store_media(data, "image", "image/png" if data[:4] == b"\x89PNG" else "image/jpeg")
            entry = {"msgtype": "image", "content": "", "media_url": f"/emulator/ui/media/{mid}"}
        else:
            entry = self._content(msgtype, content)
        self._record(kind="robot", to=grid.id, to_name=grid.name, mentioned=mentioned,
                     mentioned_names=[self._name(u) for u in mentioned], **entry)
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def api_webhook_upload(self, request: web.Request) -> web.Response:
        if (r := await self._injected("webhook/upload_media")) is not None:
            return r
        if self._robot_grid(request) is None:
            return web.json_response({"errcode": 93000, "errmsg": "invalid webhook url"})
        got = await self._read_upload(request)
        if got is None or len(got[0]) <= 5:
            return web.json_response({"errcode": 40005, "errmsg": "invalid file"})
        mid = self._store_media(got[0], got[1], "application/octet-stream")
        return web.json_response({"errcode": 0, "errmsg": "ok", "type": "file", "media_id": mid})

    # --- the callback towards the bot -------------------------------------------------------
    def create_time(self) -> int:
        # The bot's clock, not the wall clock: a test (or a demo) that sets the date sees
        # its messages land on that date, as WeCom stamps them with the moment they are sent.
        if self.runtime is not None:
            return int(self.runtime.bot.clock.now().timestamp())
        return int(time.time())

    def build_xml(self, userid: str, msgtype: str, fields: dict[str, Any], create_time: int | None = None,
                  msgid: str | None = None) -> tuple[str, str]:
        """The plaintext XML WeCom would send; returns (xml, msgid)."""
        w = self.config.wecom
        msgid = msgid or str(next(self._msgid))
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
        ts, nonce = str(int(time.time())), str(secrets.randbelow(10**9))
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

    # --- chat page -------------------------------------------------------------------------
    def _ui_allowed(self, request: web.Request) -> bool:
        cfg = self.config
        if cfg.wecom.mode == "emulator":
            return True
        tok = cfg.emulator.admin_token
        return bool(cfg.emulator.enabled_in_live and tok and
                    secrets.compare_digest(request.query.get("token", request.headers.get("X-Admin-Token", "")),
                                           tok.get_secret_value()))

    async def ui_page(self, request: web.Request) -> web.StreamResponse:
        if not self._ui_allowed(request):
            raise web.HTTPForbidden(text="emulator disabled in live mode")
        return web.FileResponse(STATIC / "index.html")

    async def ui_state(self, request: web.Request) -> web.Response:
        if not self._ui_allowed(request):
            raise web.HTTPForbidden()
        cfg = self.config
        grids = {g.id: g for g in cfg.grids}
        return web.json_response({
            "bot_name": cfg.bot.name,
            "street": cfg.bot.street,
            "aibot": cfg.aibot.enabled,
            "people": [{"userid": p.userid, "name": p.name, "role": p.role, "grid": p.grid or "",
                        "grid_name": grids[p.grid].name if p.grid in grids else ""} for p in cfg.people],
            "grids": [{"id": g.id, "name": g.name, "community": cfg.community_name(g.community),
                       "center": _fence_center(g.geofence), "chat_id": self.aibot.chat_id(g)}
                      for g in cfg.grids],
        })

    async def ui_send(self, request: web.Request) -> web.Response:
        if not self._ui_allowed(request):
            raise web.HTTPForbidden()
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            userid = str(form.get("userid", ""))
            photo = form.get("photo")
            if photo is None or not hasattr(photo, "file"):
                return web.json_response({"ok": False, "error": "缺少照片"}, status=400)
            data = photo.file.read()
            mid = self._store_media(data, photo.filename or "photo.jpg", photo.content_type or "image/jpeg")
            self._record(kind="user_message", frm=userid, from_name=self._name(userid), msgtype="image",
                         content="", media_url=f"/emulator/ui/media/{mid}")
            status, msgid = await self.deliver(userid, "image", {"PicUrl": f"/emulator/ui/media/{mid}",
                                                                 "MediaId": mid})
        else:
            try:
                body = await request.json()
            except ValueError:
                return web.json_response({"ok": False, "error": "请求格式错误"}, status=400)
            userid = str(body.get("userid", ""))
            if "location" in body:
                loc = body["location"]
                self._record(kind="user_message", frm=userid, from_name=self._name(userid), msgtype="location",
                             content=f"📍 {loc.get('label', '')} ({loc.get('lat')}, {loc.get('lng')})")
                status, msgid = await self.deliver(userid, "location", {
                    "Location_X": loc.get("lat"), "Location_Y": loc.get("lng"), "Scale": 15,
                    "Label": loc.get("label", ""), "AppType": "wxwork"})
            else:
                text = str(body.get("text", ""))
                if not text.strip():
                    return web.json_response({"ok": False, "error": "消息不能为空"}, status=400)
                self._record(kind="user_message", frm=userid, from_name=self._name(userid), msgtype="text",
                             content=text)
                status, msgid = await self.deliver(userid, "text", {"Content": text})
        return web.json_response({"ok": status == 200, "status": status, "msgid": msgid})

    async def ui_feed(self, request: web.Request) -> web.Response:
        if not self._ui_allowed(request):
            raise web.HTTPForbidden()
        try:
            since = int(request.query.get("since", "0"))
            wait = min(float(request.query.get("wait", "0")), 25.0)
        except ValueError:
            raise web.HTTPBadRequest(text="since/wait must be numbers")
        events = [e for e in self.feed if e["seq"] > since]
        if not events and wait > 0:
            try:
                await asyncio.wait_for(self._changed.wait(), wait)
            except asyncio.TimeoutError:
                pass
            events = [e for e in self.feed if e["seq"] > since]
        last = self.feed[-1]["seq"] if self.feed else since
        return web.json_response({"events": events, "last": max(last, since)})

    # --- the bot's side of check-ins, for the demo page ----------------------------------
    # Not WeCom: a look into the bot's own records, so a newcomer sees what the evidence
    # checks decided (thumbnail, counted or not, and why).
    async def ui_checkins(self, request: web.Request) -> web.Response:
        if not self._ui_allowed(request):
            raise web.HTTPForbidden()
        bot = self.runtime.bot
        today = bot.clock.today()
        weeks = [iso_week(today - timedelta(days=7)), iso_week(today)]
        docs = sorted(bot.store.docs("checkins", weeks), key=lambda c: (c.get("time", 0), c["id"]), reverse=True)
        grids = {g.id: g.name for g in self.config.grids}
        out = []
        for c in docs[:60]:
            at = datetime.fromtimestamp(c.get("time", 0), self.config.tz)
            out.append({
                "id": c["id"], "name": c.get("name", ""), "grid": grids.get(c.get("grid"), c.get("grid", "")),
                "time": at.strftime("%m-%d %H:%M"), "counted": bool(c.get("counted")),
                "flags": [CHECKIN_FLAGS.get(f, f) for f in c.get("flags", [])], "reason": c.get("reason", ""),
                "thumb": f"/emulator/ui/checkin-thumb/{c['id']}" if c.get("thumb") else "",
            })
        return web.json_response({"checkins": out})

    async def ui_checkin_thumb(self, request: web.Request) -> web.StreamResponse:
        if not self._ui_allowed(request):
            raise web.HTTPForbidden()
        c = self.runtime.bot.store.get("checkins", request.match_info["checkin_id"], deep=False)
        base = self.config.data_path.resolve()
        path = (base / c["thumb"]).resolve() if c and c.get("thumb") else None
        if path is None or not path.is_relative_to(base) or not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path, headers={"Content-Type": "image/jpeg"})

    async def ui_media(self, request: web.Request) -> web.Response:
        if not self._ui_allowed(request):
            raise web.HTTPForbidden()
        m = self.media.get(request.match_info["media_id"])
        if m is None:
            raise web.HTTPNotFound()
        return web.Response(body=m.data, content_type=m.content_type)


EMULATOR_KEY = web.AppKey("emulator", Emulator)
