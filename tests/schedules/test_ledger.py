"""The ledger (台账): the xlsx sheets and rows, their layout, and text that must never become a
formula."""

from __future__ import annotations

import io
import zipfile
from datetime import datetime

import openpyxl
import pytest

from schedules.ledger import build_ledger, ledger_from_data
from schedules.weekdata import collect_week

from tests.support.digest_week import cfg, config_path, store  # noqa: F401  (shared fixtures)
from tests.support.digest_week import TZ, WEEK, d, report, rows

SHEETS = ["汇总", "明细", "打卡", "问题台账", "人员"]
NOW = datetime(2026, 11, 30, 8, 30, tzinfo=TZ)  # the Monday after the week


def open_ledger(data: bytes) -> openpyxl.Workbook:
    return openpyxl.load_workbook(io.BytesIO(data))


async def test_ledger_sheets_rows_and_numbers(cfg, store):
    wb = open_ledger(build_ledger(cfg, store, WEEK, now=NOW))
    assert wb.sheetnames == SHEETS

    summary = rows(wb["汇总"])
    assert [(r["层级"], r["社区"], r["网格"]) for r in summary] == [
        ("网格", "幸福社区", "1号网格"), ("社区小计", "幸福社区", None),
        ("网格", "和平社区", "2号网格"), ("社区小计", "和平社区", None), ("合计", "测试街道", None)]
    g1, xingfu, g2, heping, street = summary
    assert g1["人数"] == 3 and g1["工作日"] == 5 and g1["有效打卡(次)"] == 11
    assert g1["打卡率"] == pytest.approx(0.6) and g1["上报(条)"] == 3
    assert g1["小广告清理(处)"] == 42 and g1["入户走访(户)"] == 32 and g1["宣传发动(份)"] == 0
    assert (g1["新增问题"], g1["销号问题"], g1["逾期未整改"], g1["待整改"]) == (3, 1, 1, 2)
    assert xingfu["打卡率"] == pytest.approx(0.6)
    # 孙七 4 check-in days of 5 + 周八 0 of 2 (on leave Wed–Fri) → 4 of 7 expected days.
    assert g2["打卡率"] == pytest.approx(round(4 / 7, 4)) and g2["宣传发动(份)"] == 200 and g2["逾期未整改"] == 1
    assert heping["人数"] == 2
    # 13 check-in days (5 + 3 + 1 + 4 + 0) of 22 expected days (5 + 5 + 5 + 5 + 2: 周八's 3 leave days excluded).
    assert street["人数"] == 5 and street["打卡率"] == pytest.approx(round(13 / 22, 4)) and street["上报(条)"] == 5
    assert street["小广告清理(处)"] == 45
    assert isinstance(g1["人数"], int) and isinstance(street["小广告清理(处)"], (int, float))
    assert wb["汇总"]["G2"].number_format == "0.0%"

    details = {r["编号"]: r for r in rows(wb["明细"])}
    assert list(details) == ["R1", "R2", "R3", "R4", "R5", "R7", "R6"]  # by grid, then date
    r1 = details["R1"]
    assert r1["工作日期"] == datetime(2026, 11, 23) and r1["上报时间"] == datetime(2026, 11, 23, 17, 0)
    assert (r1["网格"], r1["上报人"], r1["原文"]) == ("1号网格", "李四", "清理小广告15处,入户走访12户")
    assert r1["识别结果"] == "小广告清理 15处;入户走访 12户"
    assert r1["小广告清理(处)"] == 15 and r1["入户走访(户)"] == 12 and r1["状态"] == "有效"
    assert details["R2"]["更正记录"].endswith("李四更正,原为:清理小广告72处")
    # Numbers only where they count, so a column's sum is the week's total.
    assert details["R4"]["状态"] == "待核实" and details["R4"]["标记"] == "数量超出常规"
    assert details["R4"]["小广告清理(处)"] is None
    assert details["R5"]["状态"] == "已撤回" and details["R5"]["入户走访(户)"] is None
    assert sum(r["小广告清理(处)"] or 0 for r in details.values()) == 45

    checks = rows(wb["打卡"])
    assert len(checks) == 17  # every check-in of the week, counted or not
    dup = next(r for r in checks if r["标记"] == "疑似重复照片")
    assert dup["人员"] == "王五" and dup["计入"] == "否" and dup["说明"] == "与李四的打卡照片相同"
    first = checks[0]
    assert first["时间"] == datetime(2026, 11, 23, 8, 0) and first["网格"] == "1号网格"
    lisi = next(r for r in checks if r["人员"] == "李四")
    assert lisi["位置"] == "幸福路3号"
    photo = wb["打卡"]["K2"]
    assert photo.hyperlink.target == f"测试街道2026年第48周照片归档/1号网格/2026-11-23/{photo.value.rsplit('/', 1)[1]}"

    problems = {r["编号"]: r for r in rows(wb["问题台账"])}
    assert list(problems) == ["P1", "P3", "P2", "P4"]  # by opening time; P5 was last week's
    assert problems["P1"]["状态"] == "逾期未整改" and problems["P1"]["整改期限"] == datetime(2026, 11, 25, 10, 0)
    assert problems["P1"]["整改前照片"].endswith("2026-11-23_problem_lisi_aaaaaaaaaaaa.jpg")
    assert problems["P2"]["状态"] == "整改中"
    p3 = problems["P3"]
    assert (p3["状态"], p3["销号人"], p3["销号时间"], p3["整改说明"]) == ("已销号", "张三", datetime(2026, 11, 26, 16, 0),
                                                                        "已清理完毕")
    assert p3["整改后照片"] == "1号网格/2026-11-26/2026-11-26_rectify_zhangsan_bbbbbbbbbbbb.jpg"

    people = {r["姓名"]: r for r in rows(wb["人员"])}
    assert people["王五"]["打卡天数"] == 1 and people["王五"]["最长连续未打卡(天)"] == 4
    assert people["周八"]["请假(天)"] == 3 and people["李四"]["打卡率"] == pytest.approx(0.6)


