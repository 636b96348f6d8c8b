"""The xlsx writer under every ledger: what a person opening the file sees (text exactly as
typed, dates as dates, percentages, bold totals, the blue header, frozen panes, widths, photo
links) and that a district-sized sheet is written in seconds, not minutes."""

from __future__ import annotations

import io
import zipfile
from datetime import date, datetime

import openpyxl

from schedules.xlsx import PCT_FMT, Link, Sheet, Styled, new_workbook, text_width, workbook_bytes


def build(rows: list[list], headers: list[str] | None = None, **kw) -> openpyxl.Workbook:
    wb = new_workbook()
    sheet = Sheet(wb, "明细", headers or ["编号", "日期", "上报时间", "原文", "打卡率", "数量", "照片"], **kw)
    for r in rows:
        sheet.add(r)
    other = Sheet(wb, "人员", ["姓名"])
    other.add(["李四"])
    return openpyxl.load_workbook(io.BytesIO(workbook_bytes(wb, [sheet, other])))


def test_cells_read_back_as_written():
    tricky = ["清理小广告15处 & <楼道> \"杂物\"", "  前后有空格  ", "第一行\n第二行", "=SUM(A1:A9)", "-3", "@张三"]
    rows = [[f"R{i}", date(2026, 11, 23), datetime(2026, 11, 23, 17, 5), text, 0.6, 12.5, None]
            for i, text in enumerate(tricky, 1)]
    rows.append(["R9", None, None, "", None, 3, Link("1号网格/2026-11-23/a.jpg", "归档/1号网格/2026-11-23/a.jpg")])
    rows.append([Styled("合计"), None, None, None, Styled(0.5912), Styled(40), None])
    wb = build(rows, formats={4: PCT_FMT}, freeze="C2")
    ws = wb["明细"]
    assert wb.sheetnames == ["明细", "人员"] and wb["人员"]["A2"].value == "李四"
    assert [ws.cell(row=i, column=4).value for i in range(2, 8)] == tricky
    for i in range(2, 8):
        assert ws.cell(row=i, column=4).data_type == "s"  # never a formula, whatever was typed
    assert ws["B2"].value == datetime(2026, 11, 23) and ws["B2"].number_format == "yyyy-mm-dd"
    assert ws["C2"].value == datetime(2026, 11, 23, 17, 5) and ws["C2"].number_format == "yyyy-mm-dd hh:mm"
    assert ws["E2"].value == 0.6 and ws["E2"].number_format == "0.0%"
    assert ws["F2"].value == 12.5 and ws["F8"].value == 3 and isinstance(ws["F8"].value, int)
    assert ws["D8"].value is None  # an empty text leaves the cell empty
    link = ws["G8"]
    assert link.value == "1号网格/2026-11-23/a.jpg" and link.hyperlink.target == "归档/1号网格/2026-11-23/a.jpg"
    assert link.font.u == "single" and link.font.color.rgb.endswith("0563C1")
    total = ws[9]
    assert total[0].value == "合计" and total[0].font.b and total[0].data_type == "s"
    assert total[4].value == 0.5912 and total[4].font.b and total[4].number_format == "0.0%"
    assert total[5].value == 40 and total[5].font.b
    assert not ws["A2"].font.b


def test_header_frozen_panes_and_widths():
    wb = build([["R1", date(2026, 11, 23), None, "入户走访十二户,清理楼道杂物三处,张贴宣传海报" * 2, None, 1, None]],
               freeze="D2")
    ws = wb["明细"]
    head = ws["A1"]
    assert head.value == "编号" and head.font.b and head.font.color.rgb.endswith("FFFFFF")
    assert head.fill.fill_type == "solid" and head.fill.fgColor.rgb.endswith("4A7EBB")
    assert head.alignment.horizontal == "center"
    assert ws.freeze_panes == "D2" and wb["人员"].freeze_panes == "A2"
    widths = ws.column_dimensions
    assert widths["D"].width == 50 and widths["A"].width == 6  # long text capped, short columns not squeezed


def test_control_characters_and_unrepresentable_numbers_do_not_break_the_file():
    wb = build([["R1\x07", None, None, "入户走访\x1b5户\x00", float("nan"), float("inf"), None]])
    ws = wb["明细"]
    assert ws["A2"].value == "R1" and ws["D2"].value == "入户走访5户"
    assert ws["E2"].value is None and ws["F2"].value is None


