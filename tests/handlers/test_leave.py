"""请假 / 销假: own leave, leave for others, and what the nudge makes of it."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from tests.support.factories import BASE_CONFIG

from bot.config_loading import parse_config
from handlers.leave import LeaveError, parse_until
from bot.leave_records import on_leave
from bot.scheduler import run_job

TZ = ZoneInfo("Asia/Shanghai")
CFG = parse_config(BASE_CONFIG)
WED = date(2026, 11, 25)


async def nudged(harness, y=2026, m=11, d=25) -> list[str]:
    harness.clear()
    await run_job(harness.bot, "下午打卡提醒", "checkin_nudge", at=datetime(y, m, d, 17, 0, tzinfo=TZ))
    await harness.settle()
    pushes = harness.pushes("g1")
    return pushes[0]["mentioned"] if pushes else []


async def test_leave_until_friday(harness):
    await harness.text("wangwu", "请假到周五")
    assert harness.last_reply("wangwu").startswith("已登记请假至11月27日(周五),期间不提醒打卡。")
    assert harness.last_reply("zhangsan") == "【请假】王五请假至11月27日(周五),期间不提醒打卡。"
    doc = harness.store.get("leave", "wangwu")
    assert doc["until"] == "2026-11-27" and doc["set_by"] == "wangwu"
    assert "wangwu" not in await nudged(harness)
    assert "wangwu" in await nudged(harness, d=30)


async def test_leave_to_a_date_and_back_early(harness):
    await harness.text("lisi", "请假 11月30日")
    assert harness.last_reply("lisi").startswith("已登记请假至11月30日(周一)")
    assert await nudged(harness, d=30) == ["zhangsan", "wangwu"]
    await harness.text("lisi", "销假")
    assert harness.last_reply("lisi") == "已销假,今天起恢复打卡提醒。"
    assert harness.last_reply("zhangsan") == "【销假】李四已销假,今天起恢复打卡提醒。"
    assert "lisi" in await nudged(harness)
    await harness.text("lisi", "销假")
    assert harness.last_reply("lisi") == "您当前没有登记请假,无需销假。"


async def test_leave_already_taken_stays_on_record_after_return(harness):
    harness.clock.set(datetime(2026, 11, 23, 9, 0, tzinfo=TZ))
    await harness.text("lisi", "请假到周五")
    harness.clock.set(datetime(2026, 11, 25, 9, 0, tzinfo=TZ))
    await harness.text("lisi", "销假")
    # Monday and Tuesday were leave days (for the weekly rate); from Wednesday they are not.
    store = harness.store
    assert [on_leave(store, "lisi", date(2026, 11, d)) for d in (22, 23, 24, 25, 27)] == [
        False, True, True, False, False]


async def test_grid_leader_sets_leave_for_own_grid(harness):
    await harness.text("zhangsan", "请假 李四 到周三")
    assert harness.last_reply("zhangsan") == "已为李四登记请假至11月25日(周三),期间不提醒打卡。"
    assert harness.last_reply("lisi").startswith("张三已为您登记请假至11月25日(周三)")
    assert "lisi" not in await nudged(harness)
    assert harness.store.get("leave", "lisi")["set_by"] == "zhangsan"
    await harness.text("zhangsan", "销假 李四")
    assert harness.last_reply("zhangsan") == "已为李四销假,今天起恢复打卡提醒。"
    assert "lisi" in await nudged(harness)


async def test_grid_leader_cannot_set_leave_in_another_grid(harness):
    await harness.text("sunqi", "请假 李四 到周五")
    assert harness.last_reply("sunqi") == "您只能为本网格(2号网格)的人员登记请假或销假。"
    assert harness.store.get("leave", "lisi") is None


async def test_member_cannot_set_leave_for_others(harness):
    await harness.text("wangwu", "请假 李四 到周五")
    assert harness.last_reply("wangwu") == "只有网格长或管理员可以为他人登记请假或销假。"
    assert harness.store.get("leave", "lisi") is None


async def test_admin_sets_leave_and_grid_leader_is_told(harness):
    await harness.text("admin", "请假 王五 到下周二")
    assert harness.last_reply("admin") == "已为王五登记请假至12月1日(周二),期间不提醒打卡。"
    assert harness.last_reply("zhangsan") == "【请假】王五请假至12月1日(周二),期间不提醒打卡。"
    assert "wangwu" not in await nudged(harness, m=12, d=1)
    assert "wangwu" in await nudged(harness, m=12, d=2)


@pytest.mark.parametrize("text, expected", [
    ("请假", "请假可以这样说"),
    ("请假到下个月", "没有看懂请假日期“下个月”"),
    ("请假 11月20日", "11月20日(周五)已经过去了"),
    ("请假 2月30日", "日期“2月30日”不存在"),
    ("请假 李四", "请写明李四请假到哪一天"),
    ("请假 2027-12-31", "太远了"),
])
async def test_bad_leave_messages_get_a_polite_answer(harness, text, expected):
    await harness.text("lisi", text)
    assert expected in harness.last_reply("lisi")
    assert harness.store.get("leave", "lisi") is None


async def test_leave_is_not_taken_for_a_report(harness):
    await harness.text("lisi", "请假到周五")
    assert harness.store.find("reports", lambda r: True) == []


@pytest.mark.parametrize("text, today, expected", [
    ("到今天", WED, WED),
    ("明天", WED, date(2026, 11, 26)),
    ("至周五", WED, date(2026, 11, 27)),
    ("到星期三", WED, WED),
    ("到周二", WED, date(2026, 12, 1)),
    ("到下周三", WED, date(2026, 12, 2)),
    ("到本周日", WED, date(2026, 11, 29)),
    ("11月30日", WED, date(2026, 11, 30)),
    ("到11月30号为止", WED, date(2026, 11, 30)),
    ("12.3", WED, date(2026, 12, 3)),
    ("2026-12-03", WED, date(2026, 12, 3)),
    ("1月3日", date(2026, 12, 20), date(2027, 1, 3)),
    ("到28号", WED, date(2026, 11, 28)),
    ("到3号", WED, date(2026, 12, 3)),
    ("3天", date(2026, 11, 27), date(2026, 12, 1)),  # Fri, Mon, Tue: workdays
    ("三天", date(2026, 9, 30), date(2026, 10, 9)),  # across the National Day holiday
])
def test_parse_until(text, today, expected):
    assert parse_until(text, today, CFG) == expected


def test_parse_until_refuses_nonsense():
    with pytest.raises(LeaveError):
        parse_until("到很久以后", WED, CFG)


# --- natural ways of asking (Wednesday 25 November 2026) -------------------------------------

@pytest.mark.parametrize("text, reply, span", [
    ("明天请假一天", "已登记请假11月26日(周四)一天,当天不提醒打卡。", ("2026-11-26", "2026-11-26")),
    ("请病假到12月8日", "已登记请假至12月8日(周二),期间不提醒打卡。", ("2026-11-25", "2026-12-08")),
    ("我下周一请假", "已登记请假11月30日(周一)一天,当天不提醒打卡。", ("2026-11-30", "2026-11-30")),
    ("下周一请假两天", "已登记请假11月30日(周一)至12月1日(周二),期间不提醒打卡。", ("2026-11-30", "2026-12-01")),
    ("12月8日到12月10日请年假", "已登记请假12月8日(周二)至12月10日(周四),期间不提醒打卡。",
     ("2026-12-08", "2026-12-10")),
    ("我想申请休假到周五吧", "已登记请假至11月27日(周五),期间不提醒打卡。", ("2026-11-25", "2026-11-27")),
    ("请事假一天", "已登记请假至11月25日(周三),期间不提醒打卡。", ("2026-11-25", "2026-11-25")),
    ("从明天起请假到周五", "已登记请假11月26日(周四)至11月27日(周五),期间不提醒打卡。",
     ("2026-11-26", "2026-11-27")),
])
async def test_natural_ways_of_asking_for_leave(harness, text, reply, span):
    await harness.text("wangwu", text)
    assert harness.last_reply("wangwu").startswith(reply)
    [period] = harness.store.get("leave", "wangwu")["periods"]
    assert (period["from"], period["until"]) == span


async def test_leave_starting_tomorrow_still_nudges_today(harness):
    await harness.text("wangwu", "明天请假一天")
    assert "wangwu" in await nudged(harness)            # Wednesday: not on leave yet
    assert "wangwu" not in await nudged(harness, d=26)  # Thursday: on leave
    assert "wangwu" in await nudged(harness, d=27)      # Friday: back


async def test_a_future_leave_keeps_the_one_already_booked(harness):
    await harness.text("wangwu", "请假到周五")
    await harness.text("wangwu", "12月8日到12月10日请年假")
    periods = [(p["from"], p["until"]) for p in harness.store.get("leave", "wangwu")["periods"]]
    assert periods == [("2026-11-25", "2026-11-27"), ("2026-12-08", "2026-12-10")]


async def test_a_grid_leader_names_the_person_first(harness):
    await harness.text("zhangsan", "王五明天请假")
    assert harness.last_reply("zhangsan") == "已为王五登记请假11月26日(周四)一天,当天不提醒打卡。"
    assert harness.last_reply("wangwu").startswith("张三已为您登记请假11月26日(周四)一天")


async def test_a_report_about_people_on_leave_is_still_a_report(harness):
    await harness.text("lisi", "走访请假在家的老人3户")
    assert harness.store.get("leave", "lisi") is None
    assert harness.last_reply("lisi").startswith("已记录 #R1")
