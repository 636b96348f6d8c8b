"""Pushes in websocket mode: reminders, tallies and notices go by the AI bot's proactive send
where WeCom takes them (a chat that talked to the bot), and otherwise, as before, by the group
robot or the app message, without trying a refusing chat again and again."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from bot.scheduler import run_job

from tests.support.socket_harness import start_ws, ws_config

TZ = ZoneInfo("Asia/Shanghai")
AFTERNOON = datetime(2026, 11, 25, 17, 0, tzinfo=TZ)


@pytest.fixture
async def ws(aiohttp_client, tmp_path, clock):
    return await start_ws(aiohttp_client, ws_config(tmp_path), clock)


def pushes_by_aibot(h, grid: str | None = None) -> list[dict]:
    return [e for e in h.emulator.sent("aibot_reply") if e["via"] == "push" and (grid is None or e["grid"] == grid)]


def send_frames(h) -> list[dict]:
    return [f["body"] for f in h.gateway.frames if f.get("cmd") == "aibot_send_msg"]


async def nudge(h) -> None:
    await run_job(h.bot, "下午打卡提醒", "checkin_nudge", at=AFTERNOON)
    await h.settle()


async def test_the_nudge_goes_by_the_ai_bot_to_a_group_that_talked_to_it(ws):
    await ws.group("lisi", "清理小广告15处")
    await nudge(ws)
    [shown] = pushes_by_aibot(ws, "g1")
    # Each person missing is @-mentioned once, where the text names them.
    assert shown["content"] == "【今日打卡提醒】截至17:00,尚未打卡:<@zhangsan> <@lisi> <@wangwu>,请于20:00前拍照打卡。"
    assert ws.pushes("g1") == []  # not the robot as well
    [body] = [b for b in send_frames(ws) if b["chatid"] == "wrg1"]
    assert body["chat_type"] == 2 and body["msgtype"] == "markdown"
    # 2号网格's group chat is not known to the bot: its robot pushes, as before.
    assert [p["to"] for p in ws.pushes("g2")] == ["g2"] and not pushes_by_aibot(ws, "g2")


async def test_a_group_that_never_talked_to_the_bot_gets_the_robot_and_is_not_asked_again(ws):
    await nudge(ws)
    assert len(ws.pushes("g1")) == 1 and not pushes_by_aibot(ws)
    await nudge(ws)
    assert len(ws.pushes("g1")) == 2
    assert len([b for b in send_frames(ws) if b["chatid"] == "wrg1"]) == 1  # refused once, then left alone


async def test_a_notice_to_a_person_goes_by_the_ai_bot_once_they_talked_to_it(ws):
    await ws.single("zhangsan", "本周")
    await ws.group("lisi", "问题:幸福路3号楼下堆放建筑垃圾")
    assert "已告知网格长张三" in ws.answers(grid="g1")[-1]
    [notice] = pushes_by_aibot(ws)
    assert (notice["to"], notice["chattype"]) == ("zhangsan", "single") and "【新问题】#P1" in notice["content"]
    assert not [r for r in ws.replies("zhangsan") if "新问题" in r]
    # 李四 talked to the bot only in the group, never alone: her notice stays an app message.
    await ws.group("zhangsan", "撤回 #P1 重复登记")
    assert any("您登记的问题 #P1 已由张三撤回" in r for r in ws.replies("lisi"))
    assert not [n for n in pushes_by_aibot(ws) if n["to"] == "lisi"]


@pytest.mark.parametrize("setting", ["proactive_push", "send_chat_type"])
async def test_the_uncertain_push_facts_are_settings(aiohttp_client, tmp_path, clock, setting):
    h = await start_ws(aiohttp_client, ws_config(tmp_path, **{setting: False}), clock)
    await h.group("lisi", "清理小广告15处")
    await nudge(h)
    if setting == "proactive_push":
        assert send_frames(h) == [] and len(h.pushes("g1")) == 1
    else:
        [body] = send_frames(h)
        assert "chat_type" not in body and len(pushes_by_aibot(h, "g1")) == 1
