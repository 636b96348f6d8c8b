"""The leaders' weekly digest: numbers against a hand-computed week, scopes, the chart, and
what a leader actually receives through the emulator."""

from __future__ import annotations

import io
import warnings
from datetime import date, datetime

import openpyxl
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from schedules.chart import configure_fonts, render_chart
from schedules.digest import build_digest, pack
from bot.attendance import longest_missing_run
from bot.scheduler import run_job
from schedules.weekdata import collect_week, scope_grid_ids

from tests.support.digest_week import cfg, config_path, store  # noqa: F401  (shared fixtures)
from tests.support.digest_week import TZ, WEEK, d, problem, ts, week_entries

MONDAY_AFTER = datetime(2026, 11, 30, 8, 30, tzinfo=TZ)



def glyph_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught
            if "missing from font" in str(w.message) or "Glyph" in str(w.message)]


# --- numbers ------------------------------------------------------------------------------

async def test_street_digest_matches_the_hand_computed_week(cfg, store):
    dg = build_digest(cfg, store, WEEK, None)
    assert dg["title"] == "测试街道第48周工作简报"
    assert dg["data"].workdays == [d(i) for i in range(5)]
    assert dg["people"] == 5
    # Leave days are not expected days: 周八 is on leave Wed–Fri, so 0 check-in days of 2
    # expected. Street: 13 check-in days (5 + 3 + 1 + 4 + 0) of 22 expected (5 + 5 + 5 + 5 + 2).
    assert dg["rate"] == pytest.approx(13 / 22)
    assert dg["prev_rate"] == pytest.approx(0.2)
    # g1: 9 of 15 → 60%; g2: 孙七 4 of 5 + 周八 0 of 2 → 4 of 7 (57%).
    assert dg["grid_rates"] == {"g1": pytest.approx(0.6), "g2": pytest.approx(4 / 7)}
    assert dg["ranks"] == {"g1": 1, "g2": 2}
    assert dg["reports"] == 5  # R4 (unconfirmed) and R5 (withdrawn) do not count
    assert dg["checkins"] == 15  # counted check-ins: 5 + 5 (two on Wed, one Sat) + 1 + 4
    assert dg["totals"] == {("ads", "处"): 45, ("visit", "户"): 32, ("publicity", "份"): 200}
    assert dg["prev_totals"] == {("ads", "处"): 30, ("visit", "户"): 40, ("publicity", "份"): 200}
    assert dg["below_threshold"] == ["g1", "g2"]
    assert dg["missing"] == {"wangwu": 4}  # 周八 is on leave from Wednesday
    assert dg["overdue"] == ["P1", "P4"]
    assert dg["open_problems"] == ["P1", "P4", "P2"]  # by deadline
    assert dg["closed_problems"] == ["P3"]
    assert dg["flags"] == {"duplicate": 1, "stale": 1, "implausible": 1}

    md = dg["markdown"]
    assert md.index("一、本周工作开展情况") < md.index("二、存在问题") < md.index("三、下一步工作重点")
    # 13/22 = 59% against last week's 20%: +39 points.
    assert "共上报工作 5 条,有效打卡 15 次,打卡率 59%(较上周+39个百分点)" in md
    assert "· 小广告清理 45处(较上周+15)" in md
    assert "· 入户走访 32户(较上周-8)" in md
    assert "· 宣传发动 200份(与上周持平)" in md
    assert "· 幸福社区:1个网格 3人,打卡率 60%,上报 3 条" in md
    assert "· 和平社区:1个网格 2人,打卡率 57%,上报 2 条" in md  # 4 of 7 expected days
    assert "· 第1名 1号网格 60% · 上报 3 条" in md
    assert "小广告清理:李四(1号网格)完成 42处,居首位" in md
    assert "全勤打卡 1 人" in md and "整改销号问题 1 项" in md
    assert "· 打卡率低于80%的网格:2号网格(57%)、1号网格(60%)" in md
    assert "王五(1号网格)连续4天(11月24日—11月27日)" in md
    assert "周八" not in md
    # Deadline Wed 10:00, the week ends Sunday midnight: four whole days late.
    assert "#P1 1号网格 幸福路3号楼下堆放建筑垃圾(逾期4天)" in md
    assert "#P4 2号网格 和平路流动摊贩占道经营(逾期3天)" in md
    assert "· 待核实记录:疑似重复照片 1张、旧照片 1张、数量超出常规 1条" in md
    assert "#P2 1号网格 幸福路5号共享单车乱停放,期限12月1日 09:00" in md
    assert "1号网格 入户走访 32/50户(完成64%)" in md
    assert "小广告清理 42/40" not in md  # target met


