"""A real week, trusted: a small street plays one week through the real callback and the jobs
command line, and every figure a person reads is checked against the week computed by hand.

The street (tests/support/factories.py): 测试街道 with 幸福社区 (1号网格: 张三 grid leader, 李四,
王五) and 和平社区 (2号网格: 孙七 grid leader, 周八); 周书记 leads 幸福社区, 钱主任 the street.

The week is ISO week 41 of 2026 (5–11 October), the tail of the National Day holiday:
    Mon 10-05, Tue 10-06, Wed 10-07   public holiday (rest days)
    Thu 10-08, Fri 10-09              workdays
    Sat 10-10                         make-up workday (调休): a workday
    Sun 10-11                         rest day
so the check-in rate divides by 3 workdays per person.

What happens (by hand):
    Mon 10-05  李四 checks in on the holiday: kept, shown as rest-day work, not in the rate.
    Wed 10-07  王五: "明天请假一天" → on leave Thu 10-08 only.
    Thu 10-08  张三, 李四, 孙七, 周八 check in (王五 on leave).
               李四 "清理小广告15处,入户走访十二户" → R1; "更正 #R1 入户走访10户" → R1 = 小广告15处, 入户10户.
               周八 "巡查背街小巷3条" → R2; "更正 巡查背街小巷4条" (no number: his latest) → R2 = 4条.
               李四 "补报 10天前 入户走访5户" → refused: beyond the 7-day window, ask 张三.
               李四 "问题:幸福路3号楼下堆放建筑垃圾" → P1.
               周八 "问题:和平路共享单车乱停" → P2, then "撤回 #P2 登记错了": gone from every list.
               周八 "清理小广告2000处" → R3, over the ceiling: 待核实; 孙七 "核实 #R3" → counted.
    Fri 10-09  everyone checks in (王五 too). 王五 "明天入户走访20户" → planned work, not booked.
               钱主任 (no grid) "排查消防隐患12家,发现隐患3处" → R4, on the 领导及机关 line.
               李四 "整改 #P1 已清理" + after-photo → P1 待核查; 张三 "核查 #P1 通过" → closed.
    Sat 10-10  张三, 李四, 孙七, 周八 check in; 王五 does not.
    Sun 10-11  周八 checks in: rest-day work.

Attendance (check-in days / expected workdays):
    1号网格: 张三 3/3, 李四 3/3, 王五 1/2 (leave 1 day)  → 7/8 = 87.5% → "88%", rank 2 of 2
    2号网格: 孙七 3/3, 周八 3/3                          → 6/6 = 100%, rank 1 of 2
Rest-day check-ins: 1号网格 1 (李四, Mon), 2号网格 1 (周八, Sun).
Reports counted: 1号网格 1 (R1: 小广告清理 15处, 入户走访 10户); 2号网格 2 (R2: 巡查巡逻 4条;
R3: 小广告清理 2000处); 领导及机关 1 (R4: 隐患排查 12家、3处). Street: 4 reports.
Problems: P1 opened Thu, closed Fri; P2 withdrawn: none open, one closed.
"""

from __future__ import annotations

import asyncio
import io
from datetime import datetime, timedelta

import openpyxl

from bot.cli import main as cli_main
from bot.scheduler import run_job
from tests.conftest import TZ
from tests.support.photo_samples import jpeg, scene

THU, FRI, SAT, SUN, MON_AFTER = (datetime(2026, 10, d, tzinfo=TZ) for d in (8, 9, 10, 11, 12))
WED = datetime(2026, 10, 7, tzinfo=TZ)
MON = datetime(2026, 10, 5, tzinfo=TZ)
_seed = iter(range(1000, 2000))


def at(day: datetime, hh: int, mm: int = 0) -> datetime:
    return day.replace(hour=hh, minute=mm)


async def check_in(harness, userid: str, when: datetime) -> str:
    """A fresh photo taken on site five minutes before it is sent."""
    harness.clock.set(when)
    await harness.image(userid, jpeg(scene(next(_seed)), taken=(when - timedelta(minutes=5)).replace(tzinfo=None)))
    return harness.last_reply(userid)


async def say(harness, userid: str, text: str, when: datetime) -> str:
    harness.clock.set(when)
    await harness.text(userid, text)
    return harness.last_reply(userid)


