"""The month's ledger (月度台账) and chart, and `gridbot export --month`, against the hand-computed
October of tests/support/month_october.py: every point in 积分明细 leads back to its record."""

from __future__ import annotations

import io
import warnings
from datetime import date, datetime

import openpyxl
from PIL import Image

from bot.cli import main as cli_main
from bot.store import Store
from schedules import month_chart
from schedules.export_cli import export_month_command
from schedules.month_chart import render_month_chart
from schedules.month_data import collect_month
from schedules.month_ledger import month_ledger
from schedules.weekdata import scope_grid_ids

from tests.support.digest_week import rows
from tests.support import month_october
from tests.support.month_october import MONTH, TZ, after, report

# The month's shared fixtures, bound here so pytest finds them in this module.
cfg, config_path, store = month_october.cfg, month_october.config_path, month_october.store


def glyph_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if "missing from font" in str(w.message) or "Glyph" in str(w.message)]


async def test_street_ledger_holds_every_point_with_its_record(cfg, store):
    """A second report by 李四 on 10-08 (R11) shares his 有效上报 row of that day with R1: 103
    entries on 102 rows, summing to 71 + 1 = 72."""
    await store.put("reports", report("R11", "lisi", date(2026, 10, 8), "巡查5次", [("patrol", 5, "次")]),
                    shard="2026-W41")
    data = collect_month(cfg, store, MONTH, as_of=after(1))
    wb = openpyxl.load_workbook(io.BytesIO(month_ledger(cfg, data)))
    assert wb.sheetnames == ["汇总", "目标与覆盖", "个人积分", "积分明细", "红黑榜", "迎检每日"]
    entries = rows(wb["积分明细"])
    assert len(entries) == 102 and sum(r["分值"] for r in entries) == 72 and sum(r["数量"] for r in entries) == 103
    table = {"R": "reports", "C": "checkins", "P": "problems"}
    for r in entries:
        ids = r["记录编号"].split("、")
        assert len(ids) == r["数量"] and all(store.get(table[i[0]], i) is not None for i in ids), r
    lisi = next(r for r in entries if r["姓名"] == "李四" and r["规则"] == "有效上报")
    assert (lisi["日期"].date(), lisi["数量"], lisi["分值"], lisi["记录编号"]) == (date(2026, 10, 8), 2, 2, "R1、R11")
    p3 = [(r["日期"].date(), r["规则"], r["分值"], r["说明"]) for r in entries if r["记录编号"] == "P3"]
    assert p3[:3] == [(date(2026, 10, 20), "发现问题", 2, None), (date(2026, 10, 23), "整改被退回", -1, "管理员重开:现场仍有摊点"),
                      (date(2026, 10, 26), "问题逾期", -1, "逾期第1天")]
    r5 = next(r for r in entries if r["记录编号"] == "R5")
    assert (r5["姓名"], r5["规则"], r5["分值"], r5["说明"]) == ("王五", "数量不实", -2, "数量超出常规,经张三撤回")

    summary = {(r["层级"], r["网格"] or r["社区"]): r for r in rows(wb["汇总"])}
    g1, total = summary[("网格", "1号网格")], summary[("合计", "测试街道")]
    assert (g1["工作日"], g1["应打卡(人天)"], g1["实际打卡(人天)"], g1["打卡率"]) == (19, 52, 46, 0.8846)
    # R11 adds a point: g1 49 over 3 members, the street 72 over 5.
    assert (g1["积分合计"], g1["人均积分"], g1["积分排名"], g1["逾期未整改"]) == (49, 16.33, 1, 1)
    assert (total["上报(条)"], total["小广告清理(处)"], total["人均积分"], total["上月打卡率"]) == (9, 98, 14.4, 0.2)
    people = {r["姓名"]: r for r in rows(wb["个人积分"])}
    assert (people["王五"]["应打卡(天)"], people["王五"]["实际打卡(天)"], people["王五"]["积分合计"]) == (14, 9, 7)
    assert (people["王五"]["数量不实(条)"], people["王五"]["数量不实得分"], people["王五"]["全街道排名"]) == (1, -2, 5)
    targets = [(r["网格"], r["类别"], r["完成"], r["目标"], r["完成率"]) for r in rows(wb["目标与覆盖"])]
    assert ("1号网格", "小广告清理", 95, 120, 0.7917) in targets
    assert ("1号网格", "入户走访", 36, 400, 0.09) in targets  # coverage: 4 named + 32 counted
    campaign = [(r["日期"].date().isoformat(), r["应打卡(人)"], r["实际打卡(人)"], r["1号网格"], r["2号网格"]) for r in rows(wb["迎检每日"])]
    assert campaign == [("2026-10-26", 5, 4, 1, 0.5), ("2026-10-27", 5, 4, 1, 0.5), ("2026-10-28", 5, 4, 1, 0.5),
                        ("2026-10-29", 5, 4, 1, 0.5), ("2026-10-30", 5, 3, 0.6667, 0.5), ("2026-10-31", 5, 4, 1, 0.5)]
    honours = [(r["榜单"], r["名称"], r["积分"]) for r in rows(wb["红黑榜"])]
    assert honours == [("红榜", "1号网格", "人均16.3分"), ("红榜", "张三(1号网格)", "25分"), ("红榜", "李四(1号网格)", "21分"),
                       ("黑榜", "2号网格", "人均11.5分")]


