"""The escalation ladder job on a controlled clock: who is told when, each step once, nothing on
rest days (unless a campaign says otherwise), nothing more once the problem is fixed or the
member checks in; and the digest lists what reached the top (schedules/supervise.py, bot.ladder)."""

from __future__ import annotations

from datetime import date

from bot.scheduler import run_job
from schedules.digest import build_digest

from tests.support.attendance_helpers import at, checkins, use_config
from tests.support.factories import BASE_CONFIG
from tests.support.problem_flow import register, submit_fix

PREFIX = "【逾期督办】以下问题已超过整改期限,请督促整改:\n"


async def ladder(harness, when) -> str:
    harness.clock.set(when)
    result = await run_job(harness.bot, "逐级督办", "ladder", at=when)
    await harness.settle()
    return result


def told(harness, userid: str) -> list[str]:
    return [r for r in harness.replies(userid) if r.startswith(("【逾期督办】", "【未打卡督办】"))]


async def test_an_overdue_problem_climbs_one_level_at_a_time_on_workday_hours(harness):
    await register(harness)  # Wed 11月25日 09:30, deadline Fri 11月27日 09:30
    assert await ladder(harness, at(2026, 11, 27, 9, 0)) == "没有需要督办的事项。"
    result = await ladder(harness, at(2026, 11, 27, 10, 0))
    assert result == "督办:逾期问题1项,连续未打卡0人,共告知1人。"
    assert told(harness, "zhangsan")[-1] == PREFIX + "#P1 1号网格 幸福路3号楼下堆放建筑垃圾(逾期不足1小时,期限11月27日 09:30)"
    assert await ladder(harness, at(2026, 11, 27, 10, 30)) == "没有需要督办的事项。"  # each step once
    # The weekend does not count: Saturday and Sunday send nothing and add no hours.
    assert (await ladder(harness, at(2026, 11, 28, 10, 0))).startswith("今天不是工作日")
    assert await ladder(harness, at(2026, 11, 30, 9, 0)) == "没有需要督办的事项。"  # 23.5 workday hours
    await ladder(harness, at(2026, 11, 30, 10, 0))  # 24.5: the community
    assert told(harness, "zhoushuji") == [PREFIX + "#P1 1号网格 幸福路3号楼下堆放建筑垃圾(逾期3天,期限11月27日 09:30;"
                                          "此前已告知网格长张三)"]
    assert told(harness, "qian") == []
    await ladder(harness, at(2026, 12, 1, 10, 0))  # 48.5: the street
    assert told(harness, "qian")[-1].endswith("此前已告知网格长张三、社区领导周书记)")
    assert len(told(harness, "zhangsan")) == len(told(harness, "zhoushuji")) == 1
    p = harness.store.get("problems", "P1")
    steps = [h for h in p["history"] if h["action"] == "escalated"]
    assert [(h["step"], h["to"], h["by_name"]) for h in steps] == [
        (0, ["zhangsan"], "系统"), (1, ["zhoushuji"], "系统"), (2, ["qian"], "系统")]
    assert p["ladder"]["top"] is True
    # The leader's digest of that week names what reached the top.
    digest = build_digest(harness.bot.config, harness.store, "2026-W49", as_of=at(2026, 12, 7, 8, 30))
    assert digest["ladder_top"] == ["P1"]
    assert "· 已逐级督办至街道领导仍未整改的问题 1 项:#P1(1号网格)" in digest["markdown"]


async def test_the_ladder_stops_when_the_fix_is_reported_and_goes_on_if_it_is_rejected(harness):
    await register(harness)
    await ladder(harness, at(2026, 11, 27, 10, 0))
    assert len(told(harness, "zhangsan")) == 1
    harness.clock.set(at(2026, 11, 27, 11, 0))
    await submit_fix(harness, "P1", "lisi")
    assert await ladder(harness, at(2026, 11, 30, 10, 0)) == "没有需要督办的事项。"  # waiting for its check
    harness.clock.set(at(2026, 11, 30, 11, 0))
    await harness.text("zhangsan", "驳回 #P1 仍有垃圾")
    # The check took 3 days (a weekend among them); the deadline moved on by all of it, so the
    # community hears 24 workday hours after the new deadline, not at once.
    p = harness.store.get("problems", "P1")
    assert p["deadline"] == int(at(2026, 11, 30, 9, 30).timestamp())
    assert await ladder(harness, at(2026, 11, 30, 12, 0)) == "没有需要督办的事项。"  # step 0 was sent already
    await ladder(harness, at(2026, 12, 1, 10, 0))
    assert len(told(harness, "zhoushuji")) == 1


async def test_in_a_campaign_the_weekend_counts(harness, tmp_path):
    use_config(harness, tmp_path, BASE_CONFIG + """
[[calendar.campaigns]]
name = "迎接省级复检"
start = 2026-11-28
end = 2026-11-29
""")
    await register(harness)
    await ladder(harness, at(2026, 11, 27, 10, 0))
    await ladder(harness, at(2026, 11, 28, 10, 0))  # Saturday, a workday in the campaign: 24.5 hours
    assert len(told(harness, "zhoushuji")) == 1


