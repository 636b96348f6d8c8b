"""Fixing a problem through the real callback: the fix in natural words, the after-photo as
evidence, and who is asked to check it (handlers/problem_fixes.py, bot.problem_review)."""

from __future__ import annotations

import io
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from PIL import Image

from tests.support.attendance_helpers import use_config
from tests.support.factories import BASE_CONFIG
from tests.support.photo_samples import reencode
from tests.support.problem_flow import photo, register, submit_fix

TZ = ZoneInfo("Asia/Shanghai")
SPOT = (30.2741, 120.1551)  # where the before-photo was taken (WGS-84, as cameras write it)


def problem(harness, pid: str = "P1") -> dict:
    return harness.store.get("problems", pid)


def actions(p: dict) -> list[str]:
    return [h["action"] for h in p["history"]]


def images_to(harness, userid: str) -> list[bytes]:
    emu = harness.emulator
    return [emu.media[e["media_url"].rsplit("/", 1)[1]].data for e in emu.sent("app_message")
            if userid in e["to"] and e.get("msgtype") == "image"]


# --- the fix in words -------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["整改 #P1 已疏通", "#P1 已拆除", "整改 #P1 占道经营已规范", "#P1 杂物已移走",
                                  "整改 #P1 清理完毕", "整改 #P1 垃圾已经清运干净了", "整改#P1:已整改到位"])
async def test_a_fix_is_recognised_from_natural_verbs_and_asks_for_the_after_photo(harness, text):
    await register(harness)
    await harness.text("wangwu", text)
    assert harness.last_reply("wangwu") == ("收到 #P1 的整改情况。请在10分钟内发送整改后的现场照片,"
                                            "收到照片后提交网格长张三核查。")
    assert actions(problem(harness))[-1] == "close_requested"


async def test_the_after_photo_goes_to_the_problem_never_to_a_check_in(harness):
    # The complaint that started it: "整改 #P2 已疏通" was progress and its photo a check-in.
    await register(harness, before_seed=1)
    await register(harness, "wangwu", "问题:和平路雨水井堵塞")
    harness.clock.advance(hours=5)
    reply = await submit_fix(harness, "P2", "wangwu", note="已疏通", seed=2)
    assert reply.startswith("已提交 #P2 的整改情况,等待网格长张三核查。")
    assert list(harness.store.docs("checkins")) == []
    p = problem(harness, "P2")
    assert p["status"] == "pending_check"
    submitted = p["history"][-1]
    assert submitted["action"] == "fix_submitted" and submitted["by"] == "wangwu" and submitted["photo"]
    assert submitted["at"] == int(harness.clock.now().timestamp())
    assert p["pending"]["note"] == "已疏通" and p["pending"]["checkers"] == ["zhangsan"]


async def test_progress_and_its_photo_stay_with_the_problem(harness):
    await register(harness)
    await harness.text("lisi", "整改 #P1 已联系物业,明天清运")
    assert harness.last_reply("lisi") == ("已记录 #P1 的整改进展,可在10分钟内补发进展照片。"
                                          "整改完成后请发送“整改 #P1 已清理”并附整改后照片。")
    await harness.image("lisi", photo(3))
    assert harness.last_reply("lisi").startswith("已添加 #P1 的整改进展照片。")
    p = problem(harness)
    assert p["status"] == "open" and len(p["photos_progress"]) == 1
    assert actions(p) == ["opened", "progress", "photo_progress"]
    assert list(harness.store.docs("checkins")) == []


async def test_a_fix_without_its_photo_in_time_stays_open(harness):
    await register(harness)
    await harness.text("lisi", "整改 #P1 已清理")
    harness.clock.advance(minutes=11)
    await harness.image("lisi", photo(4))
    assert problem(harness)["status"] == "open"
    assert harness.last_reply("lisi").startswith("打卡成功")  # too late: an ordinary check-in


async def test_who_may_fix_and_what_they_hear_while_it_waits(harness):
    await harness.text("lisi", "整改 #P9 已清理")
    assert harness.last_reply("lisi").startswith("没有找到问题 #P9")
    await register(harness)
    await harness.text("zhouba", "整改 #P1 已清理")
    assert harness.last_reply("zhouba") == "#P1 属于1号网格,只有该网格的网格员、网格长或领导、管理员可以整改。"
    await submit_fix(harness, "P1", "lisi")
    await harness.text("wangwu", "#P1 已清理")
    assert harness.last_reply("wangwu") == "#P1 已由李四于11月25日 09:30提交整改,正在等待网格长张三核查。"


# --- the after-photo as evidence -----------------------------------------------------------------

async def test_the_checker_gets_the_before_and_after_picture_and_a_card(harness):
    await register(harness, before_seed=5)
    harness.clock.advance(hours=26)
    await submit_fix(harness, "P1", "lisi", seed=6)
    [picture] = images_to(harness, "zhangsan")
    img = Image.open(io.BytesIO(picture))
    assert img.format == "JPEG" and img.size == (1008, 632)  # two 480-pixel panels, titles and a footer
    # The left panel holds the before-photo, the right one the after-photo: not the same picture.
    left, right = img.crop((16, 52, 496, 532)), img.crop((512, 52, 992, 532))
    assert left.tobytes() != right.tobytes()
    [card] = harness.cards("zhangsan")
    c = card["card"]
    assert c["card_type"] == "button_interaction"
    assert c["main_title"] == {"title": "#P1 整改待核查", "desc": "1号网格 · 李四 11月26日 11:30提交"}
    assert [b["text"] for b in c["button_list"]] == ["通过", "驳回"]
    assert [o["text"] for o in c["button_selection"]["option_list"]][:2] == ["未整改到位", "照片看不清"]
    assert {"keyname": "照片核验", "value": "拍摄于11月26日 11:28"} in c["horizontal_content_list"]
    # Task ids are unique per recipient, as WeCom requires.
    assert c["task_id"] == "review-P1-1-zhangsan"


