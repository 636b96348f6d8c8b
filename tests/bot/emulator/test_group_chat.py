"""The grid group as the product's main screen: members @-mention the AI bot (智能机器人) in the
group, everyone sees the answers and the robot's pushes in one timeline; 1:1 voice reports.

The emulator plays WeCom's side of the AI bot: encrypted JSON callbacks, stream refreshes,
response_url, encrypted image URLs. Browser tests drive the real bot through the chat page; the
protocol details are checked against a stand-in bot that decrypts with wechatpy. The shared test
config (tests/support/factories.py) enables the AI bot and gives 1号网格 its chat_id."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from datetime import datetime
from itertools import pairwise
from zoneinfo import ZoneInfo

import aiohttp
import xmltodict
from aiohttp import web
from tests.support.browser import open_page
from PIL import Image
from playwright.async_api import expect
from wechatpy.crypto.base import WeChatCipher
from wechatpy.crypto.pkcs7 import PKCS7Encoder
from wechatpy.enterprise.crypto import WeChatCrypto

from bot.clock import iso_week
from bot.scheduler import run_job

WAIT = 10_000  # ms; a ceiling, the bot answers in well under a second
TZ = ZoneInfo("Asia/Shanghai")


def person(page, name):
    return page.locator("#people-list .person", has_text=name)


async def group_say(page, text):
    """Type in the grid group's composer and wait until the emulator has delivered it to the bot."""
    box = page.locator("#group-input")
    await box.fill(text)
    async with page.expect_response("**/emulator/ui/group/send") as info:
        await box.press("Enter")
    response = await info.value
    assert response.status == 200, await response.text()


def timeline(page):
    return page.locator("#side-messages")


# --- a stand-in bot, decrypting with wechatpy ---------------------------------------------------


class StandIn:
    """Answers AI-bot callbacks as `answer(payload, standin)` says, with wechatpy's crypto."""

    def __init__(self, cfg, answer):
        a = cfg.aibot
        self.crypto = WeChatCrypto(a.token.get_secret_value(), a.encoding_aes_key.get_secret_value(), "")
        self.answer = answer
        self.seen: list[tuple[float, dict]] = []

    def refreshes(self) -> list[dict]:
        return [p for _, p in self.seen if p["msgtype"] == "stream"]

    async def handle(self, request: web.Request) -> web.Response:
        q = request.query
        body = await request.json()
        plain = self.crypto.decrypt_message({"Encrypt": body["encrypt"]}, q["msg_signature"], q["timestamp"],
                                            q["nonce"])
        payload = json.loads(plain)
        self.seen.append((asyncio.get_running_loop().time(), payload))
        reply = self.answer(payload, self)
        if reply is None:
            return web.Response(text="")
        x = xmltodict.parse(self.crypto.encrypt_message(json.dumps(reply, ensure_ascii=False), q["nonce"]))["xml"]
        return web.json_response({"encrypt": x["Encrypt"], "msgsignature": x["MsgSignature"],
                                  "timestamp": x["TimeStamp"], "nonce": x["Nonce"]})


async def stand_in(harness, aiohttp_server, answer) -> StandIn:
    bot = StandIn(harness.bot.config, answer)
    app = web.Application()
    app.router.add_post("/aibot", bot.handle)
    server = await aiohttp_server(app)
    harness.emulator.aibot.target = str(server.make_url("/aibot"))
    return bot


def frame(sid, finish, content):
    return {"msgtype": "stream", "stream": {"id": sid, "finish": finish, "content": content}}


# --- the protocol, without a browser ------------------------------------------------------------


