"""The AI bot's part of the chat page: a member says something to the bot in a grid group,
or alone by voice or photo (/emulator/ui/group/send, /emulator/ui/aibot/voice and
/emulator/ui/aibot/image). The page asks; aibot_side plays WeCom towards the bot.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from bot.emulator.aibot_side import AibotSide, Delivery


class AibotPage:
    def __init__(self, side: AibotSide):
        self.side = side

    def attach(self, router: web.UrlDispatcher) -> None:
        router.add_post("/emulator/ui/group/send", self.group_send)
        router.add_post("/emulator/ui/aibot/voice", self.voice)
        router.add_post("/emulator/ui/aibot/image", self.image)

    @property
    def config(self):
        return self.side.config

    def _refuse(self, request: web.Request) -> web.Response | None:
        # The admin token is checked by the emulator's gate before any of these run.
        if not self.config.aibot.enabled:
            return web.json_response({"ok": False, "error": "未启用智能机器人(配置 [aibot] enabled = true)"},
                                     status=409)
        return None

    @staticmethod
    def _answer(d: Delivery) -> web.Response:
        if d.status == 0:
            return web.json_response({"ok": False, "error": "无法连接到机器人", "msgid": d.msgid}, status=502)
        return web.json_response({"ok": d.ok, "status": d.status, "msgid": d.msgid,
                                  "error": d.error or None, "answered": d.reply is not None})

    async def _json(self, request: web.Request) -> dict | None:
        try:
            body = await request.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    @staticmethod
    def _who_says(body: dict | None, empty: str) -> tuple[str, str] | web.Response:
        """(userid, text) from a page request, or the refusal the page shows."""
        if body is None:
            return _refusal("请求格式错误")
        userid, text = str(body.get("userid", "")), str(body.get("text", ""))
        if not userid:
            return _refusal("请先选择成员")
        if not text.strip():
            return _refusal(empty)
        return userid, text

    async def group_send(self, request: web.Request) -> web.Response:
        if (r := self._refuse(request)) is not None:
            return r
        body = await self._json(request)
        said = self._who_says(body, "消息不能为空")
        if isinstance(said, web.Response):
            return said
        grid = self.config.grid(str(body.get("grid", ""))) or self.side.grid_of(str(body.get("chatid", "")))
        if grid is None:
            return _refusal("没有这个网格群")
        userid, text = said
        return self._answer(await self.side.group_text(userid, grid.id, text))

    async def voice(self, request: web.Request) -> web.Response:
        if (r := self._refuse(request)) is not None:
            return r
        said = self._who_says(await self._json(request), "请先输入语音要说的话")
        if isinstance(said, web.Response):
            return said
        return self._answer(await self.side.voice(*said))

    async def image(self, request: web.Request) -> web.Response:
        if (r := self._refuse(request)) is not None:
            return r
        if request.content_type not in ("multipart/form-data", "application/x-www-form-urlencoded"):
            return _refusal("请求格式错误")
        form = await request.post()
        userid, text = str(form.get("userid", "")), str(form.get("text", ""))
        photos = [p for p in form.getall("photo", []) if hasattr(p, "file")]
        if not userid:
            return _refusal("请先选择成员")
        if not photos:
            return _refusal("缺少照片")
        images = [(p.file.read(), p.filename or "photo.jpg", p.content_type or "image/jpeg") for p in photos]
        return self._answer(await self.side.image(userid, images, text))


def _refusal(error: str) -> web.Response:
    return web.json_response({"ok": False, "error": error}, status=400)