def test_a_sheet_of_forty_thousand_rows_is_written_whole():
    # Rows go out in chunks; every chunk must land, in order (the speed: bench/bench_xlsx.py).
    rows = [[f"R{i}", date(2026, 11, 23 + i % 5), datetime(2026, 11, 23, 8, i % 60), f"{i % 240 + 1}号网格",
             f"网格员{i % 2400}", f"清理小广告{i % 40}处,入户走访{i % 9}户", "小广告清理 3处;入户走访 2户", "有效",
             i % 40, i % 9, None, 0.25 * (i % 4)] for i in range(40_000)]
    headers = ["编号", "工作日期", "上报时间", "网格", "上报人", "原文", "识别结果", "状态", "小广告", "入户", "空", "比例"]
    wb = new_workbook()
    sheet = Sheet(wb, "明细", headers, formats={11: PCT_FMT})
    for r in rows:
        sheet.add(r)
    data = workbook_bytes(wb, [sheet])
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert z.testzip() is None
        sheet_xml = z.read("xl/worksheets/sheet1.xml")
    assert sheet_xml.count(b"<row ") == 40_001 and b'<row r="40001">' in sheet_xml
    # Reading half a million cells back takes openpyxl longer than writing them: the first rows
    # stand for the rest (the tests above check every kind of cell).
    ws = openpyxl.load_workbook(io.BytesIO(data), read_only=True)["明细"]
    first = next(ws.iter_rows(min_row=2, max_row=2, values_only=True))
    assert first[0] == "R0" and first[5] == "清理小广告0处,入户走访0户" and first[1] == datetime(2026, 11, 23)


def test_a_column_is_as_wide_as_its_text_reads_chinese_counting_two():
    # What the column widths are measured by: a Chinese character takes two columns' room.
    assert text_width("清理小广告15处") == 14  # six characters two wide, two digits one wide
    assert text_width("abc") == 3
    assert text_width("1号网格—幸福路·3栋") == 1 + 2 * 3 + 1 + 2 * 3 + 1 + 1 + 2  # "—" and "·" one wide
    assert text_width("\u2e80\u2e81") == 3  # the first radical is still one wide, the next two
    assert text_width("第一行\n第二行很长很长") == 6  # the first line only
    assert text_width("长" * 100) == 160  # the first 80 characters


def test_rows_written_once_read_back_the_same_in_two_workbooks_at_their_own_rows():
    """A grid's rows are written as XML once and put into its community's ledger and the street's
    (schedules.xlsx_rows): in each, every cell reads back as written, on that sheet's own rows,
    and each photo link points at its own cell."""
    from schedules.xlsx_rows import write_block
    tricky = ["清理小广告15处 & <楼道> \"杂物\"", "  前后有空格  ", "第一行\n第二行", "=SUM(A1:A9)", "@张三\x07"]
    block = write_block([[f"R{i}", date(2026, 11, 23), datetime(2026, 11, 23, 17, 5), text, 12.5 if i else 3,
                          None, Link(f"1号网格/a{i}.jpg", f"归档/1号网格/a{i}.jpg") if i % 2 else None]
                         for i, text in enumerate(tricky)])
    headers = ["编号", "日期", "上报时间", "原文", "数量", "空", "照片"]
    books = []
    for before in ([], [["R-first"], ["R-second"]]):  # the block starts on row 2, then on row 4
        wb = new_workbook()
        sheet = Sheet(wb, "明细", headers, freeze="C2")
        for r in before:
            sheet.add(r)
        sheet.add_block(block)
        books.append(openpyxl.load_workbook(io.BytesIO(workbook_bytes(wb, [sheet])))["明细"])
    for ws, first in zip(books, (2, 4)):
        rows = list(ws.iter_rows(min_row=first, values_only=True))
        assert [r[0] for r in rows] == [f"R{i}" for i in range(5)]
        assert [r[3] for r in rows] == tricky[:4] + ["@张三"]  # control character dropped, never a formula
        assert all(ws.cell(row=first + i, column=4).data_type == "s" for i in range(5))
        assert rows[0][1] == datetime(2026, 11, 23) and ws.cell(row=first, column=2).number_format == "yyyy-mm-dd"
        assert ws.cell(row=first, column=3).number_format == "yyyy-mm-dd hh:mm"
        assert rows[0][4] == 3 and rows[1][4] == 12.5 and rows[0][5] is None
        links = [(c.row, c.value, c.hyperlink.target) for row in ws.iter_rows(min_row=2) for c in row if c.hyperlink]
        assert links == [(first + 1, "1号网格/a1.jpg", "归档/1号网格/a1.jpg"),
                         (first + 3, "1号网格/a3.jpg", "归档/1号网格/a3.jpg")]
        assert ws.cell(row=first + 1, column=7).font.u == "single"
        assert ws.column_dimensions["D"].width > ws.column_dimensions["A"].width  # widths from the block's rows
