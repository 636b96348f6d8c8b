"""In live mode the chat page is an admin's tool, switched on with `[emulator] enabled_in_live`
and reached with `admin_token`: every path the emulator adds answers 403 without the token and
works with it. The bot talks to a stand-in WeCom here; the emulator's own WeCom API stays closed."""

from __future__ import annotations

import io

import aiohttp
from aiohttp import web
from PIL import Image
from playwright.async_api import expect

from bot.app import create_app
from bot.config_loading import load_config
from bot.emulator.server import EMULATOR_KEY
from tests.bot.emulator.test_chat_page import jpeg
from tests.support.factories import write_config

ADMIN = "letmein-123"
LIVE = f'\n[emulator]\nenabled_in_live = true\nadmin_token = "{ADMIN}"\n'


class StandInWecom:
    """WeCom's API as far as a live bot needs it here: a token, then "ok" to every send."""

    def __init__(self):
        self.sent: list[dict] = []

    async def handle(self, request: web.Request) -> web.Response:
        if request.path.endswith("/gettoken"):
            return web.json_response({"errcode": 0, "errmsg": "ok", "access_token": "live-tok", "expires_in": 7200})
        if request.can_read_body:
            self.sent.append({"path": request.path, **(await request.json())})
        return web.json_response({"errcode": 0, "errmsg": "ok", "msgid": "m1"})


async def live_bot(aiohttp_client, aiohttp_server, tmp_path):
    wecom = StandInWecom()
    stand_in = web.Application()
    stand_in.router.add_route("*", "/{tail:.*}", wecom.handle)
    server = await aiohttp_server(stand_in)
    cfg = load_config(write_config(tmp_path, extra=LIVE))
    base = str(server.make_url("/cgi-bin/"))
    # Nothing may leave this machine: the grids' robots are the stand-in's too.
    grids = [g.model_copy(update={"robot_webhook": f"{base}webhook/send?key={g.id}"}) for g in cfg.grids]
    cfg = cfg.model_copy(update={"grids": grids, "wecom": cfg.wecom.model_copy(
        update={"mode": "live", "api_base": base})})
    app = create_app(cfg)
    client = await aiohttp_client(app)
    emu = app[EMULATOR_KEY]
    emu.set_origin(str(client.make_url("")).rstrip("/"))
    return app, client, emu, wecom


def emulator_routes(cfg) -> set[tuple[str, str]]:
    """(method, path) of every route the emulator adds: the app with it minus the app without."""
    def routes(app):
        return {(r.method, r.resource.canonical) for r in app.router.routes()}
    return routes(create_app(cfg)) - routes(create_app(cfg, with_emulator=False))


