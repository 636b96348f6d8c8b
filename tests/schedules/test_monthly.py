"""The monthly bulletin (月通报): its numbers and wording against the hand-computed October of
tests/support/month_october.py (a National Day month with a make-up Saturday and a campaign
period), the 红黑榜, and what grid groups and leaders receive from the job on a controlled clock."""

from __future__ import annotations

import gc
import io
from datetime import datetime

import openpyxl
import pytest
from PIL import Image

from bot.scheduler import run_job
from schedules.month_data import collect_month
from schedules.month_honours import honours, pick
from schedules.month_text import build_bulletin, grid_text
from bot.store import no_cyclic_gc as collector_paused
from schedules.weekdata import scope_grid_ids

from tests.support import month_october
from tests.support.month_october import MONTH, TZ, after, entries

# The month's shared fixtures, bound here so pytest finds them in this module.
cfg, config_path, store = month_october.cfg, month_october.config_path, month_october.store

SUNDAY_NOV_1 = datetime(2026, 11, 1, 9, 0, tzinfo=TZ)  # a workday: the campaign runs to 11-01


async def test_street_bulletin_matches_the_hand_computed_october(cfg, store):
    data = collect_month(cfg, store, MONTH, as_of=after(1))
    assert len(data.workdays) == 19 and data.complete
    b = build_bulletin(cfg, data)
    assert b["title"] == "测试街道2026年10月工作通报"
    assert round(b["rate"], 4) == round(73 / 90, 4) and b["points_per_member"] == 71 / 5
    md = b["markdown"]
    assert md.index("一、总体情况") < md.index("二、考核排名") < md.index("三、存在问题") < md.index("四、下一步工作要求")
    assert "> 10月1日—10月31日 · 19个工作日 · 2个网格 · 5人" in md
    # 73 of 90 expected person-days (81%) against September's 22 of 110 (20%); points 14.2 against 5.4.
    assert ("本月共上报工作 8 条;打卡率 81%(应打卡 90 人天,实际 73 人天,较上月+61个百分点);"
            "人均积分 14.2 分(较上月+8.8)。") in md
    assert "· 小广告清理 98处(较上月+68)" in md and "· 入户走访 40户(与上月持平)" in md
    assert "月度目标完成 2/3 项:" in md
    assert "· 1号网格 入户走访 35/30户(117%,已完成)、小广告清理 95/120处(79%)" in md
    assert "· 1号网格 9%(已走访 36/400 户,其中 4 户按门牌去重,32 户未注明门牌、按上报数量计)" in md
    assert "· 2号网格 2%(已走访 5/300 户,均未注明门牌,按上报数量计,可能含重复走访)" in md
    assert "问题整改:本月新增 4 项,按期销号 1 项,逾期销号 2 项,月末逾期未整改 2 项。" in md
    assert ("迎检“迎接省级复检”期间(10月26日—10月31日,每天均为工作日)每日打卡率:10月26日 80%、10月27日 80%、"
            "10月28日 80%、10月29日 80%、10月30日 60%、10月31日 80%") in md
    assert "· 第1名 1号网格 人均16分(较上月+8) · 打卡率 88% · 上报 5 条" in md
    assert "· 第2名 2号网格 人均11.5分(较上月+10) · 打卡率 71% · 上报 3 条" in md
    # The 红榜: at most half of those ranked (one of two grids, two of five people), reasons in one line.
    assert "· 1号网格:人均16分。打卡率88%;打卡46人天、发现问题3项、有效上报5条" in md
    assert "· 张三(1号网格):25分。打卡19天、按期整改销号1项、发现问题1项" in md
    assert "· 李四(1号网格):20分。打卡18天、有效上报3条、发现问题1项" in md
    assert "· 2号网格:人均11.5分。打卡率71%;问题逾期8天、整改被退回1次" in md
    assert "王五" not in md and "周八" not in md  # people on the 黑榜 only where the config allows it
    assert "积分规则:打卡每天+1、有效上报每条+1、发现问题每项+2、按期整改销号每项+3" in md
    assert "  #P3 2号网格 和平路流动摊贩占道经营(逾期6天)" in md
    assert "· 扣分情况:整改被退回 1次、问题逾期 12天、重复或旧照片 2张、数量不实 1条" in md
    assert "· 黑榜网格(2号网格)分析原因、制定措施,下月重点督导" in md
    assert all(len(p.encode()) <= 2048 for p in b["parts"])


