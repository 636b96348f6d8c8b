"""Benchmark: the ledger's xlsx writer against openpyxl's write-only mode, in the same run.

    .venv/bin/python bench/bench_xlsx.py [--rows 40000]

A district's week ledger holds some six million cells. openpyxl, even in write-only mode, spends
about 10 µs on each (a cell object, its style, an lxml element), which made the ledger most of the
leaders' digest; schedules/xlsx.py writes the same SpreadsheetML straight into the zip. Both write
the same rows (a report ledger's mix: text, dates, times, counts, a percentage, bold totals) and
the result is read back with openpyxl to check both hold the same cells.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from datetime import date, datetime
from pathlib import Path

import openpyxl
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from schedules.xlsx import PCT_FMT, Sheet, Styled, new_workbook, workbook_bytes  # noqa: E402

HEADERS = ["编号", "工作日期", "上报时间", "网格", "上报人", "原文", "识别结果", "状态", "小广告", "入户", "比例"]


def rows(n: int) -> list[list]:
    out = []
    for i in range(n):
        row = [f"R{i}", date(2026, 11, 23 + i % 5), datetime(2026, 11, 23, 8, i % 60), f"{i % 240 + 1}号网格",
               f"网格员{i % 2400}", f"清理小广告{i % 40}处,入户走访{i % 9}户", "小广告清理 3处;入户走访 2户", "有效",
               i % 40, i % 9, 0.25 * (i % 4)]
        if i % 50 == 0:
            row[0] = Styled(f"小计{i}")
        out.append(row)
    return out


def ours(data: list[list]) -> bytes:
    wb = new_workbook()
    sheet = Sheet(wb, "明细", HEADERS, formats={10: PCT_FMT})
    for r in data:
        sheet.add(r)
    return workbook_bytes(wb, [sheet])


def with_openpyxl(data: list[list]) -> bytes:
    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet("明细")
    bold = Font(bold=True)
    ws.append(HEADERS)
    for r in data:
        cells = []
        for i, v in enumerate(r):
            if isinstance(v, Styled):
                c = WriteOnlyCell(ws, value=v.value)
                c.font = bold
                v = c
            elif i == 10:
                c = WriteOnlyCell(ws, value=v)
                c.number_format = PCT_FMT
                v = c
            elif isinstance(v, (date, datetime)):
                c = WriteOnlyCell(ws, value=v)
                c.number_format = "yyyy-mm-dd hh:mm" if isinstance(v, datetime) else "yyyy-mm-dd"
                v = c
            cells.append(v)
        ws.append(cells)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def cells(data: bytes) -> list[tuple]:
    ws = openpyxl.load_workbook(io.BytesIO(data), read_only=True)["明细"]
    return list(ws.iter_rows(values_only=True))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=40_000)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    data = rows(a.rows)
    n_cells = a.rows * len(HEADERS)
    best = {}
    for name, fn in (("openpyxl write-only", with_openpyxl), ("schedules/xlsx.py", ours)):
        times = []
        for _ in range(a.repeat):
            t = time.process_time()
            out = fn(data)
            times.append(time.process_time() - t)
        best[name] = (min(times), out)
        print(f"{name:20s} {min(times):6.2f} s CPU (best of {a.repeat}), {min(times) / n_cells * 1e6:5.2f} µs a cell, "
              f"{len(out) / 1e6:.1f} MB", flush=True)
    same = cells(best["openpyxl write-only"][1]) == cells(best["schedules/xlsx.py"][1])
    ratio = best["openpyxl write-only"][0] / best["schedules/xlsx.py"][0]
    print(f"{a.rows:,} rows, {n_cells:,} cells: {ratio:.1f}× faster; the same cells read back: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