async def test_stream_refresh_collects_a_late_answer(harness, aiohttp_server):
    def late(payload, bot):
        if payload["msgtype"] == "text" or len(bot.refreshes()) < 3:
            return frame("S1", False, "正在处理,请稍候…")
        return frame("S1", True, "<@lisi>\n已记录 #R9\n· 小广告清理 **15处**")
    standin = await stand_in(harness, aiohttp_server, late)
    aibot = harness.emulator.aibot
    aibot.refresh_every = 0.1
    d = await aibot.group_text("lisi", "g1", "清理小广告15处")
    assert d.ok and d.refresh is not None
    # Until the answer is ready the group shows the unfinished frame.
    shown = [e for e in harness.emulator.sent("aibot_reply") if e["grid"] == "g1"]
    assert [(e["content"], e["final"]) for e in shown] == [("正在处理,请稍候…", False)]
    await asyncio.wait_for(d.refresh, 10)

    [answer] = aibot.answers(grid="g1")
    assert answer["content"] == "<@lisi>\n已记录 #R9\n· 小广告清理 **15处**"
    assert (answer["to"], answer["via"], answer["stream_id"], answer["reply_to"]) == ("lisi", "stream", "S1", d.msgid)
    # Three refreshes, as WeCom sends them: the stream's id, each with its own msgid, same chat.
    first, refreshes = standin.seen[0][1], standin.refreshes()
    assert len(refreshes) == 3
    chat_id = harness.bot.config.grid("g1").chat_id or "wrchat-g1"
    for r in refreshes:
        assert r["stream"] == {"id": "S1"}
        assert (r["chatid"], r["chattype"], r["from"], r["aibotid"]) == (chat_id, "group", {"userid": "lisi"},
                                                                        first["aibotid"])
    assert len({r["msgid"] for r in refreshes} | {first["msgid"]}) == 4
    times = [t for t, _ in standin.seen]
    assert all(b - a >= 0.09 for a, b in pairwise(times))
    # Finished: no more refreshes.
    await asyncio.sleep(0.35)
    assert len(standin.refreshes()) == 3
    assert aibot.errors == []


async def test_group_callback_as_wecom_sends_it(harness, aiohttp_server):
    standin = await stand_in(harness, aiohttp_server, lambda p, b: None)
    aibot = harness.emulator.aibot
    d = await aibot.group_text("wangwu", "g1", "入户走访3户")
    await aibot.group_text("wangwu", "g1", "@网格助手 巡查2次")  # typed the mention: not doubled
    p = standin.seen[0][1]
    assert set(p) == {"msgid", "aibotid", "chatid", "chattype", "from", "response_url", "msgtype", "text"}
    assert p["msgid"] == d.msgid and p["aibotid"] == harness.bot.config.aibot.bot_id
    assert p["chatid"] == (harness.bot.config.grid("g1").chat_id or "wrchat-g1") and p["chattype"] == "group"
    assert p["text"] == {"content": "@网格助手 入户走访3户"}
    assert standin.seen[1][1]["text"] == {"content": "@网格助手 巡查2次"}
    # An empty answer: nothing appears in the group but the members' messages.
    assert aibot.answers() == [] and d.ok
    said = [e["content"] for e in harness.emulator.sent("aibot_message")]
    assert said == ["@网格助手 入户走访3户", "@网格助手 巡查2次"]

    v = await aibot.voice("wangwu", "入户走访八户")
    p = standin.seen[-1][1]
    assert (p["chattype"], p["msgtype"], p["voice"]) == ("single", "voice", {"content": "入户走访八户"})
    assert "chatid" not in p and p["msgid"] == v.msgid


async def test_stream_gives_up_after_the_limit(harness, aiohttp_server):
    await stand_in(harness, aiohttp_server, lambda p, b: frame("S2", False, "正在处理,请稍候…"))
    aibot = harness.emulator.aibot
    aibot.refresh_every, aibot.stream_limit = 0.05, 0.3
    d = await aibot.group_text("lisi", "g1", "清理小广告1处")
    await asyncio.wait_for(d.refresh, 5)
    [answer] = aibot.answers(grid="g1")
    assert answer["content"] == "正在处理,请稍候…" and answer["gave_up"]


async def test_response_url_takes_one_answer_within_an_hour(harness, aiohttp_server):
    standin = await stand_in(harness, aiohttp_server, lambda p, b: None)
    aibot = harness.emulator.aibot
    await aibot.group_text("lisi", "g1", "清理小广告15处")
    await aibot.group_text("wangwu", "g1", "入户走访3户")
    url1, url2 = (p["response_url"] for _, p in standin.seen)
    assert url1 != url2
    md = {"msgtype": "markdown", "markdown": {"content": "<@lisi>\n已记录 #R3"}}
    async with aiohttp.ClientSession() as s:
        async with s.post(url1, json=md) as r:
            assert await r.json() == {"errcode": 0, "errmsg": "ok"}
        async with s.post(url1, json=md) as r:  # one-shot
            assert (await r.json())["errcode"] != 0
        real_now = harness.emulator.now
        harness.emulator.now = lambda: real_now() + 3601
        try:
            async with s.post(url2, json=md) as r:  # an hour later
                assert (await r.json())["errcode"] != 0
        finally:
            harness.emulator.now = real_now
    [answer] = aibot.answers(grid="g1")
    assert (answer["to"], answer["via"], answer["content"]) == ("lisi", "response_url", "<@lisi>\n已记录 #R3")


