"""The chat page's transcript survives a restart of the bot: what was said is on disk in the data
folder, bounded, readable after a crash cut its last line, and the page's long poll goes on
where it was. Photos are not kept: the page shows "图片已过期" in their place."""

from __future__ import annotations

import json

import aiohttp
from loguru import logger
from playwright.async_api import expect

from bot.app import create_app
from bot.config_loading import load_config
from tests.bot.emulator.test_chat_page import jpeg, person
from tests.support.browser import open_page
from tests.support.factories import BotHarness

WAIT = 10_000


async def start(aiohttp_client, config_path, clock) -> BotHarness:
    """The bot as `gridbot run` starts it, on the config's data folder."""
    app = create_app(load_config(config_path), clock=clock)
    client = await aiohttp_client(app)
    h = BotHarness(app, client, clock)
    h.emulator.set_origin(str(client.make_url("")).rstrip("/"))
    return h


def transcript_file(h: BotHarness):
    return h.bot.config.data_path / "emulator" / "transcript.jsonl"


async def page_says(h: BotHarness, userid: str, text: str) -> None:
    r = await h.client.post("/emulator/ui/send", json={"userid": userid, "text": text})
    assert r.status == 200, await r.text()
    await h.settle()


async def page_sends_photo(h: BotHarness, userid: str, data: bytes) -> None:
    form = aiohttp.FormData()
    form.add_field("userid", userid)
    form.add_field("photo", data, filename="打卡.jpg", content_type="image/jpeg")
    r = await h.client.post("/emulator/ui/send", data=form)
    assert r.status == 200, await r.text()
    await h.settle()


async def feed_since(h: BotHarness, since: int) -> dict:
    r = await h.client.get(f"/emulator/ui/feed?since={since}&wait=0")
    assert r.status == 200
    return await r.json()


async def test_the_page_shows_the_same_conversation_after_a_restart(aiohttp_client, config_path, clock, browser):
    first = await start(aiohttp_client, config_path, clock)
    await page_says(first, "lisi", "清理小广告15处,入户走访12户")
    await page_sends_photo(first, "lisi", jpeg())
    first.bot.transport.push_text("g1", "【今日打卡提醒】截至17:00,尚未打卡:@王五", mentioned=["wangwu"])
    await first.settle()
    r = await first.client.post("/emulator/ui/group/send", json={"grid": "g1", "userid": "zhangsan",
                                                                 "text": "本周"})
    assert r.status == 200, await r.text()
    await first.emulator.aibot.idle()
    await first.settle()
    before = list(first.emulator.feed)
    last = before[-1]["seq"]
    await first.client.close()

    again = await start(aiohttp_client, config_path, clock)
    # Everything the page showed is back, in order, with the same sequence numbers.
    assert again.emulator.feed == before
    page = await open_page(browser, again, fragment="#lisi")
    try:
        chat = page.locator("#messages")
        await expect(chat.locator(".row.out .bubble").first).to_have_text("清理小广告15处,入户走访12户")
        await expect(chat.locator(".row.in .bubble").first).to_contain_text("小广告清理 15处")
        await expect(chat).to_contain_text("打卡成功")
        # The photo itself is gone with the old process: a placeholder, not a broken image.
        await expect(chat.locator(".row.out .expired")).to_have_text("图片已过期")
        await expect(chat.locator("img")).to_have_count(0)
        await page.screenshot(path="/tmp/chat-after-restart.png")
        side = page.locator("#side-messages")
        await expect(side).to_contain_text("【今日打卡提醒】")
        await expect(side.locator(".row[data-kind='aibot_message']")).to_contain_text("本周")
        await expect(side.locator(".row[data-kind='aibot_reply']").last).to_contain_text("本周")

        # New messages follow on from the old sequence, live on the open page.
        box = page.locator("#input")
        await box.fill("入户走访3户")
        await box.press("Enter")
        await expect(chat.locator(".row.in .bubble").last).to_contain_text("入户走访 3户", timeout=WAIT)
        assert not page.errors
    finally:
        await page.context.close()
    new = await feed_since(again, last)
    assert new["events"] and all(e["seq"] > last for e in new["events"])
    assert [e["seq"] for e in new["events"]] == list(range(last + 1, new["last"] + 1))
    assert any(e.get("content") == "入户走访3户" for e in new["events"])


async def test_a_line_torn_by_a_crash_is_skipped(aiohttp_client, config_path, clock):
    first = await start(aiohttp_client, config_path, clock)
    await page_says(first, "wangwu", "巡查巡逻2次")
    kept = list(first.emulator.feed)
    await first.client.close()
    path = transcript_file(first)
    # The bot was killed in the middle of writing an entry.
    with open(path, "ab") as f:
        f.write('{"seq":99,"time":"2026-11-25T09:31:00+08:00","kind":"app_message","content":"已记'.encode()[:-2])
    warnings = []
    sink = logger.add(lambda m: warnings.append(str(m)), level="WARNING")
    try:
        again = await start(aiohttp_client, config_path, clock)
    finally:
        logger.remove(sink)
    assert again.emulator.feed == kept
    assert any(f"{path}:{len(kept) + 1}" in w and "incomplete" in w for w in warnings), warnings

    await page_says(again, "wangwu", "入户走访5户")
    # The next entry starts on a line of its own: the whole file reads back.
    lines = path.read_text(encoding="utf-8").splitlines()
    entries = [json.loads(line) for line in lines]
    assert entries == again.emulator.feed
    assert entries[len(kept)]["seq"] == kept[-1]["seq"] + 1
    await again.client.close()

    third = await start(aiohttp_client, config_path, clock)
    assert [e.get("content") for e in third.emulator.feed if e["kind"] == "user_message"] == ["巡查巡逻2次",
                                                                                              "入户走访5户"]


async def test_the_transcript_keeps_the_newest_entries(aiohttp_client, config_path, clock):
    first = await start(aiohttp_client, config_path, clock)
    emu = first.emulator
    start_seq = emu.feed[-1]["seq"] + 1 if emu.feed else 1
    for i in range(6100):
        emu._record(kind="robot", to="g1", to_name="1号网格", msgtype="text", content=f"第{i + 1}条")
    path = transcript_file(first)
    assert len(path.read_text(encoding="utf-8").splitlines()) <= 6000
    assert emu.feed[-1]["content"] == "第6100条"
    await first.client.close()

    again = await start(aiohttp_client, config_path, clock)
    feed = again.emulator.feed
    assert len(feed) == 5000
    assert feed[0]["content"] == "第1101条" and feed[-1]["content"] == "第6100条"
    assert feed[-1]["seq"] == start_seq + 6099
    # Trimming rewrote the file whole, leaving no temporary file beside it.
    assert sorted(p.name for p in path.parent.iterdir()) == ["transcript.jsonl"]
    assert len(path.read_text(encoding="utf-8").splitlines()) == 5000
    page = await feed_since(again, feed[-2]["seq"])
    assert [e["content"] for e in page["events"]] == ["第6100条"]


async def test_a_photo_that_fails_to_load_shows_the_placeholder(page, harness):
    """Media can also go while the page is open (three days, or a restart mid-poll)."""
    await person(page, "李四").click()
    await page.route("**/emulator/ui/media/**", lambda route: route.fulfill(status=404, body="gone"))
    await page.locator("#photo-input").set_input_files(
        files=[{"name": "打卡.jpg", "mimeType": "image/jpeg", "buffer": jpeg()}])
    await expect(page.locator("#messages .row.out .expired")).to_have_text("图片已过期", timeout=WAIT)
    await expect(page.locator("#messages img")).to_have_count(0)