@pytest.mark.parametrize("taken, why", [
    (datetime(2026, 11, 24, 3, 30), "这张照片拍摄于11月24日 03:30,超过24小时,不能作为整改后照片。请在现场重新拍摄后发送。"),
    (datetime(2026, 11, 25, 8, 30), "这张照片拍摄于11月25日 08:30,早于问题登记时间(11月25日 09:30),"
                                    "不能证明已经整改。请在现场重新拍摄后发送。"),
    (datetime(2026, 11, 25, 18, 30), "这张照片的拍摄时间晚于发送时间,无法确认是现场拍摄。请在现场重新拍摄后发送。"),
])
async def test_an_after_photo_that_is_not_fresh_is_refused(harness, taken, why):
    await register(harness)  # 11月25日 09:30
    harness.clock.advance(hours=6)
    await harness.text("lisi", "整改 #P1 已清理")
    await harness.image("lisi", photo(7, taken))
    assert harness.last_reply("lisi") == why
    p = problem(harness)
    assert p["status"] == "open" and actions(p)[-1] == "after_photo_refused"
    assert p["history"][-1]["photo"]  # kept all the same: who sent what, and why it was not taken
    # A fresh photo within the window is taken.
    await harness.image("lisi", photo(8, datetime(2026, 11, 25, 15, 25)))
    assert harness.last_reply("lisi").startswith("已提交 #P1")


async def test_a_copy_of_the_before_photo_is_refused(harness):
    await register(harness)
    before = photo(9)
    await harness.image("lisi", before)
    await harness.text("lisi", "整改 #P1 已清理")
    await harness.image("lisi", reencode(before, quality=55))  # the same picture, saved again
    assert harness.last_reply("lisi") == "这张照片与 #P1 登记时的现场照片相同,不能证明已经整改。请在整改后的现场重新拍摄。"
    assert problem(harness)["status"] == "open"


async def test_an_after_photo_far_from_the_problem_is_refused_and_a_near_one_says_how_near(harness):
    await register(harness)
    now = harness.clock.now().replace(tzinfo=None)
    await harness.image("lisi", photo(10, now, gps=SPOT))
    assert problem(harness)["location"]["source"] == "photo"
    await harness.text("lisi", "整改 #P1 已清理")
    await harness.image("lisi", photo(11, now, gps=(SPOT[0] + 0.01, SPOT[1])))  # about 1.1 km north
    assert harness.last_reply("lisi") == "这张照片的拍摄位置距问题地点约1112米(超过200米),请在问题现场拍摄后发送。"
    await harness.image("lisi", photo(12, now, gps=(SPOT[0] + 0.0002, SPOT[1])))
    assert harness.last_reply("lisi") == ("已提交 #P1 的整改情况,等待网格长张三核查。\n"
                                          "照片:拍摄于11月25日 09:30 · 距问题位置约22米")


async def test_a_photo_without_exif_is_taken_and_the_checker_is_told(harness):
    await register(harness)
    await submit_fix(harness, "P1", "lisi")  # the helper's photo has its EXIF time
    assert "拍摄于" in problem(harness)["pending"]["notes"][0]
    await register(harness, "wangwu", "问题:和平路5号门前乱停车辆")
    await harness.text("wangwu", "整改 #P2 已劝离")
    await harness.image("wangwu", photo(13))  # no EXIF at all
    assert harness.last_reply("wangwu") == "已提交 #P2 的整改情况,等待网格长张三核查。\n照片:照片无拍摄时间信息"


# --- who checks ----------------------------------------------------------------------------------

async def test_a_grid_leaders_fix_goes_to_the_community_and_without_one_to_the_street(harness):
    await register(harness)
    reply = await submit_fix(harness, "P1", "zhangsan")
    assert reply.startswith("已提交 #P1 的整改情况,等待社区领导周书记核查。")
    assert harness.cards("zhoushuji") and not harness.cards("zhangsan")
    # 2号网格's community (和平社区) has no leader configured: the street leader checks.
    await register(harness, "zhouba", "问题:和平路垃圾桶满溢")
    reply = await submit_fix(harness, "P2", "sunqi")
    assert reply.startswith("已提交 #P2 的整改情况,等待街道领导钱主任核查。")


async def test_a_problem_a_leader_registered_is_checked_by_the_community(harness):
    await harness.text("zhoushuji", "问题:1号网格 幸福路垃圾桶满溢")
    reply = await submit_fix(harness, "P1", "lisi")
    # Registering a problem is not fixing it: 周书记 checks the fix; the grid leader is below that level.
    assert reply.startswith("已提交 #P1 的整改情况,等待社区领导周书记核查。")
    await harness.text("zhangsan", "核查 #P1 通过")
    assert harness.last_reply("zhangsan") == "#P1 的整改由社区领导周书记核查,您不能核查。"


async def test_with_no_check_configured_the_photo_closes_the_problem(harness, tmp_path):
    use_config(harness, tmp_path, BASE_CONFIG + '\n[review]\nmember = "none"\n')
    await register(harness)
    await harness.text("lisi", "整改 #P1 已清理")
    assert harness.last_reply("lisi") == "收到 #P1 的整改情况。请在10分钟内发送整改后的现场照片,收到照片即销号。"
    await harness.image("lisi", photo(14))
    assert harness.last_reply("lisi") == "已销号 #P1,用时1分钟。"
    p = problem(harness)
    assert p["status"] == "closed" and p["closed_by"] == p["fixed_by"] == "lisi" and len(p["photos_after"]) == 1
    assert "未经核查" in harness.last_reply("zhangsan")