async def test_configured_steps_and_a_level_with_nobody_falls_to_the_next(harness, tmp_path):
    use_config(harness, tmp_path, BASE_CONFIG + """
[ladder]
problems = [{ after_hours = 2, notify = "community" }, { after_hours = 4, notify = "street" }]
""")
    await register(harness, "zhouba", "问题:和平路垃圾桶满溢")  # 2号网格: 和平社区 has no leader
    assert await ladder(harness, at(2026, 11, 27, 11, 0)) == "没有需要督办的事项。"  # 1.5 hours
    await ladder(harness, at(2026, 11, 27, 12, 0))
    assert len(told(harness, "qian")) == 1 and told(harness, "sunqi") == []  # the street, at once
    await ladder(harness, at(2026, 11, 27, 14, 0))  # the street step: already told, nobody new
    assert len(told(harness, "qian")) == 1
    p = harness.store.get("problems", "P1")
    assert p["ladder"]["sent"] == [0, 1] and p["history"][-1]["note"] == "逾期督办第2级:无新的告知对象"


# --- members who stop checking in -------------------------------------------------------------------

async def test_a_member_missing_check_ins_climbs_the_ladder_until_they_check_in(harness):
    bot = harness.bot
    await checkins(bot, ["zhangsan", "lisi", "wangwu", "sunqi", "zhouba"], [date(2026, 11, 24)])
    await checkins(bot, ["zhangsan", "wangwu", "sunqi", "zhouba"], [date(2026, 11, 25), date(2026, 11, 26)])
    assert await ladder(harness, at(2026, 11, 25, 19, 30)) == "没有需要督办的事项。"  # before the 20:00 deadline
    await ladder(harness, at(2026, 11, 25, 20, 0))
    assert told(harness, "zhangsan") == ["【未打卡督办】以下人员连续未打卡,请督促尽快拍照打卡:\n"
                                         "李四(1号网格,自11月25日起连续1个工作日未打卡)"]
    await ladder(harness, at(2026, 11, 26, 20, 0))  # 24 workday hours later, still nothing
    assert told(harness, "zhoushuji") == ["【未打卡督办】以下人员连续未打卡,请督促尽快拍照打卡:\n"
                                          "李四(1号网格,自11月25日起连续2个工作日未打卡)"]
    await checkins(bot, ["lisi"], [date(2026, 11, 27)])  # Friday morning: back
    await checkins(bot, ["zhangsan", "wangwu", "sunqi", "zhouba"], [date(2026, 11, 27)])
    assert await ladder(harness, at(2026, 11, 27, 20, 0)) == "没有需要督办的事项。"
    assert told(harness, "qian") == []


async def test_a_fix_left_unchecked_reminds_its_checkers_once(harness):
    await register(harness)
    await submit_fix(harness, "P1", "lisi")  # Wed 11月25日 09:30
    assert await ladder(harness, at(2026, 11, 26, 9, 0)) == "没有需要督办的事项。"  # 23.5 workday hours
    assert await ladder(harness, at(2026, 11, 26, 10, 0)) == "督办:逾期问题0项,连续未打卡0人,待核查1项,共告知1人。"
    assert harness.last_reply("zhangsan") == (
        "【待核查提醒】以下整改已提交较长时间,请尽快核查(点核查卡片上的按钮,或回复“核查 #P编号 通过”):\n"
        "#P1 1号网格 幸福路3号楼下堆放建筑垃圾(李四于11月25日 09:30提交)")
    assert await ladder(harness, at(2026, 11, 27, 10, 0)) == "没有需要督办的事项。"
    assert harness.store.get("problems", "P1")["history"][-1]["action"] == "check_reminded"


async def test_a_problem_closed_while_the_ladder_runs_is_not_written_back_open(harness, monkeypatch):
    # The job lets callbacks in between its turns (a district's two thousand problems); a fix
    # closed in one of them must stay closed, and nobody is pushed about it.
    import schedules.supervise as supervise
    await register(harness)
    turns = supervise.in_turns

    async def closing_meanwhile(items):
        first = True
        async for item in turns(items):
            if first:
                first = False
                p = harness.store.get("problems", "P1")
                if p["status"] == "open":
                    await harness.store.put("problems", {**p, "status": "closed", "closed_at": p["deadline"] + 60})
            yield item
    monkeypatch.setattr(supervise, "in_turns", closing_meanwhile)
    when = at(2026, 11, 27, 10, 0)
    harness.clock.set(when)
    await run_job(harness.bot, "逐级督办", "ladder", at=when)
    await harness.settle()
    p = harness.store.get("problems", "P1")
    assert p["status"] == "closed" and not p.get("ladder")
    assert told(harness, "zhangsan") == []