async def test_ledger_layout_frozen_headers_and_widths(cfg, store):
    wb = open_ledger(build_ledger(cfg, store, WEEK, now=NOW))
    for name in SHEETS:
        ws = wb[name]
        assert ws.freeze_panes in ("C2", "D2"), name
        assert ws["A1"].font.b, name
    details = wb["明细"]
    header = [c.value for c in details[1]]
    text_col = openpyxl.utils.get_column_letter(header.index("原文") + 1)
    id_col = openpyxl.utils.get_column_letter(header.index("编号") + 1)
    assert details.column_dimensions[text_col].width > details.column_dimensions[id_col].width >= 6


@pytest.mark.parametrize("text", ["=SUM(A1:A9)", "=HYPERLINK(\"http://x\",\"点我\")", "+1+2", "-3", "@cmd"])
async def test_report_text_never_becomes_a_formula(cfg, store, text):
    await store.put("reports", report("R50", "lisi", d(2), text + " 入户走访5户", [("visit", 5, "户")]), shard=WEEK)
    await store.put("reports", report("R51", "lisi", d(2), text, []), shard=WEEK)
    data = build_ledger(cfg, store, WEEK, now=NOW)
    wb = open_ledger(data)
    cells = {r[0].value: r for r in wb["明细"].iter_rows(min_row=2)}
    header = [c.value for c in wb["明细"][1]]
    col = header.index("原文")
    for rid in ("R50", "R51"):
        cell = cells[rid][col]
        assert cell.data_type == "s"
        assert cell.value.startswith(text)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for name in z.namelist():
            if name.startswith("xl/worksheets/sheet"):
                assert b"<f>" not in z.read(name) and b"<f " not in z.read(name)


async def test_control_characters_in_reports_do_not_break_the_ledger(cfg, store):
    await store.put("reports", report("R52", "lisi", d(2), "入户走访\x07\x1b5户\x00", [("visit", 5, "户")]), shard=WEEK)
    wb = open_ledger(build_ledger(cfg, store, WEEK, now=NOW))
    assert {r["编号"]: r for r in rows(wb["明细"])}["R52"]["原文"] == "入户走访5户"


async def test_ledger_for_a_scope_holds_only_its_grids(cfg, store):
    wb = open_ledger(ledger_from_data(cfg, collect_week(cfg, store, WEEK, NOW), ["g2"]))
    assert {r["网格"] for r in rows(wb["明细"])} == {"2号网格"}
    assert {r["编号"] for r in rows(wb["问题台账"])} == {"P4"}
    assert [r["层级"] for r in rows(wb["汇总"])] == ["网格", "社区小计", "合计"]


async def test_a_running_week_is_rated_on_the_workdays_so_far(cfg, store):
    wb = open_ledger(build_ledger(cfg, store, WEEK, now=datetime(2026, 11, 25, 12, 0, tzinfo=TZ)))
    g1 = rows(wb["汇总"])[0]
    assert g1["工作日"] == 3  # Mon–Wed
    assert g1["打卡率"] == pytest.approx(round((1 + 1 + 1 / 3) / 3, 4))
    assert {r["编号"]: r["状态"] for r in rows(wb["问题台账"])}["P1"] == "逾期未整改"  # due Wed 10:00
    assert {r["编号"]: r["状态"] for r in rows(wb["问题台账"])}["P4"] == "整改中"  # due Thu
