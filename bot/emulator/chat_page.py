"""The emulator's chat page at /, where a person plays any configured member, and its
/emulator/ui/* endpoints: who is configured, sending as a member, the feed (long poll), media,
and a look into the bot's own check-in records. The AI bot's page endpoints live in aibot_page.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from bot.clock import iso_week
from bot.config import Config
from bot.photos.media_store import media_for

if TYPE_CHECKING:
    from bot.emulator.server import Emulator

STATIC = Path(__file__).with_name("static")
CHECKIN_FLAGS = {"duplicate": "重复", "stale": "旧照片", "offhours": "非工作时段", "outside": "网格外",
                 "no_exif": "无拍摄信息"}


def ui_allowed(cfg: Config, request: web.Request) -> bool:
    """Whether the emulator may be used: always in emulator mode; in live mode only when enabled,
    with the admin token (?token=… or the X-Admin-Token header). The emulator's gate
    (server.Emulator) asks this for every path the emulator adds, so no handler has to."""
    if cfg.wecom.mode == "emulator":
        return True
    tok = cfg.emulator.admin_token
    return bool(cfg.emulator.enabled_in_live and tok and
                secrets.compare_digest(request.query.get("token", request.headers.get("X-Admin-Token", "")),
                                       tok.get_secret_value()))


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


class ChatPage:
    def __init__(self, emulator: Emulator):
        self.emu = emulator

    def attach(self, router: web.UrlDispatcher) -> None:
        router.add_get("/", self.page)
        router.add_get("/emulator/ui/state", self.state)
        router.add_post("/emulator/ui/send", self.send)
        router.add_get("/emulator/ui/feed", self.feed)
        router.add_get("/emulator/ui/media/{media_id}", self.media)
        router.add_get("/emulator/ui/checkins", self.checkins)
        router.add_get("/emulator/ui/checkin-thumb/{checkin_id}", self.checkin_thumb)
        if STATIC.exists():
            router.add_static("/emulator/static/", STATIC)

    @property
    def config(self) -> Config:
        return self.emu.config

    async def page(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html")

    async def state(self, request: web.Request) -> web.Response:
        cfg = self.config
        grids = {g.id: g for g in cfg.grids}
        return web.json_response({
            "bot_name": cfg.bot.name,
            "street": cfg.bot.street,
            "aibot": cfg.aibot.enabled,
            "people": [{"userid": p.userid, "name": p.name, "role": p.role, "grid": p.grid or "",
                        "grid_name": grids[p.grid].name if p.grid in grids else ""} for p in cfg.people],
            "grids": [{"id": g.id, "name": g.name, "community": cfg.community_name(g.community),
                       "center": _fence_center(g.geofence), "chat_id": self.emu.aibot.chat_id(g)}
                      for g in cfg.grids],
        })

    async def send(self, request: web.Request) -> web.Response:
        emu = self.emu
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            userid = str(form.get("userid", ""))
            photo = form.get("photo")
            if photo is None or not hasattr(photo, "file"):
                return web.json_response({"ok": False, "error": "缺少照片"}, status=400)
            data = photo.file.read()
            mid = emu._store_media(data, photo.filename or "photo.jpg", photo.content_type or "image/jpeg")
            emu._record(kind="user_message", frm=userid, from_name=emu._name(userid), msgtype="image",
                        content="", media_url=f"/emulator/ui/media/{mid}")
            status, msgid = await emu.deliver(userid, "image", {"PicUrl": f"/emulator/ui/media/{mid}",
                                                                "MediaId": mid})
        else:
            try:
                body = await request.json()
            except ValueError:
                return web.json_response({"ok": False, "error": "请求格式错误"}, status=400)
            userid = str(body.get("userid", ""))
            if "location" in body:
                loc = body["location"]
                emu._record(kind="user_message", frm=userid, from_name=emu._name(userid), msgtype="location",
                            content=f"📍 {loc.get('label', '')} ({loc.get('lat')}, {loc.get('lng')})")
                status, msgid = await emu.deliver(userid, "location", {
                    "Location_X": loc.get("lat"), "Location_Y": loc.get("lng"), "Scale": 15,
                    "Label": loc.get("label", ""), "AppType": "wxwork"})
            else:
                text = str(body.get("text", ""))
                if not text.strip():
                    return web.json_response({"ok": False, "error": "消息不能为空"}, status=400)
                emu._record(kind="user_message", frm=userid, from_name=emu._name(userid), msgtype="text",
                            content=text)
                status, msgid = await emu.deliver(userid, "text", {"Content": text})
        return web.json_response({"ok": status == 200, "status": status, "msgid": msgid})

    async def feed(self, request: web.Request) -> web.Response:
        try:
            since = int(request.query.get("since", "0"))
            wait = min(float(request.query.get("wait", "0")), 25.0)
        except ValueError:
            raise web.HTTPBadRequest(text="since/wait must be numbers")
        emu = self.emu
        events = [e for e in emu.feed if e["seq"] > since]
        if not events and wait > 0:
            await emu.next_change(wait)
            events = [e for e in emu.feed if e["seq"] > since]
        last = emu.feed[-1]["seq"] if emu.feed else since
        return web.json_response({"events": [self._media_state(e) for e in events], "last": max(last, since)})

    def _media_state(self, e: dict) -> dict:
        """The entry, naming in `expired` the media it shows that the emulator no longer has
        (after a restart, or three days), so the page shows a placeholder, not a broken image."""
        urls = ([e["media_url"]] if e.get("media_url") else []) + list(e.get("media_urls") or [])
        gone = [u for u in urls if not self.emu.media_alive(str(u).rsplit("/", 1)[-1])]
        return {**e, "expired": gone} if gone else e

    async def media(self, request: web.Request) -> web.Response:
        m = self.emu.media_alive(request.match_info["media_id"])
        if m is None:
            raise web.HTTPNotFound(text="图片或文件已过期")
        return web.Response(body=m.data, content_type=m.content_type)

    # --- the bot's side of check-ins, for the demo page ----------------------------------
    # Not WeCom: a look into the bot's own records, so a newcomer sees what the evidence
    # checks decided (thumbnail, counted or not, and why).
    async def checkins(self, request: web.Request) -> web.Response:
        bot = self.emu.runtime.bot
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

    async def checkin_thumb(self, request: web.Request) -> web.StreamResponse:
        c = self.emu.runtime.bot.store.get("checkins", request.match_info["checkin_id"], deep=False)
        path = media_for(self.config).local_path(c["thumb"]) if c and c.get("thumb") else None
        if path is None:
            raise web.HTTPNotFound()
        return web.FileResponse(path, headers={"Content-Type": "image/jpeg"})
