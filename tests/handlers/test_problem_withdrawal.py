"""Withdrawing a problem (撤回 #P12), through the real encrypted callback: who may, what the
people involved read, and that a withdrawn problem leaves every open list, count and reminder
while its history stays."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from bot.scheduler import run_job
from bot.stats import compute_stats
from schedules.digest import build_digest
from schedules.weekdata import collect_week

from tests.handlers.test_problems import OPEN_TEXT, actions, jpeg, open_problem, problem
from tests.support.problem_flow import fix_and_pass, submit_fix
from bot.store_choice import store_for

TZ = ZoneInfo("Asia/Shanghai")


# --- the reporter takes back their own problem ---------------------------------------------

async def test_reporter_withdraws_own_problem_with_a_reason_kept_in_history(harness):
    await open_problem(harness)
    harness.clock.advance(minutes=10)
    await harness.text("lisi", "撤回 #P1 重复登记")
    assert harness.last_reply("lisi") == ("已撤回 #P1(幸福路3号楼下堆放建筑垃圾),原因:重复登记。"
                                          "该问题不再列入待整改问题和统计,已告知网格长张三。")
    told = harness.last_reply("zhangsan")
    assert told.startswith("【问题撤回】#P1 1号网格:幸福路3号楼下堆放建筑垃圾")
    assert "李四撤回,原因:重复登记。" in told
    p = problem(harness)
    assert p["status"] == "withdrawn"
    assert actions(p) == ["opened", "withdrawn"]
    entry = p["history"][-1]
    assert (entry["by"], entry["by_name"], entry["note"]) == ("lisi", "李四", "重复登记")
    assert entry["at"] == int(datetime(2026, 11, 25, 9, 40, tzinfo=TZ).timestamp())
    # The story survives a restart, and anyone can still look it up.
    await harness.store.checkpoint()
    ro = store_for(harness.bot.config, readonly=True)
    ro.load()
    assert ro.get("problems", "P1")["history"][-1]["note"] == "重复登记"
    await harness.text("wangwu", "问题 #P1")
    detail = harness.last_reply("wangwu")
    assert "#P1(1号网格,已撤回)" in detail
    assert "撤回:李四 11月25日 09:40,原因:重复登记" in detail


@pytest.mark.parametrize("text", ["撤回问题 #P1", "#P1 撤回", "问题 #P1 撤回", "撤回 P1", "撤回#P1。",
                                  "撤回 #P1 吧"])
async def test_every_way_of_writing_it_withdraws(harness, text):
    await open_problem(harness)
    await harness.text("lisi", text)
    assert harness.last_reply("lisi").startswith("已撤回 #P1(幸福路3号楼下堆放建筑垃圾)。该问题不再列入")
    assert problem(harness)["status"] == "withdrawn"
    assert problem(harness)["withdrawn_reason"] == ""
    assert len(list(harness.store.docs("problems"))) == 1  # "问题 #P1 撤回" opened no new problem


async def test_bare_withdraw_still_takes_back_the_latest_report(harness):
    await harness.text("lisi", "清理小广告15处")
    await open_problem(harness)
    await harness.text("lisi", "撤回")
    assert harness.last_reply("lisi").startswith("已撤回 #R1")
    assert harness.store.get("reports", "R1")["status"] == "withdrawn"
    assert problem(harness)["status"] == "open"


async def test_own_photos_and_location_do_not_stop_the_reporter_and_next_photo_is_a_checkin(harness):
    await open_problem(harness)
    await harness.image("lisi", jpeg(21))
    await harness.location("lisi", 30.5, 114.3, "幸福路3号楼")
    await harness.text("lisi", "撤回 #P1 位置写错了")
    assert harness.last_reply("lisi").startswith("已撤回 #P1")
    harness.clock.advance(minutes=2)
    await harness.image("lisi", jpeg(22))
    assert len(problem(harness)["photos_before"]) == 1
    assert "打卡成功" in harness.last_reply("lisi")
    assert len(list(harness.store.docs("checkins"))) == 1


# --- refusals ---------------------------------------------------------------------------------

async def test_someone_elses_problem_is_refused(harness):
    await open_problem(harness)
    for userid in ("wangwu", "sunqi", "zhouba", "zhoushuji"):
        await harness.text(userid, "撤回 #P1")
        assert harness.last_reply(userid) == "#P1 由李四登记,只有登记人或本网格网格长可以撤回。"
    assert problem(harness)["status"] == "open"


@pytest.mark.parametrize("act", [
    [("wangwu", "整改 #P1 已联系物业,明天清运")],  # a progress note by a colleague
    [("wangwu", "整改 #P1 已清理")],  # a close request waiting for its after-photo
    [("zhangsan", "转 #P1 2号网格"), ("sunqi", "转 #P1 1号网格")],  # reassigned and sent back
    [("zhangsan", "销号 #P1")],  # the grid leader reporting his own fix, waiting for its after-photo
])
async def test_reporter_may_not_withdraw_once_someone_acted(harness, act):
    await open_problem(harness)
    for userid, text in act:
        await harness.text(userid, text)
    await harness.text("lisi", "撤回 #P1")
    assert harness.last_reply("lisi") == "#P1 已有人处理,不能撤回,请联系网格长张三。"
    assert problem(harness)["status"] == "open"


async def test_reporter_may_not_withdraw_a_problem_closed_and_reopened(harness):
    await open_problem(harness)
    await fix_and_pass(harness, "P1", fixer="wangwu")
    await harness.text("zhangsan", "重开 #P1 不彻底")
    await harness.text("lisi", "撤回 #P1")
    assert harness.last_reply("lisi") == "#P1 已有人处理,不能撤回,请联系网格长张三。"


async def test_closed_unknown_awaiting_check_and_already_withdrawn(harness):
    await harness.text("lisi", "撤回 #P4 吧")
    assert harness.last_reply("lisi").startswith("没有找到问题 #P4,请核对编号")
    await open_problem(harness)
    await submit_fix(harness, "P1", "wangwu")
    await harness.text("zhangsan", "撤回 #P1")
    assert harness.last_reply("zhangsan") == "#P1 已提交整改,正在等待核查,不能撤回。"
    await harness.text("zhangsan", "核查 #P1 通过")
    await harness.text("zhangsan", "撤回 #P1")
    assert harness.last_reply("zhangsan") == "#P1 已销号,不能撤回。"
    await open_problem(harness, "wangwu", "问题:幸福路5号门前乱停车辆")
    await harness.text("wangwu", "撤回 #P2")
    await harness.text("zhangsan", "撤回 #P2")
    assert harness.last_reply("zhangsan") == "#P2 已于11月25日 09:30由王五撤回,无需重复撤回。"


# --- the grid leader and admins ------------------------------------------------------------------

async def test_grid_leader_withdraws_a_handled_problem_and_the_reporter_hears(harness):
    await open_problem(harness)
    await harness.text("wangwu", "整改 #P1 正在联系物业")
    await harness.text("zhangsan", "撤回 #P1 与#P3重复")
    assert harness.last_reply("zhangsan") == ("已撤回 #P1(幸福路3号楼下堆放建筑垃圾),原因:与#P3重复。"
                                              "该问题不再列入待整改问题和统计,已告知登记人李四。")
    assert harness.last_reply("lisi") == "您登记的问题 #P1 已由张三撤回,原因:与#P3重复。如问题仍存在,请重新登记。"
    p = problem(harness)
    assert p["status"] == "withdrawn" and p["withdrawn_by"] == "zhangsan"
    assert actions(p) == ["opened", "progress", "withdrawn"]


async def test_admin_withdraws_in_any_grid_and_both_leader_and_reporter_hear(harness):
    await open_problem(harness, "zhouba", "问题:和平路垃圾桶满溢")
    await harness.text("admin", "撤回 #P1 误报")
    assert harness.last_reply("admin").endswith("已告知网格长孙七和登记人周八。")
    assert "管理员撤回,原因:误报" in harness.last_reply("sunqi")
    assert "已由管理员撤回" in harness.last_reply("zhouba")


# --- after withdrawal ------------------------------------------------------------------------------

async def test_a_withdrawn_problem_cannot_be_closed_reassigned_or_reopened(harness):
    await open_problem(harness)
    await harness.text("wangwu", "整改 #P1 已清理")  # waiting for wangwu's after-photo
    await harness.text("zhangsan", "撤回 #P1 重复登记")
    gone = "#P1 已于11月25日 09:30由张三撤回(原因:重复登记)"
    await harness.image("wangwu", jpeg(23))
    assert harness.last_reply("wangwu") == gone + ",照片未添加。"
    await harness.text("wangwu", "整改 #P1 已清理")
    assert harness.last_reply("wangwu") == gone + ",无需整改。如问题仍存在,请重新登记。"
    await harness.text("zhangsan", "转 #P1 2号网格")
    assert harness.last_reply("zhangsan") == gone + ",不能转派。如问题仍存在,请重新登记。"
    await harness.text("zhangsan", "重开 #P1")
    assert harness.last_reply("zhangsan") == gone + ",不能重开。如问题仍存在,请重新登记。"
    p = problem(harness)
    assert p["status"] == "withdrawn" and p["grid"] == "g1" and p["photos_after"] == []
    assert actions(p) == ["opened", "close_requested", "withdrawn"]


async def test_withdrawn_problem_leaves_every_list_count_and_reminder(harness):
    await open_problem(harness)
    await open_problem(harness, "wangwu", "问题:幸福路5号门前乱停车辆")
    await harness.text("wangwu", "撤回 #P2 登记错了")
    # Saturday 11月28日 10:00: both deadlines (11月27日 09:30) have passed.
    harness.clock.set(datetime(2026, 11, 28, 10, 0, tzinfo=TZ))
    await harness.text("lisi", "问题")
    listed = harness.last_reply("lisi")
    assert "【1号网格 待整改问题 1项,逾期1项】" in listed and "#P2" not in listed
    await harness.text("lisi", "本周")
    assert "本网格待整改问题:1项" in harness.last_reply("lisi")

    await run_job(harness.bot, "逾期问题", "overdue_problems", at=harness.clock.now())
    await run_job(harness.bot, "早间提醒", "daily_reminder", at=datetime(2026, 11, 30, 8, 30, tzinfo=TZ))
    await run_job(harness.bot, "周通报", "weekly_tally", at=datetime(2026, 11, 30, 9, 0, tzinfo=TZ))
    await harness.settle()
    overdue, reminder, tally = (p["content"] for p in harness.pushes("g1"))
    assert "1号网格有1项问题超过整改期限" in overdue and "#P1" in overdue and "#P2" not in overdue
    assert "待整改问题1项" in reminder and "#P2" not in reminder
    assert "待整改问题 1项,其中逾期未整改 1项:#P1(逾期2天)" in tally

    cfg, store = harness.bot.config, harness.store
    digest = build_digest(cfg, store, "2026-W48", None, as_of=datetime(2026, 11, 30, 8, 30, tzinfo=TZ))
    assert digest["open_problems"] == ["P1"] and digest["overdue"] == ["P1"]
    assert [p["id"] for p in collect_week(cfg, store, "2026-W48").problems] == ["P1"]
    stats = compute_stats(store, cfg, week="2026-W48")
    assert (stats["problems_open"], stats["problems_closed"]) == (1, 0)


async def test_replayed_withdrawal_is_applied_once(harness):
    await harness.text("lisi", OPEN_TEXT)
    await harness.text("lisi", "撤回 #P1", msgid="910001")
    await harness.text("lisi", "撤回 #P1", msgid="910001")
    assert actions(problem(harness)) == ["opened", "withdrawn"]
    assert sum(r.startswith("已撤回 #P1") for r in harness.replies("lisi")) == 1


async def test_help_tells_how_to_withdraw_a_problem(harness):
    await harness.text("wangwu", "帮助")
    assert "登记有误发“撤回 #P12 原因”" in harness.last_reply("wangwu")