async def test_a_leaders_bulletin_covers_their_scope_with_street_ranks(cfg, store):
    data = collect_month(cfg, store, MONTH, as_of=after(1))
    b = build_bulletin(cfg, data, scope_grid_ids(cfg, ["xingfu"]), scope=["xingfu"])
    md = b["markdown"]
    assert b["title"] == "幸福社区2026年10月工作通报" and b["grids"] == ["g1"]
    assert "打卡率 88%(应打卡 52 人天,实际 46 人天,较上月+55个百分点);人均积分 16 分(较上月+8)" in md
    assert "· 第1名 1号网格 人均16分" in md and "2号网格" not in md
    # One grid in scope: no grid lists; three people: one on the 红榜.
    assert "· 张三(1号网格):25分" in md and "李四(1号网格):20分" not in md


async def test_each_grid_group_reads_its_own_month(cfg, store):
    data = collect_month(cfg, store, MONTH, as_of=after(1))
    street = honours(cfg, data.grid_list())
    text = grid_text(cfg, data, data.grids["g2"], street)
    assert text.splitlines() == [
        "【2号网格 10月通报】10月1日—10月31日 · 19个工作日",
        "打卡率 71%(27/38人天,较上月+71个百分点) · 人均积分 11.5分(全街道第2/2名,较上月+10) · 上报 3条",
        "分类工作量:小广告清理 3处、入户走访 5户、宣传发动 200份",
        "月度目标:宣传发动 200/150份(133%,已完成)",
        "入户走访覆盖率 2%(已走访 5/300 户,均未注明门牌,按上报数量计,可能含重复走访)",
        "问题:新增 1项,按期销号 0项,逾期销号 1项,逾期未整改 1项:#P3",
        "迎检“迎接省级复检”期间(10月26日—10月31日,每天均为工作日)每日打卡率:26日 50%、27日 50%、28日 50%、"
        "29日 50%、30日 50%、31日 50%",
        "个人积分:孙七 19分、周八 12分",
        "全街道红榜:1号网格(人均16分)、张三(1号网格,25分)、李四(1号网格,20分)",
        "全街道黑榜:2号网格:人均11.5分。打卡率71%;问题逾期8天、整改被退回1次",
        "发送“我的积分”查看个人积分和排名。",
    ]


async def test_people_go_on_the_black_list_only_where_the_config_allows_it(cfg, store):
    allowing = cfg.model_copy(update={"monthly": cfg.monthly.model_copy(update={"black_list_people": True})})
    data = collect_month(allowing, store, MONTH, as_of=after(1))
    h = honours(allowing, data.grid_list())
    # Bottom two of five (the half rule): 王五 7, then 周八 12.
    assert [(x.name, x.points, x.reason) for x in h.black_people] == [
        ("王五", "7分", "打卡9/14天、重复或旧照片1张、数量不实1条"), ("周八", "12分", "打卡8/19天")]
    assert "· 王五(1号网格):7分。打卡9/14天、重复或旧照片1张、数量不实1条" in build_bulletin(allowing, data)["markdown"]


def test_honours_lists_keep_to_half_and_never_split_a_tie():
    ranked = [("a", 10), ("b", 8), ("c", 8), ("d", 5), ("e", 1), ("f", 1)]
    score = lambda x: x[1]  # noqa: E731
    red, black = pick(ranked, score, 3, 3)
    assert [x[0] for x in red] == ["a", "b", "c"] and [x[0] for x in black] == ["f", "e", "d"]
    red, black = pick(ranked, score, 2, 1)  # 2nd place is tied: both in (并列), black ties too
    assert [x[0] for x in red] == ["a", "b", "c"] and [x[0] for x in black] == ["f", "e"]
    red, black = pick([("a", 5), ("b", 5)], score, 3, 3)  # all equal: nobody is red or black
    assert red == [] and black == []
    red, black = pick([("a", 5), ("b", 4), ("c", 4)], score, 3, 3)  # half of three is one
    assert red == [("a", 5)] and black == []  # b and c tie: neither alone is the worst


