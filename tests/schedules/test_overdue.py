"""The overdue_problems job: each grid group hears about its own overdue problems, on a fake clock."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from bot.problem_ledger import days_overdue
from bot.scheduler import run_job
from schedules.overdue import overdue_of

from tests.support.problem_flow import fix_and_pass, submit_fix

TZ = ZoneInfo("Asia/Shanghai")


async def run(harness, at: datetime) -> str | None:
    result = await run_job(harness.bot, "逾期问题", "overdue_problems", at=at)
    await harness.settle()
    return result


async def open_problems(harness) -> None:
    # Wed 11月25日 09:30: two problems in 1号网格, one in 2号网格 (deadlines 11月27日 09:30).
    await harness.text("lisi", "问题:幸福路3号楼下堆放建筑垃圾")
    await harness.text("wangwu", "问题:幸福路5号门前乱停车辆")
    await harness.text("zhouba", "问题:和平路垃圾桶满溢")


async def test_nothing_pushed_before_deadline(harness):
    await open_problems(harness)
    result = await run(harness, datetime(2026, 11, 27, 9, 0, tzinfo=TZ))
    assert harness.pushes() == []
    assert result == "没有逾期问题"


async def test_overdue_pushed_per_grid_with_mentions(harness):
    await open_problems(harness)
    await fix_and_pass(harness, "P3", "zhouba", "sunqi")  # 2号网格 has nothing left overdue
    harness.clock.set(datetime(2026, 11, 28, 10, 0, tzinfo=TZ))
    result = await run(harness, harness.clock.now())
    g1 = harness.pushes("g1")
    assert len(g1) == 1
    text = g1[0]["content"]
    assert text.startswith("【逾期未整改问题】截至11月28日 10:00,1号网格有2项问题超过整改期限")
    assert "#P1 幸福路3号楼下堆放建筑垃圾(逾期1天,上报人李四)" in text
    assert "#P2 幸福路5号门前乱停车辆(逾期1天,上报人王五)" in text
    assert set(g1[0]["mentioned"]) == {"lisi", "wangwu", "zhangsan"}
    assert harness.pushes("g2") == []
    assert "1号网格2项" in result


async def test_closed_problems_never_pushed_and_days_count(harness):
    await open_problems(harness)
    await fix_and_pass(harness, "P1")
    at = datetime(2026, 11, 30, 9, 0, tzinfo=TZ)  # deadline 11月27日 09:30 → 2 days 23.5 hours late
    await run(harness, at)
    g1 = harness.pushes("g1")[0]["content"]
    assert "#P1" not in g1
    assert "#P2 幸福路5号门前乱停车辆(逾期2天" in g1
    g2 = harness.pushes("g2")
    assert len(g2) == 1 and "#P3" in g2[0]["content"]
    assert set(g2[0]["mentioned"]) == {"zhouba", "sunqi"}
    # The shared query the digest uses agrees.
    overdue = overdue_of(harness.store, at)
    assert [p["id"] for p in overdue] == ["P2", "P3"]
    assert [days_overdue(p, at.timestamp()) for p in overdue] == [2, 2]
    assert overdue_of(harness.store, at, "g1")[0]["id"] == "P2"


async def test_hours_overdue_and_reassigned_problem_goes_to_new_grid(harness):
    await harness.text("lisi", "问题:幸福路3号楼下堆放建筑垃圾")
    await harness.text("zhangsan", "转 #P1 2号网格")
    await run(harness, datetime(2026, 11, 27, 14, 45, tzinfo=TZ))
    assert harness.pushes("g1") == []
    g2 = harness.pushes("g2")
    assert "(逾期5小时,上报人李四)" in g2[0]["content"]
    # The reporter from 1号网格 and 2号网格's leader are the ones pinged.
    assert set(g2[0]["mentioned"]) == {"lisi", "sunqi"}


async def test_reopened_problem_gets_fresh_deadline(harness):
    await harness.text("lisi", "问题:幸福路3号楼下堆放建筑垃圾")
    await fix_and_pass(harness, "P1")
    harness.clock.set(datetime(2026, 11, 29, 9, 0, tzinfo=TZ))
    await harness.text("zhangsan", "重开 #P1 又堆了")
    await run(harness, datetime(2026, 11, 30, 9, 0, tzinfo=TZ))
    assert harness.pushes("g1") == []  # new deadline 12月1日 09:00
    await run(harness, datetime(2026, 12, 1, 10, 0, tzinfo=TZ))
    assert "#P1" in harness.pushes("g1")[0]["content"]


async def test_a_fix_waiting_for_its_check_is_not_overdue(harness):
    await open_problems(harness)
    await submit_fix(harness, "P1", "lisi")  # reported on time, the grid leader has not looked yet
    at = datetime(2026, 11, 30, 9, 0, tzinfo=TZ)
    await run(harness, at)
    g1 = harness.pushes("g1")[0]["content"]
    assert "#P1" not in g1 and "#P2" in g1
    assert [p["id"] for p in overdue_of(harness.store, at, "g1")] == ["P2"]


async def test_with_many_grids_the_result_gives_the_total_and_the_worst(harness, monkeypatch):
    # A district's run names hundreds of grids: the result an admin reads stays one short line.
    import schedules.overdue as overdue
    monkeypatch.setattr(overdue, "LISTED_GRIDS", 1)
    await open_problems(harness)
    result = await run(harness, datetime(2026, 11, 28, 10, 0, tzinfo=TZ))
    assert result == "逾期问题共3项,涉及2个网格,已分别推送;最多的是1号网格2项"
    assert len(harness.pushes("g1")) == len(harness.pushes("g2")) == 1
