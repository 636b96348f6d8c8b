"""The weekly tally against a hand-computed week, and the numbers the digest reuses."""

from __future__ import annotations

from datetime import date

from tests.support.attendance_helpers import at, checkin, checkins, problem, report, week_days
from bot.attendance import grid_week_stats
from bot.scheduler import run_job

MON = date(2026, 11, 23)  # week 48: Mon 11-23 .. Sun 11-29, five ordinary workdays
W48 = week_days(MON)


async def hand_computed_week(bot):
    """
    1号网格 (400 households)          days checked in / expected
      张三  Mon-Fri                    5/5
      李四  Mon-Thu, plus Saturday     4/5  (Saturday is a rest day: not in the rate)
      王五  Mon, Tue; leave Thu-Fri;   2/3  (Wednesday's photo was a duplicate: not counted)
      grid: 11/13 = 84.6% → 85%
    2号网格: 孙七 and 周八 every workday → 10/10 = 100%, rank 1; 1号网格 rank 2 of 2.
    Reports (g1): 李四 Tue 小广告15处 入户12户; 王五 Wed 小广告5处  → 2 reports, 小广告 20处, 入户 12户
      not counted: a withdrawn one, an unconfirmed one, and one dated the next week.
    Problems (g1): #P1 open, deadline Sat 11-28 10:00 → at Mon 11-30 09:00 overdue 47 h → 1 day (as DESIGN.md's example, "逾期1天");
      #P2 open, deadline 12-02; #P3 closed.
    """
    await checkins(bot, ["zhangsan"], W48)
    await checkins(bot, ["lisi"], W48[:4] + [date(2026, 11, 28)])
    await checkins(bot, ["wangwu"], W48[:2])
    await checkin(bot, "wangwu", W48[2], counted=False)
    await bot.store.put("leave", {"id": "wangwu", "until": "2026-11-27", "set_by": "wangwu", "at": 0,
                                  "periods": [{"from": "2026-11-26", "until": "2026-11-27"}]})
    await checkins(bot, ["sunqi", "zhouba"], W48)
    await report(bot, "lisi", W48[1], [("ads", 15, "处"), ("visit", 12, "户")])
    await report(bot, "wangwu", W48[2], [("ads", 5, "处")])
    await report(bot, "wangwu", W48[2], [("ads", 100, "处")], status="withdrawn")
    await report(bot, "lisi", W48[3], [("visit", 40, "户")], unconfirmed=True)
    await report(bot, "lisi", date(2026, 11, 30), [("visit", 7, "户")])
    await report(bot, "sunqi", W48[0], [("patrol", 2, "次")])
    await problem(bot, "g1", "幸福路3号楼下堆放建筑垃圾", opened=at(2026, 11, 26, 10), deadline=at(2026, 11, 28, 10))
    await problem(bot, "g1", "和平路共享单车乱停", opened=at(2026, 11, 29, 10), deadline=at(2026, 12, 2, 10))
    await problem(bot, "g1", "已整改", opened=at(2026, 11, 23, 10), deadline=at(2026, 11, 24, 10),
                  status="closed")


async def test_weekly_tally_matches_hand_computed_week(harness):
    await hand_computed_week(harness.bot)
    harness.clear()
    result = await run_job(harness.bot, "周一网格通报", "weekly_tally", at=at(2026, 11, 30, 9, 0))
    await harness.settle()

    assert "2026-W48" in result
    g1 = harness.pushes("g1")
    assert len(g1) == 1 and g1[0]["mentioned"] == []
    assert g1[0]["content"] == (
        "【1号网格 第48周通报】11月23日—11月29日\n"
        "打卡率 85%(全街道第2/2) · 上报 2条 · 小广告清理 20处 · 入户走访 12户\n"
        "休息日打卡 1 次(不计入打卡率)\n"
        "个人打卡:张三 100%(5/5天)、李四 80%(4/5天)、王五 67%(2/3天,请假2天)\n"
        "待整改问题 2项,其中逾期未整改 1项:#P1(逾期1天)"
    )
    assert harness.pushes("g2")[0]["content"] == (
        "【2号网格 第48周通报】11月23日—11月29日\n"
        "打卡率 100%(全街道第1/2) · 上报 1条 · 巡查巡逻 2次\n"
        "个人打卡:孙七 100%(5/5天)、周八 100%(5/5天)\n"
        "无待整改问题"
    )


async def test_grid_week_stats_numbers(harness):
    await hand_computed_week(harness.bot)
    stats = grid_week_stats(harness.bot, "2026-W48")
    assert stats.workdays == W48
    g1 = stats.grids["g1"]
    assert (g1.checkin_days, g1.expected_days, g1.reports, g1.items) == (11, 13, 2, 3)
    assert round(g1.rate, 4) == round(11 / 13, 4)
    assert g1.items_per_100 == 3 * 100 / 400
    assert g1.totals == {("ads", "处"): 20, ("visit", "户"): 12}
    assert g1.category_totals() == {"ads": 20, "visit": 12}
    people = {p.userid: p for p in g1.people}
    assert (people["lisi"].checkin_days, people["lisi"].expected_days, people["lisi"].extra_days) == (4, 5, 1)
    assert (people["wangwu"].leave_days, people["wangwu"].expected_days, people["wangwu"].checkin_days) == (2, 3, 2)
    assert (g1.rank, g1.of, stats.grids["g2"].rank) == (2, 2, 1)
    assert [g.grid for g in stats.ranked()] == ["g2", "g1"]
    # The same numbers from a store and a config (as `gridbot` commands have them).
    again = grid_week_stats(harness.store, "2026-W48", harness.bot.config)
    assert again.grids["g1"].checkin_days == 11
    # A week in progress: only days up to Wednesday.
    partial = grid_week_stats(harness.bot, "2026-W48", through=W48[2])
    assert partial.grids["g1"].expected_days == 9 and partial.grids["g1"].checkin_days == 8