async def test_every_emulator_path_needs_the_admin_token(aiohttp_client, aiohttp_server, tmp_path):
    app, client, emu, wecom = await live_bot(aiohttp_client, aiohttp_server, tmp_path)
    media = emu._store_media(jpeg(), "现场.jpg", "image/jpeg")
    file_url = emu.aibot.host_file(b"encrypted for the bot")
    answer_url = emu.aibot.new_response_url(emu.aibot.group("zhangsan", "g1"), "aibot-1")
    assert f"token={ADMIN}" in file_url and f"token={ADMIN}" in answer_url
    file_path, answer_path = (u.removeprefix(emu.origin).split("?")[0] for u in (file_url, answer_url))
    form = aiohttp.FormData()
    form.add_field("userid", "lisi")
    form.add_field("photo", jpeg(color=(30, 160, 90)), filename="打卡.jpg", content_type="image/jpeg")

    # What each path does for an admin with the token, and what to send it.
    works = {
        ("GET", "/"): dict(),
        ("GET", "/emulator/static"): dict(path="/emulator/static/index.html"),
        ("GET", "/emulator/ui/state"): dict(),
        ("GET", "/emulator/ui/feed"): dict(path="/emulator/ui/feed?since=0&wait=0"),
        ("POST", "/emulator/ui/send"): dict(json={"userid": "lisi", "text": "入户走访3户"}),
        ("GET", "/emulator/ui/media/{media_id}"): dict(path=f"/emulator/ui/media/{media}"),
        ("GET", "/emulator/ui/checkins"): dict(),
        ("GET", "/emulator/ui/checkin-thumb/{checkin_id}"): None,  # below, once a check-in exists
        ("POST", "/emulator/ui/group/send"): dict(json={"grid": "g1", "userid": "zhangsan", "text": "本周"}),
        ("POST", "/emulator/ui/aibot/voice"): dict(json={"userid": "wangwu", "text": "巡查巡逻2次"}),
        ("POST", "/emulator/ui/aibot/image"): dict(data=form),
        ("POST", "/emulator/ui/card"): None,  # needs a card the bot sent: tests/bot/emulator/test_card_tap.py
        ("GET", "/emulator/aibot/file/{token}"): dict(path=file_path),
        ("POST", "/emulator/aibot/response/{token}"): dict(
            path=answer_path, json={"msgtype": "markdown", "markdown": {"content": "稍后回复"}}),
    }
    # WeCom's API paths and its AI-bot gateway: closed in live mode even with the token (the bot
    # talks to the real WeCom).
    found = emulator_routes(emu.config)
    closed = {(m, p) for m, p in found
              if (p.startswith("/emulator/cgi-bin/") or p == "/emulator/aibot/ws") and m != "HEAD"}
    assert {(m, p) for m, p in found if m != "HEAD"} == set(works) | closed
    assert len(closed) == 10  # message/update_template_card and the AI-bot gateway among them

    for method, canonical in sorted(found):
        how = works.get((method if method != "HEAD" else "GET", canonical)) or {}
        path = how.get("path", canonical.replace("{checkin_id}", "c1"))
        for query in ("", "token=wrong"):
            url = path + ("&" if "?" in path else "?") + query if query else path
            r = await client.request(method, url)
            assert r.status == 403, (method, url, r.status)
            if method != "HEAD":
                assert "管理员令牌" in await r.text()

    def with_token(path):
        return path + ("&" if "?" in path else "?") + f"token={ADMIN}"

    for (method, canonical), how in works.items():
        if how is None:
            continue
        path = how.get("path", canonical)
        r = await client.request(method, with_token(path), json=how.get("json"), data=how.get("data"))
        assert r.status == 200, (method, path, r.status, await r.text())
        body = await r.read()
        if (method, canonical) in {("POST", "/emulator/ui/send"), ("POST", "/emulator/ui/group/send"),
                                   ("POST", "/emulator/ui/aibot/voice"), ("POST", "/emulator/ui/aibot/image")}:
            assert (await r.json())["ok"] is True, (path, body)
    await emu.aibot.idle()
    await app[EMULATOR_KEY].runtime.bot.idle(timeout=20)

    # The bot answered the page's message through (the stand-in) WeCom, as a live bot does.
    assert any("入户走访 3户" in str(s.get("text", {}).get("content", "")) for s in wecom.sent), wecom.sent
    # The bot fetched the AI bot's photo from the emulator's URL, token and all: a check-in.
    r = await client.get(with_token("/emulator/ui/checkins"))
    [checkin] = [c for c in (await r.json())["checkins"] if c["name"] == "李四"]
    assert checkin["thumb"]
    r = await client.get(with_token(checkin["thumb"]))
    assert r.status == 200 and r.content_type == "image/jpeg"
    assert (await client.get(checkin["thumb"])).status == 403
    # The token may also come as a header.
    assert (await client.get("/emulator/ui/state", headers={"X-Admin-Token": ADMIN})).status == 200

    for method, path in sorted(closed):
        r = await client.request(method, with_token(path))
        assert r.status == 403 and (await r.json())["errcode"] == 40014, (method, path)


async def test_a_strangers_host_header_does_not_redirect_the_page(aiohttp_client, aiohttp_server, tmp_path):
    app, client, emu, _ = await live_bot(aiohttp_client, aiohttp_server, tmp_path)
    emu.callback_url = emu.origin = None  # before the server told the emulator where it listens
    await client.get("/wecom/callback", headers={"Host": "evil.example"})
    await client.get("/", headers={"Host": "evil.example"})
    assert emu.callback_url is None
    await client.get(f"/?token={ADMIN}")
    assert emu.callback_url == str(client.make_url("/wecom/callback"))


async def test_the_page_works_in_live_mode_with_the_token(aiohttp_client, aiohttp_server, tmp_path, browser):
    app, client, emu, wecom = await live_bot(aiohttp_client, aiohttp_server, tmp_path)
    png = io.BytesIO()
    Image.new("RGB", (320, 200), (200, 80, 80)).save(png, "PNG")
    emu._record(kind="robot", to="g1", to_name="1号网格", msgtype="image", content="",
                media_url=f"/emulator/ui/media/{emu._store_media(png.getvalue(), 'chart.png', 'image/png')}")
    ctx = await browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN")
    page = await ctx.new_page()
    refused, errors = [], []
    page.on("response", lambda r: r.status == 403 and refused.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        await page.goto(str(client.make_url(f"/?token={ADMIN}#lisi")))
        await page.wait_for_selector("body[data-ready='1']", timeout=10_000)
        await expect(page.locator("#side-messages img.thumb")).to_have_count(1)
        await page.wait_for_function("() => { const i = document.querySelector('#side-messages img.thumb');"
                                     " return i && i.complete && i.naturalWidth === 320; }", timeout=10_000)
        await page.locator("#input").fill("入户走访3户")
        # The page shows the message once the emulator logs it; wait until the bot has it too.
        async with page.expect_response("**/emulator/ui/send?token=*") as sent:
            await page.locator("#input").press("Enter")
        assert (await sent.value).status == 200
        await expect(page.locator("#messages .row.out .bubble").last).to_have_text("入户走访3户", timeout=10_000)
        await app[EMULATOR_KEY].runtime.bot.idle(timeout=20)
        assert any("入户走访 3户" in str(s.get("text", {}).get("content", "")) for s in wecom.sent)
        assert refused == [] and errors == []
    finally:
        await ctx.close()