async def test_leaders_and_grid_groups_see_the_same_rates_and_ranks(cfg, store):
    from bot.attendance import grid_week_stats
    from schedules.tally import tally_text

    dg = build_digest(cfg, store, WEEK, None)
    stats = grid_week_stats(store, WEEK, cfg)
    assert dg["grid_rates"] == {g: stats.grids[g].rate for g in ("g1", "g2")}
    assert dg["ranks"] == {g: stats.grids[g].rank for g in ("g1", "g2")}
    # 周八's leave (Wed–Fri) is left out of 2号网格's rate on both sides: 4 of 7 days → 57%.
    tally = tally_text(cfg, stats, stats.grids["g2"], [], MONDAY_AFTER)
    assert "打卡率 57%(全街道第2/2)" in tally and "周八 0%(0/2天,请假3天)" in tally
    assert "· 第2名 2号网格 57% · 上报 2 条" in dg["markdown"]


async def test_community_leader_sees_only_their_scope(cfg, store):
    leader = cfg.person("zhoushuji")
    ids = scope_grid_ids(cfg, leader.scope)
    assert ids == ["g1"]
    dg = build_digest(cfg, store, WEEK, ids, scope=leader.scope)
    assert dg["title"] == "幸福社区第48周工作简报"
    assert dg["grids"] == ["g1"]
    assert dg["people"] == 3
    assert dg["rate"] == pytest.approx(0.6)
    assert dg["prev_rate"] == pytest.approx(5 / 15)
    assert dg["reports"] == 3
    assert dg["totals"] == {("ads", "处"): 42, ("visit", "户"): 32}
    assert dg["overdue"] == ["P1"] and dg["open_problems"] == ["P1", "P2"]
    md = dg["markdown"]
    assert "2号网格" not in md and "和平" not in md and "孙七" not in md and "P4" not in md
    assert "宣传发动" not in md
    assert "· 小广告清理 42处(较上周+12)" in md
    assert "打卡率 60%(较上周+27个百分点)" in md
    assert "全街道排名,共2个网格" in md  # ranked against the whole street


async def test_a_leader_scoped_to_a_grid_is_named_by_it(cfg, store):
    dg = build_digest(cfg, store, WEEK, ["g2"])
    assert dg["title"] == "2号网格第48周工作简报"
    assert dg["grids"] == ["g2"] and dg["missing"] == {}
    assert "1号网格" not in dg["markdown"]


def test_missing_run_is_consecutive_and_steps_over_leave():
    days = [d(i) for i in range(5)]
    assert longest_missing_run(days, {d(0)}, set(), d(4)) == days[1:]
    assert longest_missing_run(days, {d(2)}, set(), d(4)) == days[:2]
    # Leave is neither a miss nor a break, as in the grid leader's escalation.
    assert longest_missing_run(days, set(), {d(2)}, d(4)) == [d(0), d(1), d(3), d(4)]
    assert longest_missing_run(days, set(), set(), d(2)) == days[:3]  # not beyond "now"


async def test_empty_week_reads_naturally(cfg, store):
    dg = build_digest(cfg, store, "2026-W50", None)
    assert dg["reports"] == 0 and dg["rate"] == 0
    assert "本周没有上报的工作量。" in dg["markdown"]
    png = render_chart(cfg, dg["data"], dg["data"].grid_list(), dg["title"])
    assert Image.open(io.BytesIO(png)).format == "PNG"