async def test_equal_rates_share_a_rank_listed_by_items_per_100_households(harness):
    await checkins(harness.bot, ["zhangsan", "lisi", "wangwu", "sunqi", "zhouba"], W48)
    await report(harness.bot, "lisi", W48[0], [("ads", 1, "处"), ("visit", 1, "户")])  # 2 per 400
    await report(harness.bot, "sunqi", W48[0], [("ads", 1, "处"), ("visit", 1, "户")])  # 2 per 300
    stats = grid_week_stats(harness.bot, "2026-W48")
    assert (stats.grids["g2"].rank, stats.grids["g1"].rank) == (1, 1)  # both 100%: 并列第1
    assert stats.grids["g1"].tied and [g.grid for g in stats.ranked()] == ["g1", "g2"]
    await report(harness.bot, "wangwu", W48[1], [("ads", 1, "处"), ("visit", 1, "户")])  # 4 per 400
    stats = grid_week_stats(harness.bot, "2026-W48")
    assert (stats.grids["g1"].rank, stats.grids["g2"].rank) == (1, 1)
    await run_job(harness.bot, "周一网格通报", "weekly_tally", at=at(2026, 11, 30, 9, 0))
    await harness.settle()
    assert "打卡率 100%(全街道并列第1/2)" in harness.pushes("g1")[0]["content"]


async def test_holiday_week_counts_official_workdays(harness):
    # Week 41 of 2026: Mon-Wed are National Day holidays, Saturday 10-10 is a make-up workday.
    days = [date(2026, 10, 8), date(2026, 10, 9), date(2026, 10, 10)]
    await checkins(harness.bot, ["zhangsan", "lisi"], days)
    await checkins(harness.bot, ["wangwu"], days[:2])
    stats = grid_week_stats(harness.bot, "2026-W41")
    assert stats.workdays == days
    g1 = stats.grids["g1"]
    assert (g1.checkin_days, g1.expected_days) == (8, 9)
    # The tally runs on the holiday Monday all the same (weekly jobs ignore the calendar).
    harness.clear()
    await run_job(harness.bot, "周一网格通报", "weekly_tally", at=at(2026, 10, 5, 9, 0))
    await harness.settle()
    assert "第40周通报】9月28日—10月4日" in harness.pushes("g1")[0]["content"]
    harness.clear()
    await run_job(harness.bot, "周一网格通报", "weekly_tally", at=at(2026, 10, 12, 9, 0))
    await harness.settle()
    text = harness.pushes("g1")[0]["content"]
    assert "打卡率 89%" in text and "王五 67%(2/3天)" in text


async def test_tally_for_an_empty_week(harness):
    await run_job(harness.bot, "周一网格通报", "weekly_tally", at=at(2026, 11, 30, 9, 0))
    await harness.settle()
    text = harness.pushes("g1")[0]["content"]
    assert "打卡率 0%(全街道并列第1/2)" in text
    assert "· 上报 0条\n" in text and "无待整改问题" in text


async def test_the_tally_and_the_digest_show_recurrences_and_hot_spots(harness):
    from schedules.digest import build_digest
    from tests.support.problem_flow import fix_and_pass, register

    # Wed 11-25: registered and fixed; Fri 11-27: back again at the same place (反弹), twice.
    await register(harness, "lisi", "问题:幸福路3号楼下堆放建筑垃圾")
    await fix_and_pass(harness, "P1")
    harness.clock.set(at(2026, 11, 27, 10))
    await register(harness, "wangwu", "问题:幸福路三号楼旁又堆了建筑垃圾")
    await fix_and_pass(harness, "P2", "wangwu")
    harness.clock.set(at(2026, 11, 28, 10))
    await register(harness, "lisi", "问题:幸福路3号楼楼下建筑垃圾又出现了")
    assert harness.store.get("problems", "P3")["recurs_of"] == ["P1", "P2"]
    harness.clear()
    await run_job(harness.bot, "周一网格通报", "weekly_tally", at=at(2026, 11, 30, 9, 0))
    await harness.settle()
    assert "反弹问题 2项(整治后又出现):#P2(第2次)、#P3(第3次)" in harness.pushes("g1")[0]["content"]
    digest = build_digest(harness.bot.config, harness.store, "2026-W48", as_of=at(2026, 11, 30, 8, 30))
    assert digest["hot_spots"] == [["P1", "P2", "P3"]]
    assert ("· 反弹热点(同一地点30天内同类问题2次以上)1 处:\n"
            "  幸福路3号楼楼下建筑垃圾又出现了(1号网格,3次:#P1、#P2、#P3)") in digest["markdown"]
