"""Morning reminder, check-in nudge and escalation, with a controllable clock and calendar."""

from __future__ import annotations

from datetime import date

from tests.support.factories import BASE_CONFIG

from tests.support.attendance_helpers import at, checkin, checkins, problem, report, use_config
from bot.attendance import repeated_misses
from bot.scheduler import run_job

WED = date(2026, 11, 25)


async def nudge(harness, when):
    harness.clear()
    result = await run_job(harness.bot, "下午打卡提醒", "checkin_nudge", at=when)
    await harness.settle()
    return result


# --- who is mentioned -----------------------------------------------------------------------


async def test_nudge_mentions_exactly_those_without_a_checkin(harness):
    await checkin(harness.bot, "lisi", WED)
    await checkin(harness.bot, "zhouba", WED)
    await checkin(harness.bot, "wangwu", date(2026, 11, 24))  # yesterday does not count today
    result = await nudge(harness, at(2026, 11, 25, 17, 0))

    g1 = harness.pushes("g1")
    assert len(g1) == 1
    assert g1[0]["mentioned"] == ["zhangsan", "wangwu"]
    assert g1[0]["content"] == "【今日打卡提醒】截至17:00,尚未打卡:@张三 @王五,请于20:00前拍照打卡。"
    g2 = harness.pushes("g2")
    assert [p["mentioned"] for p in g2] == [["sunqi"]]
    # Leaders and admins outside the grids are never mentioned.
    everyone = {u for p in harness.pushes() for u in p["mentioned"]}
    assert everyone == {"zhangsan", "wangwu", "sunqi"}
    assert "2个网格" in result and "3人" in result


async def test_uncounted_checkin_still_missing(harness):
    await checkin(harness.bot, "lisi", WED, counted=False)
    await nudge(harness, at(2026, 11, 25, 17, 0))
    assert harness.pushes("g1")[0]["mentioned"] == ["zhangsan", "lisi", "wangwu"]


async def test_no_push_for_a_grid_where_everyone_checked_in(harness):
    await checkins(harness.bot, ["sunqi", "zhouba"], [WED])
    await nudge(harness, at(2026, 11, 25, 17, 0))
    assert harness.pushes("g2") == []
    assert len(harness.pushes("g1")) == 1


async def test_everyone_checked_in_sends_nothing(harness):
    await checkins(harness.bot, ["zhangsan", "lisi", "wangwu", "sunqi", "zhouba"], [WED])
    result = await nudge(harness, at(2026, 11, 25, 17, 0))
    assert harness.pushes() == []
    assert "未发送" in result


async def test_holiday_no_one_is_mentioned(harness):
    harness.clock.set(at(2026, 10, 3, 17, 0))  # National Day holiday, a Saturday
    result = await nudge(harness, at(2026, 10, 3, 17, 0))
    assert harness.pushes() == []
    assert "10月3日(周六)不是工作日" in result


async def test_makeup_workday_nudges(harness):
    # 2026-10-10 is a Saturday worked in exchange for the National Day holiday (调休).
    await checkin(harness.bot, "zhangsan", date(2026, 10, 10))
    await nudge(harness, at(2026, 10, 10, 17, 0))
    assert harness.pushes("g1")[0]["mentioned"] == ["lisi", "wangwu"]


async def test_ordinary_sunday_is_quiet(harness):
    await nudge(harness, at(2026, 11, 29, 17, 0))
    assert harness.pushes() == []


async def test_leave_exempts_until_the_date_inclusive(harness):
    await harness.text("wangwu", "请假到周五")
    await checkin(harness.bot, "lisi", WED)
    await nudge(harness, at(2026, 11, 25, 17, 0))
    assert harness.pushes("g1")[0]["mentioned"] == ["zhangsan"]
    await nudge(harness, at(2026, 11, 27, 17, 0))  # Friday: still on leave
    assert "wangwu" not in harness.pushes("g1")[0]["mentioned"]
    await nudge(harness, at(2026, 11, 30, 17, 0))  # Monday: back
    assert harness.pushes("g1")[0]["mentioned"] == ["zhangsan", "lisi", "wangwu"]


async def test_leave_with_only_the_contract_fields_starts_the_day_it_was_set(harness):
    # {id, until, set_by, at}: the leave runs from the day of `at` in the bot's timezone
    # (Wed 07:30 in Shanghai is still Tuesday in UTC), given as unix time or ISO text.
    wed_morning = int(at(2026, 11, 25, 7, 30).timestamp())
    await harness.store.put("leave", {"id": "wangwu", "until": "2026-11-27", "set_by": "zhangsan",
                                      "at": wed_morning})
    await harness.store.put("leave", {"id": "lisi", "until": "2026-11-27", "set_by": "zhangsan",
                                      "at": "2026-11-25T07:30:00+08:00"})
    await nudge(harness, at(2026, 11, 24, 17, 0))
    assert harness.pushes("g1")[0]["mentioned"] == ["zhangsan", "lisi", "wangwu"]
    await nudge(harness, at(2026, 11, 25, 17, 0))
    assert harness.pushes("g1")[0]["mentioned"] == ["zhangsan"]