async def test_photo_urls_serve_encrypted_bytes_for_five_minutes(harness, aiohttp_server):
    standin = await stand_in(harness, aiohttp_server, lambda p, b: None)
    aibot = harness.emulator.aibot
    photo = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40
    await aibot.image("lisi", [(photo, "a.jpg", "image/jpeg")])
    await aibot.image("lisi", [(photo, "b.jpg", "image/jpeg")], text="问题:幸福路3号楼下堆放建筑垃圾")
    image, mixed = standin.seen[0][1], standin.seen[1][1]
    assert image["msgtype"] == "image" and "chatid" not in image
    items = mixed["mixed"]["msg_item"]
    assert [i["msgtype"] for i in items] == ["text", "image"]
    assert items[0]["text"] == {"content": "问题:幸福路3号楼下堆放建筑垃圾"}
    key = base64.b64decode(harness.bot.config.aibot.encoding_aes_key.get_secret_value() + "=")
    async with aiohttp.ClientSession() as s:
        for url in (image["image"]["url"], items[1]["image"]["url"]):
            async with s.get(url) as r:
                enc = await r.read()
            assert r.status == 200 and enc != photo
            assert PKCS7Encoder.decode(WeChatCipher(key, key[:16]).decrypt(enc)) == photo
        real_now = harness.emulator.now
        harness.emulator.now = lambda: real_now() + 301
        try:
            async with s.get(image["image"]["url"]) as r:
                assert r.status == 404
        finally:
            harness.emulator.now = real_now


async def test_group_send_refused_when_the_ai_bot_is_off(harness):
    harness.bot.config.aibot.__dict__["enabled"] = False  # as a reload to `enabled = false` would
    try:
        r = await harness.client.post("/emulator/ui/group/send", json={"grid": "g1", "userid": "lisi", "text": "x"})
        assert r.status == 409 and "智能机器人" in (await r.json())["error"]
    finally:
        harness.bot.config.aibot.__dict__["enabled"] = True


# --- the group in a real browser, against the real bot ------------------------------------------


async def test_two_members_report_in_the_group_and_a_reminder_follows(page, harness):
    await person(page, "李四").click()
    await expect(page.locator("#side-title")).to_have_text("1号网格群")
    await expect(page.locator("#side-sub")).to_contain_text("3名成员")
    await expect(page.locator("#group-composer")).to_be_visible()
    await expect(page.locator("#speaker")).to_have_value("lisi")
    await group_say(page, "清理小广告15处,入户走访十二户")

    # Another member speaks in the same group: the speaker changes, the group stays.
    await page.locator("#speaker").select_option("wangwu")
    await expect(page.locator("#me-title")).to_contain_text("王五")
    await expect(page.locator("#side-title")).to_have_text("1号网格群")
    await group_say(page, "劝导不文明行为5次")

    tl = timeline(page)
    said = tl.locator(".row[data-kind='aibot_message']")
    await expect(said).to_have_count(2, timeout=WAIT)
    await expect(said.nth(0)).to_contain_text("李四")
    await expect(said.nth(0).locator(".at.bot")).to_have_text("@网格助手")
    await expect(said.nth(0)).to_have_class("row in")       # 李四's, seen by 王五
    await expect(said.nth(1)).to_have_class("row out")      # 王五's own
    answers = tl.locator(".row[data-kind='aibot_reply']")
    await expect(answers).to_have_count(2, timeout=WAIT)
    first, second = answers.nth(0), answers.nth(1)
    await expect(first.locator(".bubble .at")).to_have_text("@李四")
    await expect(first).to_contain_text("小广告清理 15处")
    await expect(first).to_contain_text("入户走访 12户")
    await expect(second.locator(".bubble .at.me")).to_have_text("@王五")
    await expect(second).to_contain_text("文明劝导 5次")
    await expect(second.locator(".tag-me")).to_have_text("有人@我")
    # Markdown bold renders, the raw <@userid> does not show.
    await expect(tl).not_to_contain_text("<@")
    assert [a["to"] for a in harness.emulator.aibot.answers(grid="g1")] == ["lisi", "wangwu"]

    # The afternoon nudge for this grid lands in the same timeline, after the answers.
    await run_job(harness.bot, "下午打卡提醒", "checkin_nudge", at=datetime(2026, 11, 25, 17, 0, tzinfo=TZ))
    await harness.settle()
    last = tl.locator(".row").last
    await expect(last).to_have_attribute("data-kind", "robot", timeout=WAIT)
    await expect(last).to_contain_text("【今日打卡提醒】")
    await expect(last.locator(".at.me")).to_have_text("@王五")
    await page.screenshot(path="/tmp/group.png")
    # Another grid's group does not show 1号网格's conversation.
    await page.locator("#gridbar .gtab[data-tab='g2']").click()
    await expect(page.locator("#side-title")).to_have_text("2号网格群")
    await expect(tl.locator(".row[data-kind^='aibot']")).to_have_count(0)


