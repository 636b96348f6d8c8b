"""The chat page with the AI bot on its long connection: the same group view, the same single
chat, only the way between the emulator and the bot differs (the gateway's WebSocket instead of
HTTP callbacks). A real headless browser against the real bot."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import expect

from bot.scheduler import run_job

from tests.support.photo_samples import jpeg, scene
from tests.support.socket_harness import start_ws, ws_config

WAIT = 10_000
TZ = ZoneInfo("Asia/Shanghai")


@pytest.fixture
async def harness(aiohttp_client, tmp_path, clock):
    # The page fixture (conftest) opens this harness's page: the bot in websocket mode.
    return await start_ws(aiohttp_client, ws_config(tmp_path), clock)


def person(page, name):
    return page.locator("#people-list .person", has_text=name)


async def group_say(page, text):
    box = page.locator("#group-input")
    await box.fill(text)
    async with page.expect_response("**/emulator/ui/group/send") as info:
        await box.press("Enter")
    response = await info.value
    assert response.status == 200, await response.text()


async def test_group_report_and_the_nudge_over_the_long_connection(page, harness):
    await person(page, "李四").click()
    await expect(page.locator("#side-title")).to_have_text("1号网格群")
    await group_say(page, "清理小广告15处,入户走访十二户")
    tl = page.locator("#side-messages")
    answer = tl.locator(".row[data-kind='aibot_reply']")
    await expect(answer).to_have_count(1, timeout=WAIT)
    await expect(answer.locator(".bubble .at")).to_have_text("@李四")
    await expect(answer).to_contain_text("小广告清理 15处")
    await expect(tl).not_to_contain_text("<@")
    assert harness.relay.socket.received == 1 and harness.gateway.sent == 1  # it came over the socket

    # The afternoon nudge: by the AI bot, into the same timeline, @-mentioning who is missing.
    await run_job(harness.bot, "下午打卡提醒", "checkin_nudge", at=datetime(2026, 11, 25, 17, 0, tzinfo=TZ))
    await harness.settle()
    last = tl.locator(".row").last
    await expect(last).to_have_attribute("data-kind", "aibot_reply", timeout=WAIT)
    await expect(last).to_contain_text("【今日打卡提醒】")
    await expect(last.locator(".at").first).to_be_visible()
    await expect(last).not_to_contain_text("<@")
    await page.screenshot(path="/tmp/wtl/socket_group.png")


async def test_the_pages_ai_bot_photo_and_voice_go_over_the_long_connection(harness):
    import aiohttp
    form = aiohttp.FormData()
    form.add_field("userid", "lisi")
    form.add_field("text", "问题:幸福路3号楼下堆放建筑垃圾")
    form.add_field("photo", jpeg(scene(4)), filename="现场.jpg", content_type="image/jpeg")
    r = await harness.client.post("/emulator/ui/aibot/image", data=form)
    assert r.status == 200 and (await r.json())["ok"]
    r = await harness.client.post("/emulator/ui/aibot/voice", json={"userid": "wangwu", "text": "入户走访八户"})
    assert r.status == 200 and (await r.json())["ok"]
    await harness.settle()
    assert "已登记 #P1" in harness.answers(to="lisi")[-1]
    assert "入户走访 8户" in harness.answers(to="wangwu")[-1]
    assert harness.relay.socket.received == 2


async def test_the_page_says_so_when_the_bot_is_not_connected(harness):
    await harness.relay.socket.stop()
    r = await harness.client.post("/emulator/ui/group/send", json={"userid": "lisi", "grid": "g1", "text": "巡查2次"})
    body = await r.json()
    assert r.status == 502 and not body["ok"] and body["error"]


async def test_the_example_config_switched_to_websocket_runs_as_it_is(aiohttp_client, tmp_path, clock):
    """What a newcomer does: one word changed in the example, and the group works over the socket."""
    example = Path(__file__).resolve().parents[3] / "config.example.toml"
    text = example.read_text(encoding="utf-8")
    assert text.count('\nmode = "callback"') == 1 and '# mode = "websocket"' in text
    path = tmp_path / "config.toml"
    path.write_text(text.replace('\nmode = "callback"', '\nmode = "websocket"'), encoding="utf-8")
    h = await start_ws(aiohttp_client, path, clock)
    member = next(p for p in h.bot.config.people if p.grid == "g1" and p.role == "member")
    await h.group(member.userid, "清理小广告15处")
    [answer] = h.answers(grid="g1")
    assert "已记录 #R1" in answer and answer.startswith(f"<@{member.userid}>")