async def test_long_digests_are_split_within_wecoms_limit(cfg, store):
    many = [problem(f"P{100 + i}", "g1", ts(d(0), 9), ts(d(1), 9), "幸福路某小区楼下长期堆放大量装修垃圾无人清理" * 2)
            for i in range(40)]
    await store.put_many([("problems", p, "main") for p in many])
    dg = build_digest(cfg, store, WEEK, None)
    assert len(dg["parts"]) > 1
    assert all(len(p.encode()) <= 2048 for p in dg["parts"])
    assert "……等42项" in dg["markdown"]  # 40 + P1 + P4 overdue; the list stops at ten
    joined = "\n".join(dg["parts"])
    for line in dg["markdown"].splitlines():
        assert line in joined


def test_pack_keeps_sections_whole_when_they_fit():
    assert pack(["a" * 10, "b" * 10], limit=30) == ["a" * 10 + "\n\n" + "b" * 10]
    assert pack(["a" * 20, "b" * 20], limit=30) == ["a" * 20, "b" * 20]


# --- the chart --------------------------------------------------------------------------------

async def test_chart_is_a_png_with_chinese_in_a_cjk_font(cfg, store):
    assert configure_fonts() == "WenQuanYi Micro Hei"
    data = collect_week(cfg, store, WEEK)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        png = render_chart(cfg, data, data.grid_list(), "测试街道第48周工作简报")
    assert glyph_warnings(caught) == []
    img = Image.open(io.BytesIO(png))
    assert img.format == "PNG" and img.width >= 800 and img.height >= 300
    # Not a blank canvas: bars in both colours (on target, below target) were drawn.
    colours = {c for _, c in img.convert("RGB").getcolors(1 << 20)}
    assert (0x4A, 0x90, 0xD9) in colours or (0xD9, 0x53, 0x4F) in colours
    assert (0xD9, 0x53, 0x4F) in colours


def test_the_glyph_check_would_catch_a_font_without_chinese():
    # The same capture does see the warning when a font lacks the glyphs, so the test above means something.
    fig = Figure(figsize=(2, 1))
    FigureCanvasAgg(fig)
    fig.text(0.1, 0.5, "打卡率", fontfamily="DejaVu Sans")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig.savefig(io.BytesIO(), format="png")
    assert glyph_warnings(caught)


# --- through the emulator -------------------------------------------------------------------------

async def test_leaders_receive_digest_chart_and_ledger(harness):
    await harness.store.put_many(week_entries())
    result = await run_job(harness.bot, "周一领导周报", "weekly_digest", at=MONDAY_AFTER)
    await harness.settle()
    assert result == "第48周工作简报已发送给 2 位领导"

    sent = harness.emulator.sent("app_message")
    for_zhou = [e for e in sent if e["to"] == ["zhoushuji"]]
    assert [e["msgtype"] for e in for_zhou][-2:] == ["image", "file"]
    assert {e["msgtype"] for e in for_zhou} == {"markdown", "image", "file"}
    md = "\n".join(e["content"] for e in for_zhou if e["msgtype"] == "markdown")
    assert md.startswith("# 幸福社区第48周工作简报")
    assert "2号网格" not in md and "#P4" not in md
    assert "#P1" in md
    image = next(e for e in for_zhou if e["msgtype"] == "image")
    png = await (await harness.client.get(image["media_url"])).read()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    file = next(e for e in for_zhou if e["msgtype"] == "file")
    assert file["filename"] == "幸福社区2026年第48周工作台账.xlsx"
    xlsx = await (await harness.client.get(file["media_url"])).read()
    wb = openpyxl.load_workbook(io.BytesIO(xlsx))
    grids = {row[2] for row in wb["汇总"].iter_rows(min_row=2, values_only=True) if row[2]}
    assert grids == {"1号网格"}
    assert {row[4] for row in wb["明细"].iter_rows(min_row=2, values_only=True)} == {"1号网格"}

    for_qian = [e for e in sent if e["to"] == ["qian"]]
    assert {e["msgtype"] for e in for_qian} == {"markdown", "image", "file"}
    md = "\n".join(e["content"] for e in for_qian if e["msgtype"] == "markdown")
    assert md.startswith("# 测试街道第48周工作简报") and "2号网格" in md and "#P4" in md
    # Only leaders get it.
    assert {u for e in sent for u in e["to"]} == {"zhoushuji", "qian"}