async def test_group_message_from_another_page_appears_live(page, harness):
    await person(page, "张三").click()
    await harness.emulator.aibot.group_text("lisi", "g1", "巡查2次")
    tl = timeline(page)
    await expect(tl.locator(".row[data-kind='aibot_message']")).to_contain_text("@网格助手 巡查2次", timeout=WAIT)
    await expect(tl.locator(".row[data-kind='aibot_reply'] .at")).to_have_text("@李四", timeout=WAIT)
    # A reload rebuilds the same timeline from the feed.
    await page.reload()
    await page.wait_for_selector("body[data-ready='1']")
    await expect(tl.locator(".row[data-kind='aibot_reply'] .at")).to_have_text("@李四", timeout=WAIT)


async def test_voice_in_single_chat_becomes_a_report(page, harness):
    await person(page, "王五").click()
    await page.locator("#input").fill("入户走访八户,清理小广告三处")
    async with page.expect_response("**/emulator/ui/aibot/voice") as info:
        await page.locator("#voice-btn").click()
    assert (await info.value).status == 200
    voice = page.locator("#messages .row.out .bubble.voice")
    await expect(voice).to_contain_text("入户走访八户,清理小广告三处", timeout=WAIT)
    await expect(voice.locator(".asr-label")).to_have_text("语音转文字")
    answer = page.locator("#messages .row[data-kind='aibot_reply'] .bubble").last
    await expect(answer).to_contain_text("入户走访八户,清理小广告三处", timeout=WAIT)  # what was understood
    await expect(answer).to_contain_text("已记录")
    await expect(answer).to_contain_text("入户走访 8户")
    await expect(page.locator("#input")).to_have_value("")
    await harness.settle()
    week = iso_week(harness.clock.today())
    reports = [r for r in harness.store.docs("reports", [week]) if r["userid"] == "wangwu"]
    assert len(reports) == 1
    assert {(i["category"], i["quantity"]) for i in reports[0]["items"]} == {("visit", 8), ("ads", 3)}
    # Nothing typed: the page says what to do instead of sending an empty voice message.
    await page.locator("#voice-btn").click()
    await expect(page.locator("#status")).to_contain_text("先在输入框里写下要说的话")


async def test_html_from_members_is_shown_literally(page, harness):
    await person(page, "王五").click()
    evil = '<img src=x onerror="window.__pwned=1"><b>粗</b> <@all> 清理小广告2处'
    await group_say(page, evil)
    tl = timeline(page)
    mine = tl.locator(".row[data-kind='aibot_message'] .bubble").last
    await expect(mine).to_have_text("@网格助手 " + evil, timeout=WAIT)
    await expect(mine.locator(".at")).to_have_count(1)  # only the bot's mention, not "<@all>"
    await expect(tl.locator(".row[data-kind='aibot_reply']")).to_have_count(1, timeout=WAIT)

    await page.locator("#input").fill('<script>window.__pwned=2</script>巡查1次')
    await page.locator("#voice-btn").click()
    await expect(page.locator("#messages .bubble.voice").last).to_contain_text(
        "<script>window.__pwned=2</script>巡查1次", timeout=WAIT)
    await expect(page.locator("#messages .row[data-kind='aibot_reply']")).to_have_count(1, timeout=WAIT)
    assert await page.evaluate("() => window.__pwned") is None
    assert await page.locator("img[src='x'], #messages script, #side-messages script, #side-messages b").count() == 0