async def test_config_extra_holiday_and_campaign(harness, tmp_path):
    use_config(harness, tmp_path, BASE_CONFIG + """
[calendar]
extra_holidays = [2026-11-25]

[[calendar.campaigns]]
name = "迎接省级复检"
start = 2026-11-28
end = 2026-11-29
""")
    assert "不是工作日" in await nudge(harness, at(2026, 11, 25, 17, 0))
    assert harness.pushes() == []
    await nudge(harness, at(2026, 11, 29, 17, 0))  # Sunday inside the campaign
    assert len(harness.pushes("g1")) == 1


# --- the morning reminder -------------------------------------------------------------------


async def test_daily_reminder_focus_totals_and_open_problems(harness):
    tue = date(2026, 11, 24)
    await report(harness.bot, "lisi", tue, [("ads", 15, "处"), ("visit", 12, "户")])
    await report(harness.bot, "wangwu", tue, [("ads", 5, "处")])
    await report(harness.bot, "wangwu", tue, [("ads", 99, "处")], status="withdrawn")
    await report(harness.bot, "sunqi", tue, [("visit", 3, "户")])
    await checkins(harness.bot, ["lisi", "wangwu"], [tue])
    await problem(harness.bot, "g1", "幸福路3号楼下堆放建筑垃圾", opened=at(2026, 11, 22, 10),
                  deadline=at(2026, 11, 24, 10))
    await problem(harness.bot, "g1", "已整改的问题", opened=at(2026, 11, 22, 10),
                  deadline=at(2026, 11, 24, 10), status="closed")
    harness.clear()
    result = await run_job(harness.bot, "早间提醒", "daily_reminder", at=at(2026, 11, 25, 8, 30))
    await harness.settle()

    assert "2个网格群" in result
    text = harness.pushes("g1")[0]["content"]
    assert text.startswith("【今日工作提醒】11月25日(周三)")
    assert "昨日(11月24日)本网格:上报2条,小广告清理 20处、入户走访 12户;打卡 2/3人" in text
    assert "待整改问题1项:#P1 幸福路3号楼下堆放建筑垃圾(已逾期1天)" in text
    assert "已整改" not in text
    assert harness.pushes("g1")[0]["mentioned"] == []
    g2 = harness.pushes("g2")[0]["content"]
    assert "上报1条,入户走访 3户;打卡 0/2人" in g2
    assert "待整改" not in g2


async def test_daily_reminder_focus_line(harness, tmp_path):
    use_config(harness, tmp_path, BASE_CONFIG + '\n[reminders]\nfocus = "重点整治占道经营"\nnudge_deadline = "19:00"\n')
    await run_job(harness.bot, "早间提醒", "daily_reminder", at=at(2026, 11, 25, 8, 30))
    await harness.settle()
    assert "今日重点:重点整治占道经营" in harness.pushes("g1")[0]["content"]
    await nudge(harness, at(2026, 11, 25, 17, 0))
    assert "请于19:00前拍照打卡" in harness.pushes("g1")[0]["content"]


async def test_daily_reminder_not_on_holiday(harness):
    result = await run_job(harness.bot, "早间提醒", "daily_reminder", at=at(2026, 10, 1, 8, 30))
    await harness.settle()
    assert harness.pushes() == []
    assert "不是工作日" in result


TARGETS = BASE_CONFIG.replace("households = 400", "households = 400\ntargets = { visit = 50, ads = 10 }")


async def test_targets_from_wednesday(harness, tmp_path):
    use_config(harness, tmp_path, TARGETS)
    mon, tue = date(2026, 11, 23), date(2026, 11, 24)
    await report(harness.bot, "lisi", mon, [("visit", 20, "户")])
    await report(harness.bot, "wangwu", tue, [("visit", 12, "户"), ("ads", 15, "处")])
    await report(harness.bot, "wangwu", tue, [("visit", 30, "户")], status="withdrawn")
    # Tuesday morning: too early in the week to count what is left.
    await run_job(harness.bot, "早间提醒", "daily_reminder", at=at(2026, 11, 24, 8, 30))
    await harness.settle()
    assert "本周" not in harness.pushes("g1")[0]["content"]
    harness.clear()
    await run_job(harness.bot, "早间提醒", "daily_reminder", at=at(2026, 11, 25, 8, 30))
    await harness.settle()
    text = harness.pushes("g1")[0]["content"]
    assert "本周入户走访还差18户" in text
    assert "本周小广告清理已完成目标(10处)" in text
    assert "本周" not in harness.pushes("g2")[0]["content"]  # g2 has no targets