async def test_digest_covers_the_previous_iso_week(harness):
    await harness.store.put_many(week_entries())
    # Run late on Monday 7 December: the week before is W49, which is empty here.
    await run_job(harness.bot, "周一领导周报", "weekly_digest", at=datetime(2026, 12, 7, 8, 30, tzinfo=TZ))
    await harness.settle()
    md = [e["content"] for e in harness.emulator.sent("app_message") if e["to"] == ["qian"]
          and e["msgtype"] == "markdown"]
    assert md[0].startswith("# 测试街道第49周工作简报")
    assert "> 11月30日—12月6日" in md[0]
    # Problems still open are still listed, now more overdue.
    assert "#P1 1号网格 幸福路3号楼下堆放建筑垃圾(逾期11天)" in "\n".join(md)


def test_week_dates_are_workdays_of_the_official_calendar(cfg):
    # National Day 2026: the week of Oct 1 has no workdays Thu–Wed, so rates are not divided by 5.
    from bot.attendance import week_workdays
    assert week_workdays(cfg, "2026-W40") == [date(2026, 9, 28), date(2026, 9, 29), date(2026, 9, 30)]


async def test_a_failed_chart_still_sends_the_digest_and_ledger(harness, monkeypatch):
    import schedules.chart as chart

    def broken(*a, **kw):
        raise RuntimeError("renderer exploded")
    monkeypatch.setattr(chart, "render_chart", broken)
    await harness.store.put_many(week_entries())
    result = await run_job(harness.bot, "周一领导周报", "weekly_digest", at=MONDAY_AFTER)
    await harness.settle()
    assert result.endswith("部分附件生成失败,详见日志")
    kinds = [e["msgtype"] for e in harness.emulator.sent("app_message") if e["to"] == ["zhoushuji"]]
    assert "markdown" in kinds and "file" in kinds and "image" not in kinds


def test_leave_days_accept_unix_or_iso_times():
    from bot.leave_records import day_of
    assert day_of(ts(d(2), 8), TZ) == d(2)
    assert day_of("2026-11-25T08:00:00+08:00", TZ) == d(2)
    assert day_of(None, TZ) == date.min and day_of("garbage", TZ) == date.min


def test_chinese_renders_even_when_the_font_cache_predates_the_font():
    """A matplotlib font cache written before fonts-wqy-microhei was installed knows no CJK
    font; the chart registers the font file itself, so labels still render (no boxes)."""
    import subprocess
    import sys
    script = r'''
import io, warnings
from matplotlib import font_manager
# The stale cache: every CJK face forgotten, as in a cache built before the font arrived.
fm = font_manager.fontManager
fm.ttflist = [f for f in fm.ttflist if "WenQuanYi" not in f.name and "CJK" not in f.name]
fm._findfont_cached.cache_clear() if hasattr(fm, "_findfont_cached") else None
from schedules.chart import configure_fonts
from matplotlib.figure import Figure
from matplotlib.backends.backend_agg import FigureCanvasAgg
name = configure_fonts()
fig = Figure(figsize=(2, 1)); FigureCanvasAgg(fig)
fig.text(0.1, 0.5, "打卡率")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    fig.savefig(io.BytesIO(), format="png")
bad = [str(w.message) for w in caught if "missing from font" in str(w.message) or "Glyph" in str(w.message)]
print(name, len(bad))
'''
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["WenQuanYi", "Micro", "Hei", "0"]