async def test_group_at_phone_width(browser, harness):
    page = await open_page(browser, harness, width=390, height=844, fragment="#lisi")
    try:
        await page.locator("#mobile-nav button[data-view='side']").click()
        await expect(page.locator("#side-title")).to_have_text("1号网格群")
        await expect(page.locator("#group-input")).to_be_in_viewport()
        await expect(page.locator("#group-send")).to_be_in_viewport()
        await group_say(page, "清理小广告4处")
        answer = timeline(page).locator(".row[data-kind='aibot_reply']")
        await expect(answer.locator(".at")).to_have_text("@李四", timeout=WAIT)
        assert await page.evaluate("() => document.documentElement.scrollWidth") <= 390
        await page.screenshot(path="/tmp/group-phone.png")
        assert not page.errors
    finally:
        await page.context.close()


async def test_late_answer_updates_in_place_in_the_group(page, harness, aiohttp_server):
    """An unfinished stream shows at once and is replaced by the answer when it is ready."""
    release = asyncio.Event()

    def late(payload, bot):
        if release.is_set():
            return frame("S7", True, "<@lisi>\n已记录 #R7\n· **小广告清理** 6处")
        return frame("S7", False, "正在处理,请稍候…")
    await stand_in(harness, aiohttp_server, late)
    harness.emulator.aibot.refresh_every = 0.2
    await person(page, "李四").click()
    await group_say(page, "清理小广告6处")
    rows = timeline(page).locator(".row[data-kind='aibot_reply']")
    await expect(rows).to_have_count(1, timeout=WAIT)
    await expect(rows.first).to_have_class("row in pending")
    await expect(rows.first).to_contain_text("正在处理")
    release.set()
    await expect(rows.first).to_contain_text("已记录 #R7", timeout=WAIT)
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_have_class("row in")
    await expect(rows.first.locator("strong")).to_have_text("小广告清理")
    await expect(rows.first.locator(".at.me")).to_have_text("@李四")


async def test_photo_with_text_through_the_page_endpoint(harness):
    buf = io.BytesIO()
    Image.new("RGB", (640, 480), (70, 130, 180)).save(buf, "JPEG")
    form = aiohttp.FormData()
    form.add_field("userid", "wangwu")
    form.add_field("text", "问题:幸福路3号楼下堆放建筑垃圾")
    form.add_field("photo", buf.getvalue(), filename="现场.jpg", content_type="image/jpeg")
    r = await harness.client.post("/emulator/ui/aibot/image", data=form)
    assert r.status == 200 and (await r.json())["ok"]
    await harness.emulator.aibot.idle()
    await harness.settle()
    said = harness.emulator.sent("aibot_message")[-1]
    assert (said["msgtype"], said["content"], len(said["media_urls"])) == ("mixed", "问题:幸福路3号楼下堆放建筑垃圾", 1)
    shown = await harness.client.get(said["media_urls"][0])
    assert await shown.read() == buf.getvalue()  # the page shows the plain photo
    [answer] = harness.emulator.aibot.answers(to="wangwu")
    assert "已登记 #P" in answer["content"] and "现场照片" in answer["content"]
    # A page request without a photo is refused with a reason.
    form = aiohttp.FormData()
    form.add_field("userid", "wangwu")
    r = await harness.client.post("/emulator/ui/aibot/image", data=form)
    assert r.status == 400 and (await r.json())["error"] == "缺少照片"


async def test_refresh_stops_when_the_bot_stops_answering(harness, aiohttp_server):
    def vanishing(payload, bot):
        if payload["msgtype"] == "text":
            return frame("S3", False, "正在处理,请稍候…")
        raise web.HTTPServiceUnavailable()
    standin = await stand_in(harness, aiohttp_server, vanishing)
    aibot = harness.emulator.aibot
    aibot.refresh_every = 0.02
    d = await aibot.group_text("lisi", "g1", "清理小广告1处")
    await asyncio.wait_for(d.refresh, 5)
    assert len(standin.refreshes()) == 5  # not six minutes of retries
    [answer] = aibot.answers(grid="g1")
    assert answer["gave_up"] and answer["content"] == "正在处理,请稍候…"