async def test_the_job_sends_on_the_first_workday_once(harness):
    """Sunday 11-01 is a workday (the campaign runs to it): October goes out that morning to both
    grid groups and to each leader (markdown, the chart, the ledger); a second run on Monday
    sends nothing."""
    await harness.store.put_many(entries())
    result = await run_job(harness.bot, "月通报", "monthly_bulletin", at=SUNDAY_NOV_1)
    await harness.settle()
    assert result == "2026年10月工作通报已发送给 2 个网格群和 2 位领导"
    assert harness.pushes("g1")[0]["content"].startswith("【1号网格 10月通报】10月1日—10月31日 · 19个工作日\n打卡率 88%")
    assert harness.pushes("g2")[0]["content"].startswith("【2号网格 10月通报】")
    sent = harness.emulator.sent("app_message")
    for leader, title in (("zhoushuji", "幸福社区2026年10月工作通报"), ("qian", "测试街道2026年10月工作通报")):
        mine = [e for e in sent if e["to"] == [leader]]
        assert [e["msgtype"] for e in mine] == ["markdown"] * (len(mine) - 2) + ["image", "file"]
        assert mine[0]["content"].startswith(f"# {title}")
        png = await (await harness.client.get(mine[-2]["media_url"])).read()
        assert Image.open(io.BytesIO(png)).format == "PNG"
        wb = openpyxl.load_workbook(io.BytesIO(await (await harness.client.get(mine[-1]["media_url"])).read()))
        assert wb.sheetnames == ["汇总", "目标与覆盖", "个人积分", "积分明细", "红黑榜", "迎检每日"]
    count = len(harness.emulator.sent())
    again = await run_job(harness.bot, "月通报", "monthly_bulletin", at=datetime(2026, 11, 2, 9, 0, tzinfo=TZ))
    await harness.settle()
    assert again == "2026年10月工作通报已于2026-11-01 09:00发送,不再重复发送。"
    assert len(harness.emulator.sent()) == count


async def test_after_national_day_the_bulletin_waits_for_the_first_workday(harness):
    """The cron fires on days 1–10; 10-01..07 are holidays, so September's bulletin goes out on
    Thursday 10-08 and the holiday mornings send nothing."""
    await harness.store.put_many(entries())
    for d in range(1, 8):
        result = await run_job(harness.bot, "月通报", "monthly_bulletin", at=datetime(2026, 10, d, 9, 0, tzinfo=TZ))
        assert result.endswith("不是工作日,2026年9月工作通报在本月第一个工作日发送。")
    await harness.settle()
    assert harness.pushes() == []
    result = await run_job(harness.bot, "月通报", "monthly_bulletin", at=datetime(2026, 10, 8, 9, 0, tzinfo=TZ))
    await harness.settle()
    assert result == "2026年9月工作通报已发送给 2 个网格群和 2 位领导"
    # September: only 张三 checked in, all 22 workdays; 1号网格 22 of 66 person-days. August had
    # no records at all (the bot was not in use yet): nothing to compare with, not "+33 points".
    text = harness.pushes("g1")[0]["content"]
    assert text.startswith("【1号网格 9月通报】9月1日—9月30日 · 22个工作日\n打卡率 33%(22/66人天) · 人均积分 8分")
    assert "较上月" not in text


async def test_a_large_scope_counts_targets_and_names_the_lowest_coverage(cfg, store, monkeypatch):
    """Past MAX_LISTED grids the overview does not list forty grids: targets as a count (the
    shortfalls are under 存在问题), coverage as the total and the lowest five. Total coverage:
    4 named + 37 counted = 41 of 700 households = 6%."""
    from schedules import month_text
    monkeypatch.setattr(month_text, "MAX_LISTED", 1)
    data = collect_month(cfg, store, MONTH, as_of=after(1))
    md = build_bulletin(cfg, data)["markdown"]
    assert "月度目标完成 2/3 项(各网格完成情况见附件台账“目标与覆盖”表)。" in md
    assert ("入户走访覆盖率 6%(已走访 41/700 户,其中 4 户按门牌去重,37 户未注明门牌、按上报数量计);最低的5个网格:\n"
            "· 2号网格 2%") in md
    assert "· 未完成月度目标 1 项:1号网格小广告清理(79%)" in md


def test_reading_a_month_pauses_the_collector_and_leaves_it_as_it_was():
    """The month's parsed weeks must not be walked by the cyclic GC while they are read (each
    pass held the GIL for 0.2-0.4 s on a district, callbacks waited seconds); afterwards the
    collector is back on, and what was read is frozen out of its passes."""
    assert gc.isenabled()
    frozen = gc.get_freeze_count()
    try:
        with collector_paused():
            assert not gc.isenabled()
            kept = [{"id": f"R{i}", "items": [{"quantity": i}]} for i in range(1000)]
        assert gc.isenabled() and gc.get_freeze_count() >= frozen + 1000
        with pytest.raises(ValueError):
            with collector_paused():
                raise ValueError("a month that cannot be read")
        assert gc.isenabled()  # a failed read does not leave the bot without its collector
        gc.disable()  # someone else (the store loading) has paused it: theirs to switch back on
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
        gc.unfreeze()
    assert len(kept) == 1000
