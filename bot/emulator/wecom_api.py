"""WeCom's HTTP API as the emulator serves it under /emulator/cgi-bin/: gettoken, agent/get,
message/send (template cards included), message/update_template_card, appchat/send, media/get,
media/upload and the robot's webhook/send and webhook/upload_media. Same paths, parameters and
errcodes as WeCom, so the bot cannot tell the difference; everything sent lands in the feed.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import secrets
import time
from typing import TYPE_CHECKING

from aiohttp import web

from bot.emulator.state import MEDIA_TTL
from bot.wecom.api import IDEMPOTENCY_HEADER

if TYPE_CHECKING:
    from bot.emulator.state import EmulatorState

API_PREFIX = "/emulator/cgi-bin/"
USERID = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
KEYS_KEPT = 100_000  # answered Idempotency-Keys and duplicate-check requests remembered
LATE = web.RequestKey("late", float)


def _answer_late(handler):
    """Runs the path's handler; a failure injected with `late` holds its answer afterwards."""
    async def run(request: web.Request) -> web.StreamResponse:
        response = await handler(request)
        if request.get(LATE):
            await asyncio.sleep(request[LATE])
        return response
    return run


class WecomApi:
    def __init__(self, emulator: EmulatorState):
        self.emu = emulator
        # A card's response codes (from its send, and from each tap) → the card's feed entry;
        # WeCom lets each code update the card once.
        self.card_codes: dict[str, dict] = {}
        self.task_ids: set[str] = set()  # WeCom refuses a task id an app has used before
        # Idempotency-Key → the answer given: a repeat is answered the same and not delivered
        # again. WeCom ignores the header; the emulator honours it so the bot's retries after a
        # lost answer are safe here too. Rebuilt from the feed, so a restart does not forget.
        self.answered_keys: dict[str, dict] = {
            e["idem"]: {"errcode": 0, "errmsg": "ok"} for e in emulator.feed if e.get("idem")}
        # WeCom's duplicate check on message/send (enable_duplicate_check): request JSON → when
        # it was delivered; the same JSON within duplicate_check_interval is not delivered again.
        self.checked: dict[str, float] = {}
        self.repeats = 0  # calls answered without delivering (a known key, the duplicate check)

    def attach(self, router: web.UrlDispatcher) -> None:
        p, late = API_PREFIX, _answer_late
        router.add_get(p + "gettoken", late(self.gettoken))
        router.add_post(p + "message/send", late(self.message_send))
        router.add_post(p + "message/update_template_card", late(self.update_template_card))
        router.add_get(p + "agent/get", late(self.agent_get))
        router.add_post(p + "appchat/send", late(self.appchat_send))
        router.add_get(p + "media/get", late(self.media_get))
        router.add_post(p + "media/upload", late(self.media_upload))
        router.add_post(p + "webhook/send", late(self.webhook_send))
        router.add_post(p + "webhook/upload_media", late(self.webhook_upload))

    @property
    def config(self):
        return self.emu.config

    # --- what every path checks first ----------------------------------------------------
    async def _injected(self, path: str, request: web.Request | None = None) -> web.Response | None:
        if self.config.wecom.mode != "emulator":
            # Playing WeCom next to a live bot would only confuse: the API stays closed.
            return web.json_response({"errcode": 40014, "errmsg": "emulator API is off in live mode"},
                                     status=403)
        emu = self.emu
        emu.calls[path] = emu.calls.get(path, 0) + 1
        queue = emu.failures.get(path)
        if not queue:
            return None
        f = queue[0]
        f.count -= 1
        if f.count <= 0:
            queue.pop(0)
        if f.late and request is not None:
            request[LATE] = f.late  # done now, answered later (_answer_late)
            return None
        if f.delay:
            await asyncio.sleep(f.delay)
        if f.status != 200:
            return web.Response(status=f.status, text="injected failure")
        if f.errcode:
            return web.json_response({"errcode": f.errcode, "errmsg": "injected failure"})
        return None

    def _check_token(self, request: web.Request) -> web.Response | None:
        tok = request.query.get("access_token", "")
        exp = self.emu.tokens.get(tok)
        if exp is None:
            return web.json_response({"errcode": 40014, "errmsg": "invalid access_token"})
        if exp < time.time():
            return web.json_response({"errcode": 42001, "errmsg": "access_token expired"})
        return None

    # --- the app ---------------------------------------------------------------------------
    async def gettoken(self, request: web.Request) -> web.Response:
        if (r := await self._injected("gettoken")) is not None:
            return r
        w = self.config.wecom
        if request.query.get("corpid") != w.corp_id:
            return web.json_response({"errcode": 40013, "errmsg": "invalid corpid"})
        if request.query.get("corpsecret") != w.secret.get_secret_value():
            return web.json_response({"errcode": 40001, "errmsg": "invalid credential"})
        tok = secrets.token_urlsafe(24)
        self.emu.tokens[tok] = time.time() + 7200
        return web.json_response({"errcode": 0, "errmsg": "ok", "access_token": tok, "expires_in": 7200})

    async def message_send(self, request: web.Request) -> web.Response:
        if (r := await self._injected("message/send", request)) is not None:
            return r
        if (r := self._check_token(request)) is not None:
            return r
        if (r := self._repeated(request)) is not None:
            return r
        body = await request.json()
        if self._duplicate(body):
            return web.json_response({"errcode": 0, "errmsg": "ok", "invaliduser": "", "msgid": self.emu.new_msgid()})
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
        extra = {}
        if msgtype == "template_card":
            refusal = self._card_refusal(body.get("template_card"))
            if refusal:
                return web.json_response(refusal)
            extra["response_code"] = content["response_code"] = "rc" + secrets.token_hex(12)
        emu = self.emu
        delivered = [u for u in known if emu.app_message_allowed(u)]
        for u in set(known) - set(delivered):
            emu.dropped.append({"to": u, **content})
        if delivered:
            entry = emu._record(kind="app_message", to=delivered, to_name="、".join(emu._name(u) for u in delivered),
                                **content, **self._key_of(request))
            if msgtype == "template_card":
                self.card_codes[extra["response_code"]] = entry
        return self._answer(request, {"errcode": 0, "errmsg": "ok", "invaliduser": "|".join(invalid),
                                      "msgid": emu.new_msgid(), **extra})

    # --- repeats: the Idempotency-Key, WeCom's duplicate check ----------------------------------
    @staticmethod
    def _key_of(request: web.Request) -> dict:
        key = request.headers.get(IDEMPOTENCY_HEADER, "")
        return {"idem": key} if key else {}

    def _repeated(self, request: web.Request) -> web.Response | None:
        """A call whose Idempotency-Key was answered before: the same answer, nothing delivered."""
        answer = self.answered_keys.get(request.headers.get(IDEMPOTENCY_HEADER, ""))
        if answer is None:
            return None
        self.repeats += 1
        return web.json_response(answer)

    def _answer(self, request: web.Request, answer: dict) -> web.Response:
        key = request.headers.get(IDEMPOTENCY_HEADER, "")
        if key:
            if len(self.answered_keys) >= KEYS_KEPT:
                del self.answered_keys[next(iter(self.answered_keys))]
            self.answered_keys[key] = answer
        return web.json_response(answer)

    def _duplicate(self, body: dict) -> bool:
        """WeCom's documented duplicate check: with "enable_duplicate_check": 1, a request whose
        JSON equals one delivered within duplicate_check_interval seconds (default 1800, at most
        4 hours) is answered but not delivered."""
        if body.get("enable_duplicate_check") not in (1, "1", True):
            return False
        now = self.emu.now()
        try:
            interval = min(int(body.get("duplicate_check_interval", 1800)), 4 * 3600)
        except (TypeError, ValueError):
            interval = 1800
        digest = hashlib.sha1(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
        if now - self.checked.get(digest, -1e18) < interval:
            self.repeats += 1
            return True
        if len(self.checked) >= KEYS_KEPT:
            self.checked = {d: t for d, t in self.checked.items() if now - t < 4 * 3600}
        self.checked[digest] = now
        return False

    def _card_refusal(self, card) -> dict | None:
        """WeCom's checks on a button card that matter to the bot: its type, a task id, 1–6 buttons."""
        if not isinstance(card, dict) or card.get("card_type") not in (
                "text_notice", "news_notice", "button_interaction", "vote_interaction", "multiple_interaction"):
            return {"errcode": 40008, "errmsg": "invalid message type"}
        if card["card_type"] == "button_interaction":
            task, buttons = str(card.get("task_id", "")), card.get("button_list") or []
            if not re.fullmatch(r"[0-9A-Za-z_@-]{1,128}", task) or not 1 <= len(buttons) <= 6:
                return {"errcode": 40058, "errmsg": "invalid task_id or button_list"}
            if task in self.task_ids:
                return {"errcode": 40058, "errmsg": "task_id exists"}
            self.task_ids.add(task)
        return None

    async def update_template_card(self, request: web.Request) -> web.Response:
        if (r := await self._injected("message/update_template_card", request)) is not None:
            return r
        if (r := self._check_token(request)) is not None:
            return r
        if (r := self._repeated(request)) is not None:
            return r
        body = await request.json()
        entry = self.card_codes.pop(str(body.get("response_code", "")), None)
        if entry is None:
            return web.json_response({"errcode": 40058, "errmsg": "invalid response_code"})
        name = str((body.get("button") or {}).get("replace_name", ""))[:20]
        # The card is greyed out for the people named (each card here has one recipient).
        entry["replaced"] = name
        self.emu._record(kind="card_update", target=entry["seq"], to=list(body.get("userids") or []),
                         replace_name=name, **self._key_of(request))
        return self._answer(request, {"errcode": 0, "errmsg": "ok"})

    async def agent_get(self, request: web.Request) -> web.Response:
        if (r := await self._injected("agent/get")) is not None:
            return r
        if (r := self._check_token(request)) is not None:
            return r
        if request.query.get("agentid") != str(self.config.wecom.agent_id):
            return web.json_response({"errcode": 40056, "errmsg": "invalid agentid"})
        return web.json_response({"errcode": 0, "errmsg": "ok", "agentid": self.config.wecom.agent_id,
                                  "name": self.config.bot.name})

    async def appchat_send(self, request: web.Request) -> web.Response:
        if (r := await self._injected("appchat/send", request)) is not None:
            return r
        if (r := self._check_token(request)) is not None:
            return r
        if (r := self._repeated(request)) is not None:
            return r
        body = await request.json()
        msgtype = body.get("msgtype", "text")
        self.emu._record(kind="appchat", to=body.get("chatid", ""), to_name=body.get("chatid", ""),
                         **self._content(msgtype, body.get(msgtype, {})), **self._key_of(request))
        return self._answer(request, {"errcode": 0, "errmsg": "ok"})

    def _content(self, msgtype: str, content: dict) -> dict:
        if msgtype in ("text", "markdown"):
            return {"msgtype": msgtype, "content": str(content.get("content", ""))}
        if msgtype == "template_card":
            title = (content.get("main_title") or {}).get("title", "")
            return {"msgtype": msgtype, "content": str(title), "card": content}
        if msgtype in ("image", "file", "voice", "video"):
            mid = content.get("media_id", "")
            m = self.emu.media.get(mid)
            return {"msgtype": msgtype, "content": "", "media_url": f"/emulator/ui/media/{mid}",
                    "filename": m.filename if m else ""}
        return {"msgtype": msgtype, "content": json.dumps(content, ensure_ascii=False)[:500]}

    # --- media -----------------------------------------------------------------------------
    async def media_get(self, request: web.Request) -> web.Response:
        if (r := await self._injected("media/get")) is not None:
            return r
        if (r := self._check_token(request)) is not None:
            return r
        m = self.emu.media.get(request.query.get("media_id", ""))
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

    async def media_upload(self, request: web.Request) -> web.Response:
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
        mid = self.emu._store_media(data, filename, ctype)
        return web.json_response({"errcode": 0, "errmsg": "ok", "type": kind, "media_id": mid,
                                  "created_at": str(int(time.time()))})

    # --- the grid groups' robots -------------------------------------------------------------
    def _robot_grid(self, request: web.Request):
        key = request.query.get("key", "")
        for g in self.config.grids:
            gkey = g.robot_webhook.split("key=")[-1] if "key=" in g.robot_webhook else g.id
            if key in (gkey, g.id):
                return g
        return None

    async def webhook_send(self, request: web.Request) -> web.Response:
        if (r := await self._injected("webhook/send", request)) is not None:
            return r
        grid = self._robot_grid(request)
        if grid is None:
            return web.json_response({"errcode": 93000, "errmsg": "invalid webhook url"})
        if (r := self._repeated(request)) is not None:
            return r
        emu = self.emu
        if not emu.robot_message_allowed(grid.id):
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
            mid = emu._store_media(data, "image", "image/png" if data[:4] == b"\x89PNG" else "image/jpeg")
            entry = {"msgtype": "image", "content": "", "media_url": f"/emulator/ui/media/{mid}"}
        else:
            entry = self._content(msgtype, content)
        emu._record(kind="robot", to=grid.id, to_name=grid.name, mentioned=mentioned,
                    mentioned_names=[emu._name(u) for u in mentioned], **entry, **self._key_of(request))
        return self._answer(request, {"errcode": 0, "errmsg": "ok"})

    async def webhook_upload(self, request: web.Request) -> web.Response:
        if (r := await self._injected("webhook/upload_media")) is not None:
            return r
        if self._robot_grid(request) is None:
            return web.json_response({"errcode": 93000, "errmsg": "invalid webhook url"})
        got = await self._read_upload(request)
        if got is None or len(got[0]) <= 5:
            return web.json_response({"errcode": 40005, "errmsg": "invalid file"})
        mid = self.emu._store_media(got[0], got[1], "application/octet-stream")
        return web.json_response({"errcode": 0, "errmsg": "ok", "type": "file", "media_id": mid})