async def test_a_leaders_ledger_holds_only_their_grids(cfg, store):
    """幸福社区 is 1号网格: 46 check-in days, 5 reports, 3 problems found, 1 closed on time, 2 bad
    photos, 1 wrong count, 4 overdue days = 62 entries, summing to the grid's 48."""
    data = collect_month(cfg, store, MONTH, as_of=after(1))
    wb = openpyxl.load_workbook(io.BytesIO(month_ledger(cfg, data, scope_grid_ids(cfg, ["xingfu"]), ["xingfu"])))
    entries = rows(wb["积分明细"])
    assert len(entries) == 62 and sum(r["分值"] for r in entries) == 48
    assert {r["网格"] for r in entries} == {"1号网格"}


async def test_the_chart_draws_the_months_of_the_year_and_the_campaign_days(cfg, store, monkeypatch):
    data = collect_month(cfg, store, MONTH, as_of=after(1))
    months, lines = month_chart.series(cfg, data, data.grid_list())
    # August and before had no records: the chart starts with September.
    assert months == ["2026-09", "2026-10"]
    assert [name for name, _, _ in lines] == ["1号网格", "2号网格", "合计"]
    g1 = lines[0]
    assert [round(r, 4) for r in g1[1]] == [round(22 / 66, 4), round(46 / 52, 4)] and g1[2] == [8, 16]
    assert lines[2][2] == [5.4, 14.2]
    monkeypatch.setattr(month_chart, "MAX_GRID_LINES", 1)  # more grids than lines: by community
    assert [name for name, _, _ in month_chart.series(cfg, data, data.grid_list())[1]] == ["幸福社区", "和平社区", "合计"]
    monkeypatch.undo()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        png = render_month_chart(cfg, data, data.grid_list(), "测试街道2026年10月工作通报")
    assert glyph_warnings(caught) == []
    img = Image.open(io.BytesIO(png))
    assert img.format == "PNG" and img.width == 1200 and img.height > 800  # the campaign panel is there


async def test_gridbot_export_month_writes_the_ledger_and_the_chart(cfg, store, tmp_path, capsys):
    await store.checkpoint()
    ro = Store(cfg.data_path, readonly=True)
    ro.load(recent_weeks=None)
    out = tmp_path / "out"
    assert export_month_command(cfg, ro, "2026-10", out, now=datetime(2026, 11, 20, 10, 0, tzinfo=TZ)) == 0
    printed = capsys.readouterr().out
    assert "已导出 2026年10月(10月1日—10月31日):" in printed
    assert "积分明细 102 条,合计 71 分" in printed
    wb = openpyxl.load_workbook(out / "测试街道2026年10月工作台账.xlsx")
    assert len(rows(wb["积分明细"])) == 102
    assert Image.open(out / "测试街道2026年10月工作图表.png").format == "PNG"
    # The month still running is exported as of now, and says so.
    assert export_month_command(cfg, ro, "2026-10", out, now=datetime(2026, 10, 20, 18, 0, tzinfo=TZ)) == 0
    assert "本月尚未结束,数据截至10月20日 18:00" in capsys.readouterr().out


def test_export_month_refuses_a_bad_month_with_the_form_to_use(config_path, capsys):
    assert cli_main(["export", "--config", str(config_path), "--month", "2026-13"]) == 2
    assert "月份的格式应为 YYYY-MM,例如 2026-11" in capsys.readouterr().err
