"""Writing xlsx files with openpyxl: styled header rows, measured column widths, plain-text cells.

Workbooks are written in openpyxl's write-only mode (about twice as fast for ten thousand rows),
so column widths and frozen panes are decided before the rows go out: a Sheet buffers its rows.

Every string cell is plain text: a report that starts with "=" (or +, -, @) would otherwise
become a formula in Excel, so such cells are typed as strings explicitly.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.hyperlink import Hyperlink

FORMULA_START = ("=", "+", "-", "@")
MAX_CELL = 32000  # Excel holds 32,767 characters per cell
HEADER_FONT = Font(bold=True, color="FFFFFF")
HEADER_FILL = PatternFill("solid", fgColor="4A7EBB")
TOTAL_FONT = Font(bold=True)
LINK_FONT = Font(color="0563C1", underline="single")
DATE_FMT, TIME_FMT, PCT_FMT = "yyyy-mm-dd", "yyyy-mm-dd hh:mm", "0.0%"


@dataclass
class Link:
    text: str
    target: str


@dataclass
class Styled:
    value: Any
    bold: bool = True


def new_workbook() -> Workbook:
    return Workbook(write_only=True)


def workbook_bytes(wb: Workbook, sheets: list[Sheet]) -> bytes:
    """Write the sheets (their tabs in this order) and return the file's bytes."""
    for s in sheets:
        s.write()
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def wall_time(tz: tzinfo, ts: float | None) -> datetime | None:
    # Excel has no time zones: write the bot's local wall time.
    return datetime.fromtimestamp(ts, tz).replace(tzinfo=None) if ts else None


def safe_text(value: str) -> str:
    """Strip the control characters xlsx cannot hold and cap the length."""
    return ILLEGAL_CHARACTERS_RE.sub("", value)[:MAX_CELL]


def text_width(value: Any) -> int:
    s = value.text if isinstance(value, Link) else value.value if isinstance(value, Styled) else value
    if s is None:
        return 0
    if isinstance(s, datetime):
        return 16
    if isinstance(s, date):
        return 10
    if isinstance(s, float):
        return 8
    s = str(s).split("\n")[0][:80]
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in s)


class Sheet:
    """Rows are buffered so the column widths can be measured before the write-only sheet starts."""

    def __init__(self, wb: Workbook, title: str, headers: list[str], *, formats: dict[int, str] | None = None,
                 freeze: str = "A2", max_width: int = 50):
        self.wb, self.title, self.headers = wb, title, headers
        self.formats = formats or {}  # 0-based column → number format
        self.freeze, self.max_width = freeze, max_width
        self.rows: list[list[Any]] = []

    def add(self, row: list[Any]) -> None:
        self.rows.append(row)

    def write(self) -> None:
        ws = self.wb.create_sheet(self.title)
        widths = [text_width(h) for h in self.headers]
        for row in self.rows[::max(1, len(self.rows) // 500)]:  # a spread sample is plenty for widths
            for i, v in enumerate(row):
                w = text_width(v)
                if w > widths[i]:
                    widths[i] = w
        for i, w in enumerate(widths, 1):
            ws.column_dimensions[get_column_letter(i)].width = max(6, min(self.max_width, w + 2))
        ws.freeze_panes = self.freeze
        header = []
        for h in self.headers:
            c = WriteOnlyCell(ws, value=h)
            c.font, c.fill = HEADER_FONT, HEADER_FILL
            c.alignment = Alignment(horizontal="center", vertical="center")
            header.append(c)
        ws.append(header)
        for row in self.rows:
            ws.append([self._cell(ws, i, v) for i, v in enumerate(row)])

    def _cell(self, ws, i: int, v: Any):
        bold = False
        if isinstance(v, Styled):
            bold, v = v.bold, v.value
        if isinstance(v, Link):
            c = WriteOnlyCell(ws, value=safe_text(v.text))
            c.data_type = "s"
            # The write-only sheet assigns the real coordinate when the row is written.
            c.row, c.column = 1, 1
            c.hyperlink = Hyperlink(ref="A1", target=v.target)
            c.font = LINK_FONT
            return c
        if isinstance(v, str):
            if not v:
                return None  # an empty cell costs as much to write as a full one
            v = safe_text(v)
            if v.startswith(FORMULA_START) or bold:
                c = WriteOnlyCell(ws, value=v)
                c.data_type = "s"  # never a formula, whatever the user typed
                if bold:
                    c.font = TOTAL_FONT
                return c
            return v
        fmt = self.formats.get(i)
        if isinstance(v, datetime):
            fmt = fmt or TIME_FMT
        elif isinstance(v, date):
            fmt = fmt or DATE_FMT
        if v is not None and (fmt or bold):
            c = WriteOnlyCell(ws, value=v)
            if fmt:
                c.number_format = fmt
            if bold:
                c.font = TOTAL_FONT
            return c
        return v