async def test_target_unit_falls_back_to_xiang(harness, tmp_path):
    use_config(harness, tmp_path, BASE_CONFIG.replace("households = 400",
                                                      "households = 400\ntargets = { mediation = 4 }"))
    await run_job(harness.bot, "早间提醒", "daily_reminder", at=at(2026, 11, 26, 8, 30))
    await harness.settle()
    assert "本周矛盾调解还差4项" in harness.pushes("g1")[0]["content"]


# --- escalation and repeated misses ---------------------------------------------------------


async def test_escalation_tells_grid_leader_who_is_missing(harness):
    await checkin(harness.bot, "lisi", WED)
    await checkins(harness.bot, ["sunqi", "zhouba"], [WED])
    await harness.text("wangwu", "请假 11月30日")
    harness.clear()
    result = await run_job(harness.bot, "晚间告知网格长", "escalation", at=at(2026, 11, 25, 19, 30))
    await harness.settle()

    msg = harness.last_reply("zhangsan")
    assert msg.startswith("【未打卡情况】11月25日(周三) 1号网格截至19:30仍有1人未打卡(应打卡2人):张三")
    assert "请假:王五(至11月30日)" in msg
    assert harness.replies("sunqi") == []  # g2 is complete
    assert harness.replies("lisi") == []
    assert harness.pushes() == []
    assert "1位网格长" in result


async def test_escalation_lists_three_workdays_in_a_row(harness):
    # Friday, then the weekend (not workdays), then Monday and Tuesday: three in a row for 王五.
    fri, mon, tue = date(2026, 11, 20), date(2026, 11, 23), date(2026, 11, 24)
    await checkins(harness.bot, ["zhangsan", "lisi", "wangwu", "sunqi", "zhouba"], [date(2026, 11, 19)])
    await checkins(harness.bot, ["zhangsan", "lisi", "sunqi", "zhouba"], [fri, mon, tue])
    await checkins(harness.bot, ["zhangsan"], [WED])

    streaks = repeated_misses(harness.bot, tue)
    assert streaks == {"g1": [("wangwu", "王五", 3)]}
    streaks = repeated_misses(harness.bot, WED)
    assert streaks["g1"] == [("wangwu", "王五", 4)]
    assert "g2" not in streaks  # 孙七 and 周八 missed only today
    assert repeated_misses(harness.bot, WED, min_days=1)["g2"] == [("sunqi", "孙七", 1), ("zhouba", "周八", 1)]

    harness.clear()
    await run_job(harness.bot, "晚间告知网格长", "escalation", at=at(2026, 11, 25, 19, 30))
    await harness.settle()
    msg = harness.last_reply("zhangsan")
    assert "仍有2人未打卡(应打卡3人):李四、王五" in msg
    assert "连续未打卡:王五(4个工作日)" in msg


async def test_streak_steps_over_leave_and_starts_with_the_first_checkin(harness):
    # Nothing before 11-23 was recorded: the bot was not in use, so those days are no misses.
    mon, tue = date(2026, 11, 23), date(2026, 11, 24)
    await checkins(harness.bot, ["zhangsan", "lisi", "sunqi", "zhouba"], [mon, tue, WED])
    assert repeated_misses(harness.bot, WED) == {"g1": [("wangwu", "王五", 3)]}
    assert repeated_misses(harness.bot, tue) == {}
    # Leave on Wednesday: it neither counts nor breaks the streak.
    await harness.store.put("leave", {"id": "wangwu", "until": "2026-11-25", "set_by": "wangwu", "at": 0,
                                      "periods": [{"from": "2026-11-25", "until": "2026-11-25"}]})
    assert repeated_misses(harness.bot, WED) == {}
    await checkins(harness.bot, ["zhangsan", "lisi", "sunqi", "zhouba"], [date(2026, 11, 26)])
    assert repeated_misses(harness.bot, date(2026, 11, 26)) == {"g1": [("wangwu", "王五", 3)]}


async def test_escalation_not_on_rest_day(harness):
    result = await run_job(harness.bot, "晚间告知网格长", "escalation", at=at(2026, 11, 28, 19, 30))
    await harness.settle()
    assert "不是工作日" in result
    assert harness.emulator.sent() == []



async def test_monday_reminder_looks_back_to_friday(harness):
    fri = date(2026, 11, 27)
    await report(harness.bot, "lisi", fri, [("ads", 6, "处")])
    await checkins(harness.bot, ["zhangsan", "lisi", "wangwu"], [fri])
    await run_job(harness.bot, "早间提醒", "daily_reminder", at=at(2026, 11, 30, 8, 30))
    await harness.settle()
    text = harness.pushes("g1")[0]["content"]
    assert "上个工作日(11月27日)本网格:上报1条,小广告清理 6处;打卡 3/3人" in text