async def play_the_week(harness) -> None:
    assert (await check_in(harness, "lisi", at(MON, 9))).startswith(
        "打卡成功 09:00(休息日,不计入打卡率) · 本周第1次")
    assert await say(harness, "wangwu", "明天请假一天", at(WED, 20)) == \
        "已登记请假10月8日(周四)一天,当天不提醒打卡。如提前返岗,请发送“销假”。"

    for who in ("zhangsan", "lisi", "sunqi", "zhouba"):
        assert (await check_in(harness, who, at(THU, 8, 30))).startswith("打卡成功 08:30 · ")
    r1 = await say(harness, "lisi", "清理小广告15处,入户走访十二户", at(THU, 10))
    assert r1 == "已记录 #R1(10月8日)\n· 小广告清理 15处\n· 入户走访 12户\n本周累计:小广告清理 15处,入户走访 12户"
    assert await say(harness, "lisi", "更正 #R1 入户走访10户", at(THU, 10, 5)) == \
        "已更正 #R1(10月8日),现为:\n· 小广告清理 15处\n· 入户走访 10户"
    assert (await say(harness, "zhouba", "巡查背街小巷3条", at(THU, 11))).startswith("已记录 #R2(10月8日)")
    assert await say(harness, "zhouba", "更正 巡查背街小巷4条", at(THU, 11, 30)) == \
        "已更正 #R2(10月8日),现为:\n· 巡查巡逻 4条"
    late = await say(harness, "lisi", "补报 10天前 入户走访5户", at(THU, 12))
    assert late.startswith("9月28日的工作已超过补报期限,没有记录。只能补报最近7天(10月1日及以后)的工作")
    assert "请联系网格长张三" in late
    assert (await say(harness, "lisi", "问题:幸福路3号楼下堆放建筑垃圾", at(THU, 14))).startswith("已登记 #P1")
    assert (await say(harness, "zhouba", "问题:和平路共享单车乱停", at(THU, 15))).startswith("已登记 #P2")
    assert (await say(harness, "zhouba", "撤回 #P2 登记错了", at(THU, 15, 5))).startswith("已撤回 #P2")
    r3 = await say(harness, "zhouba", "清理小广告2000处", at(THU, 16))
    assert "数量超出常规,已请网格长核实" in r3
    assert await say(harness, "sunqi", "核实 #R3", at(THU, 17)) == "已核实 #R3,计入统计。"

    for who in ("zhangsan", "lisi", "wangwu", "sunqi", "zhouba"):
        assert (await check_in(harness, who, at(FRI, 8, 30))).startswith("打卡成功 08:30 · ")
    assert "计划中的工作" in await say(harness, "wangwu", "明天入户走访20户", at(FRI, 9))
    r4 = await say(harness, "qian", "排查消防隐患12家,发现隐患3处", at(FRI, 10))
    assert r4.startswith("已记录 #R4(10月9日)\n· 隐患排查 12家、3处")
    harness.clock.set(at(FRI, 15))
    await harness.text("lisi", "整改 #P1 已清理")
    await harness.image("lisi", jpeg(scene(next(_seed)), taken=at(FRI, 14, 55).replace(tzinfo=None)))
    assert harness.store.get("problems", "P1")["status"] == "pending_check"
    assert await say(harness, "zhangsan", "核查 #P1 通过", at(FRI, 15, 10)) == "#P1 核查通过,已销号,用时1天1小时。"
    assert harness.store.get("problems", "P1")["status"] == "closed"

    for who in ("zhangsan", "lisi", "sunqi", "zhouba"):
        assert (await check_in(harness, who, at(SAT, 9))).startswith("打卡成功 09:00 · ")
    assert (await check_in(harness, "zhouba", at(SUN, 10))).startswith(
        "打卡成功 10:00(休息日,不计入打卡率) · ")


async def nudges_of(harness, day: datetime) -> list[tuple[str, list[str]]]:
    """What the 17:00 check-in reminder pushes to the groups that day: (grid, mentioned)."""
    harness.clear()
    await run_job(harness.bot, "下午打卡提醒", "checkin_nudge", at=at(day, 17))
    await run_job(harness.bot, "晚间未打卡告知", "escalation", at=at(day, 20))
    await harness.settle()
    return [(p["to"], p["mentioned"]) for p in harness.pushes()]


