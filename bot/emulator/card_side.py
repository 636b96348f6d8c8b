"""A tap on a template card, as WeCom reports it: the chat page posts the button to
/emulator/ui/card and the emulator sends the bot a "template_card_event" through the same
encrypted callback as every message (EventKey, TaskId, CardType, ResponseCode and, for a
drop-down, SelectedItems), with a fresh response code that may update the card once.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape

import aiohttp
from aiohttp import web

from bot.emulator.chat_page import ui_allowed

if TYPE_CHECKING:
    from bot.emulator.server import Emulator


def selected_xml(selected: dict[str, str]) -> str:
    items = "".join(f"<SelectedItem><QuestionKey><![CDATA[{escape(q)}]]></QuestionKey>"
                    f"<OptionIds><OptionId><![CDATA[{escape(o)}]]></OptionId></OptionIds></SelectedItem>"
                    for q, o in selected.items())
    return f"<SelectedItems>{items}</SelectedItems>" if items else ""


class CardSide:
    def __init__(self, emulator: Emulator):
        self.emu = emulator

    def attach(self, router: web.UrlDispatcher) -> None:
        router.add_post("/emulator/ui/card", self.tap)

    async def tap(self, request: web.Request) -> web.Response:
        emu = self.emu
        if not ui_allowed(emu.config, request):
            raise web.HTTPForbidden()
        try:
            body = await request.json()
            seq, key = int(body.get("seq")), str(body.get("key", ""))
        except (ValueError, TypeError):
            return web.json_response({"ok": False, "error": "请求格式错误"}, status=400)
        userid = str(body.get("userid", ""))
        entry = next((e for e in emu.feed if e["seq"] == seq and e.get("msgtype") == "template_card"), None)
        if entry is None or userid not in entry.get("to", []):
            return web.json_response({"ok": False, "error": "没有找到这张卡片"}, status=404)
        card = entry.get("card") or {}
        if key not in {b.get("key") for b in card.get("button_list") or []}:
            return web.json_response({"ok": False, "error": "卡片上没有这个按钮"}, status=400)
        if entry.get("replaced"):
            return web.json_response({"ok": False, "error": "卡片已处理"}, status=409)
        if emu.callback_url is None:
            return web.json_response({"ok": False, "error": "模拟器尚未连接到机器人"}, status=503)
        code = "rc" + secrets.token_hex(12)
        emu.api.card_codes[code] = entry
        selected = {str(q): str(o) for q, o in (body.get("selected") or {}).items()}
        xml, _ = emu.build_xml(userid, "event", {"Event": "template_card_event", "EventKey": key,
                                                 "TaskId": card.get("task_id", ""),
                                                 "CardType": card.get("card_type", ""), "ResponseCode": code})
        xml = xml.replace("</xml>", selected_xml(selected) + "</xml>")
        params, payload = emu.encrypt_callback(xml)
        async with aiohttp.ClientSession() as s:
            async with s.post(emu.callback_url, params=params, data=payload.encode(),
                              headers={"Content-Type": "text/xml"}) as r:
                await r.read()
                status = r.status
        return web.json_response({"ok": status == 200, "status": status})
