"""A minimal WeCom API stand-in for benchmarks: real HTTP, real JSON answers, little else.

    python bench/wecom_standin.py PORT CORP_ID SECRET AGENT_ID

Real WeCom's CPU is not on the bot's machine; the full emulator (chat log, rate caps, the chat
page) would be. This answers gettoken, message/send, media/upload, agent/get and the robot webhook as WeCom
does (token and agentid checked, the JSON body parsed, the same answer shape) and counts what it
received, so the benchmark measures the bot and not the stand-in. GET /count returns the count.
"""

from __future__ import annotations

import secrets
import sys

from aiohttp import web

try:
    import uvloop
    uvloop.install()
except ImportError:
    pass


def build(corp_id: str, secret: str, agent_id: int) -> web.Application:
    tokens: set[str] = set()
    received = {"message/send": 0, "webhook/send": 0}

    def err(code: int, msg: str) -> web.Response:
        return web.json_response({"errcode": code, "errmsg": msg})

    async def gettoken(request: web.Request) -> web.Response:
        if request.query.get("corpid") != corp_id:
            return err(40013, "invalid corpid")
        if request.query.get("corpsecret") != secret:
            return err(40001, "invalid credential")
        tok = secrets.token_urlsafe(24)
        tokens.add(tok)
        return web.json_response({"errcode": 0, "errmsg": "ok", "access_token": tok, "expires_in": 7200})

    async def message_send(request: web.Request) -> web.Response:
        if request.query.get("access_token") not in tokens:
            return err(40014, "invalid access_token")
        body = await request.json()
        if int(body.get("agentid", -1)) != agent_id:
            return err(40056, "invalid agentid")
        if not body.get("touser") or not body.get(body.get("msgtype", "text")):
            return err(41009, "missing touser or content")
        received["message/send"] += 1
        return web.json_response({"errcode": 0, "errmsg": "ok", "invaliduser": "",
                                  "msgid": str(received["message/send"])})

    async def agent_get(request: web.Request) -> web.Response:
        if request.query.get("access_token") not in tokens:
            return err(40014, "invalid access_token")
        return web.json_response({"errcode": 0, "errmsg": "ok", "agentid": agent_id, "name": "bench"})

    async def webhook_send(request: web.Request) -> web.Response:
        body = await request.json()
        content = body.get(body.get("msgtype", "text"), {})
        if not str(content.get("content", "x")).strip():
            return err(44004, "text content is empty")
        received["webhook/send"] += 1
        return err(0, "ok")

    async def media_upload(request: web.Request) -> web.Response:
        # The leaders' digest sends a chart and a ledger: read the upload whole, as WeCom would.
        if request.query.get("access_token") not in tokens:
            return err(40014, "invalid access_token")
        size = len(await request.read())
        received["media/upload"] = received.get("media/upload", 0) + 1
        return web.json_response({"errcode": 0, "errmsg": "ok", "type": request.query.get("type", "file"),
                                  "media_id": f"M{received['media/upload']}_{size}", "created_at": "0"})

    async def count(request: web.Request) -> web.Response:
        return web.json_response(received)

    app = web.Application(client_max_size=256 * 2**20)  # a district's ledger is tens of MB
    p = "/cgi-bin/"
    app.router.add_get(p + "gettoken", gettoken)
    app.router.add_post(p + "message/send", message_send)
    app.router.add_get(p + "agent/get", agent_get)
    app.router.add_post(p + "webhook/send", webhook_send)
    app.router.add_post(p + "media/upload", media_upload)
    app.router.add_get("/count", count)
    return app


if __name__ == "__main__":
    port, corp, sec, agent = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    web.run_app(build(corp, sec, int(agent)), host="127.0.0.1", port=int(port), print=None, access_log=None)