async def test_a_real_week_adds_up_everywhere(harness, config_path, capsys):
    await play_the_week(harness)
    await harness.settle()

    # --- the daily reminders: rest days are quiet, leave is respected, the 调休 Saturday counts -
    assert await nudges_of(harness, MON) == []                  # the holiday: nothing at all
    assert harness.replies("zhangsan") == []                    # and no escalation either
    assert await nudges_of(harness, THU) == []                  # all in; 王五 on leave is not named
    assert await nudges_of(harness, SAT) == [("g1", ["wangwu"])]  # the make-up workday counts
    assert harness.replies("zhangsan") == [
        "【未打卡情况】10月10日(周六) 1号网格截至20:00仍有1人未打卡(应打卡3人):王五\n请督促尽快补拍打卡。"]
    assert await nudges_of(harness, SUN) == []
    await harness.store.checkpoint()

    # --- Monday 09:00: the weekly tally, through `gridbot jobs run` -------------------------
    capsys.readouterr()
    # The command runs its own event loop, as it does from a shell beside the running bot.
    assert await asyncio.to_thread(cli_main, ["jobs", "run", "weekly_tally", "--at", "2026-10-12T09:00",
                                              "--dry-run", "--config", str(config_path)]) == 0
    printed = capsys.readouterr().out
    assert ("【1号网格 第41周通报】10月5日—10月11日\n"
            "打卡率 88%(全街道第2/2) · 上报 1条 · 小广告清理 15处 · 入户走访 10户\n"
            "休息日打卡 1 次(不计入打卡率)\n"
            "个人打卡:张三 100%(3/3天)、李四 100%(3/3天)、王五 50%(1/2天,请假1天)\n"
            "无待整改问题") in printed
    assert ("【2号网格 第41周通报】10月5日—10月11日\n"
            "打卡率 100%(全街道第1/2) · 上报 2条 · 小广告清理 2000处 · 巡查巡逻 4条\n"
            "休息日打卡 1 次(不计入打卡率)\n"
            "个人打卡:孙七 100%(3/3天)、周八 100%(3/3天)\n"
            "无待整改问题") in printed
    assert "连续" not in printed and " 0%" not in printed

    # --- Monday 08:30: the leaders' digest and ledger ----------------------------------------
    harness.clear()
    harness.clock.set(at(MON_AFTER, 8, 30))
    assert await run_job(harness.bot, "周一领导周报", "weekly_digest", at=at(MON_AFTER, 8, 30)) == \
        "第41周工作简报已发送给 2 位领导"
    await harness.settle()
    sent = [e for e in harness.emulator.sent("app_message") if e["to"] == ["qian"]]
    md = "\n".join(e["content"] for e in sent if e["msgtype"] == "markdown")
    assert md.startswith("# 测试街道第41周工作简报\n> 10月5日—10月11日 · 3个工作日 · 2个网格 · 5人")
    assert "共上报工作 4 条,有效打卡 15 次,打卡率 93%" in md  # 13/14 workday check-ins; 15 counted photos
    assert "分类工作量(上周无数据,不作比较):" in md
    for line in ("· 小广告清理 2015处", "· 隐患排查 12家、3处", "· 入户走访 10户", "· 巡查巡逻 4条",
                 "· 幸福社区:1个网格 3人,打卡率 88%,上报 1 条",
                 "· 和平社区:1个网格 2人,打卡率 100%,上报 2 条",
                 "· 领导及机关:上报 1 条",
                 "· 第1名 2号网格 100% · 上报 2 条", "· 第2名 1号网格 88% · 上报 1 条",
                 "整改销号问题 1 项"):
        assert line in md, line
    assert "待核实记录" not in md and "其他" not in md and "连续" not in md

    file = next(e for e in sent if e["msgtype"] == "file")
    wb = openpyxl.load_workbook(io.BytesIO(await (await harness.client.get(file["media_url"])).read()))
    rows = list(wb["汇总"].iter_rows(values_only=True))
    col = {name: i for i, name in enumerate(rows[0])}
    total = next(r for r in rows[1:] if r[col["层级"]] == "合计")
    parts = [r for r in rows[1:] if r[col["层级"]] in ("社区小计", "其他")]
    for column in ("上报(条)", "小广告清理(处)", "隐患排查(家)", "入户走访(户)"):
        assert sum(r[col[column]] or 0 for r in parts) == total[col[column]], column
    assert (total[col["上报(条)"]], total[col["小广告清理(处)"]], total[col["销号问题"]]) == (4, 2015, 1)
    details = list(wb["明细"].iter_rows(values_only=True))
    dcol = {name: i for i, name in enumerate(details[0])}
    r1 = next(r for r in details[1:] if r[0] == "R1")
    assert (r1[dcol["原文"]], r1[dcol["更正为"]]) == ("清理小广告15处,入户走访十二户", "入户走访10户")