def test_chart_never_mixes_units_and_one_outlier_does_not_flatten_the_others():
    from bot.config_loading import parse_config
    from schedules.chart import workload
    from schedules.weekdata import GridWeek
    from tests.support.factories import BASE_CONFIG
    cfg = parse_config(BASE_CONFIG)
    grids = [GridWeek(f"g{i}", f"{i}号网格", "c", totals={("hazard", "家"): 10 + i, ("hazard", "处"): 3,
                                                         ("ads", "处"): 20 + 2 * i})
             for i in range(1, 40)]
    grids.append(GridWeek("g40", "40号网格", "c", totals={("ads", "处"): 5000, ("visit", "户"): 8}))
    w = workload(cfg, grids)
    assert w.columns == [("ads", "处"), ("hazard", "家"), ("hazard", "处"), ("visit", "户")]  # one unit each
    ads = [row[0] for row in w.shades]
    # The outlier saturates its own cell; the ordinary grids still spread over the scale.
    assert ads[-1] == 1.0 and min(ads[:-1]) < 0.3 and max(ads[:-1]) > 0.8
    assert sorted(ads[:-1]) == ads[:-1]  # more work, darker
    assert [row[3] for row in w.shades][:-1] == [0.0] * 39  # no work, no colour


def test_chart_stays_readable_for_forty_grids_and_twelve_categories(cfg):
    import io as _io
    from schedules.weekdata import GridWeek, WeekData
    from bot.attendance import GridWeek as Attendance
    cats = [c.id for c in cfg.category_list][:12]
    grids = [GridWeek(f"g{i}", f"幸福社区第{i}网格", "c",
                      attendance=Attendance(f"g{i}", f"幸福社区第{i}网格", "c", 300, [], 4 + i % 2, 5, 3, 3, {}),
                      totals={(c, "处"): (i * 7 + k * 13) % 50 + 1 for k, c in enumerate(cats)})
             for i in range(1, 41)]
    data = WeekData(week="2026-W48", monday=d(0), sunday=d(6), workdays=[], rated_days=[], as_of=MONDAY_AFTER,
                    grids={g.id: g for g in grids}, problems=[], start_ts=0, end_ts=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        png = render_chart(cfg, data, grids, "测试街道第48周工作简报")
    assert glyph_warnings(caught) == []
    img = Image.open(_io.BytesIO(png))
    # About a third of an inch per grid row, a column per category: no label squeezed to nothing.
    assert 40 * 30 <= img.height <= 40 * 40 + 300 and img.width >= 12 * 90


async def test_what_leaders_read_after_a_week_through_the_callback(harness):
    """Wed 25 Nov: 钱 (a leader in no grid) reports his own inspection; 李四 over-counts and his
    grid leader verifies it; the Monday digest and ledger then show:
    - 隐患排查 once, with both units: 12家 (钱) and 3处 (钱);
    - 钱's report on its own line (领导及机关), no phantom "其他 / 0人" community;
    - no 待核实 entry for the verified report; the community lines plus 领导及机关 add up to the total."""
    await harness.text("qian", "排查消防隐患12家,发现隐患3处")
    assert harness.last_reply("qian").startswith("已记录 #R1(11月25日)\n· 隐患排查 12家、3处\n")
    await harness.text("lisi", "清理小广告1500处")
    assert "已请网格长核实" in harness.last_reply("lisi")
    await harness.text("zhangsan", "核实 #R2")
    await harness.text("sunqi", "入户走访8户")
    harness.clear()
    await run_job(harness.bot, "周一领导周报", "weekly_digest", at=MONDAY_AFTER)
    await harness.settle()
    sent = [e for e in harness.emulator.sent("app_message") if e["to"] == ["qian"]]
    md = "\n".join(e["content"] for e in sent if e["msgtype"] == "markdown")
    assert "分类工作量(上周无数据,不作比较):" in md and md.count("上周无") == 1  # said once
    assert "· 隐患排查 12家、3处" in md and md.count("隐患排查") == 1
    assert "· 小广告清理 1500处" in md
    assert "共上报工作 3 条" in md
    assert "· 幸福社区:1个网格 3人,打卡率 0%,上报 1 条" in md
    assert "· 和平社区:1个网格 2人,打卡率 0%,上报 1 条" in md
    assert "· 领导及机关:上报 1 条" in md
    assert "其他" not in md and "未分网格" not in md and "0人" not in md
    assert "待核实记录" not in md

    file = next(e for e in sent if e["msgtype"] == "file")
    wb = openpyxl.load_workbook(io.BytesIO(await (await harness.client.get(file["media_url"])).read()))
    rows = list(wb["汇总"].iter_rows(min_row=1, values_only=True))
    head, body = rows[0], rows[1:]
    col = {name: i for i, name in enumerate(head)}
    other = [r for r in body if r[col["网格"]] == "领导及机关"]
    assert len(other) == 1 and other[0][col["人数"]] is None and other[0][col["上报(条)"]] == 1
    total = next(r for r in body if r[col["层级"]] == "合计")
    parts = [r for r in body if r[col["层级"]] in ("社区小计", "其他")]
    assert sum(r[col["上报(条)"]] for r in parts) == total[col["上报(条)"]] == 3
    assert total[col["隐患排查(家)"]] == 12 and total[col["隐患排查(处)"]] == 3
    details = list(wb["明细"].iter_rows(min_row=1, values_only=True))
    dcol = {name: i for i, name in enumerate(details[0])}
    r1 = next(r for r in details[1:] if r[0] == "R1")
    assert r1[dcol["识别结果"]] == "隐患排查 12家、3处" and r1[dcol["网格"]] == "领导及机关"


async def test_the_ledger_shows_the_original_text_beside_the_corrected_one(harness):
    await harness.text("lisi", "清理小广告15处,入户走访12户")
    await harness.text("lisi", "更正 #R1 清理小广告12处")
    await run_job(harness.bot, "周一领导周报", "weekly_digest", at=MONDAY_AFTER)
    await harness.settle()
    file = next(e for e in harness.emulator.sent("app_message") if e["to"] == ["qian"] and e["msgtype"] == "file")
    wb = openpyxl.load_workbook(io.BytesIO(await (await harness.client.get(file["media_url"])).read()))
    details = list(wb["明细"].iter_rows(min_row=1, values_only=True))
    col = {name: i for i, name in enumerate(details[0])}
    r1 = details[1]
    assert r1[col["原文"]] == "清理小广告15处,入户走访12户" and r1[col["更正为"]] == "清理小广告12处"
    assert r1[col["识别结果"]] == "小广告清理 12处;入户走访 12户"
    assert "李四更正,原为:清理小广告15处,入户走访12户" in r1[col["更正记录"]]


async def test_messages_are_answered_while_the_digest_reads_the_week(harness, monkeypatch):
    # Reading a big street's week takes seconds: it must not hold up the callbacks meanwhile.
    import asyncio
    import threading
    import time

    import schedules.digest as digest

    await harness.store.put_many(week_entries())
    reading = threading.Event()
    real = digest.collect_week

    def slow_read(*a, **kw):
        reading.set()
        time.sleep(3)
        return real(*a, **kw)
    monkeypatch.setattr(digest, "collect_week", slow_read)
    t = time.monotonic()
    job = asyncio.create_task(run_job(harness.bot, "周一领导周报", "weekly_digest", at=MONDAY_AFTER))
    while not reading.is_set():
        await asyncio.sleep(0.01)
    assert await harness.text("lisi", "清理小广告3处") == 200
    while not harness.replies("lisi") and time.monotonic() - t < 10:
        await asyncio.sleep(0.01)
    assert harness.replies("lisi") and time.monotonic() - t < 2.0
    assert not job.done()
    assert await job == "第48周工作简报已发送给 2 位领导"
    await harness.settle()
    # The report that came in while the week was being read is in the store, not in this digest.
    md = "\n".join(e["content"] for e in harness.emulator.sent("app_message") if e["to"] == ["qian"])
    assert "共上报工作 5 条" in md
