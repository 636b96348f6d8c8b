"""Rows written once as SpreadsheetML and put into any number of workbooks.

A grid's reports and check-ins appear in several ledgers of one digest (its community's, the
street's or the district's, in parts). Written cell by cell for each, a district's digest wrote
every row twice. A `Block` is a run of rows already written as XML bytes: its strings inline (not
numbers into one workbook's shared strings), its styles the few every workbook numbers alike
(xlsx.FIXED_STYLES), and its row number left open (ROW), so the same bytes go into the community's
file and the district's part, each putting in its own row numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from math import isfinite
from typing import Any

from schedules.xlsx import XF_DATE, XF_LINK, XF_TIME, Link, column_letter, escape, excel_serial, safe_text, text_width

ROW = b"\x00"  # where a row's number goes: never in a cell's text (safe_text removes it)
WIDTH_SAMPLE = 20  # rows of a block measured for the column widths (a ledger has many blocks)


@dataclass
class Block:
    rows: list[bytes]  # each "<row r=ROW>…</row>", ROW wherever the row's number belongs
    links: list[tuple[int, int, str]] = field(default_factory=list)  # (row in the block, column, target)
    widths: list[int] = field(default_factory=list)  # the widest text of each column, as text_width counts


def _inline(s: str) -> str:
    s = safe_text(s)
    keep = ' xml:space="preserve"' if s[:1].isspace() or s[-1:].isspace() or "\n" in s else ""
    return f'<is><t{keep}>{escape(s)}</t></is>'


def write_block(rows: list[list[Any]]) -> Block:
    """The rows' XML, as Sheet.xml writes the same cells (empty texts and None are no cell)."""
    letters: list[str] = []
    out: list[bytes] = []
    links: list[tuple[int, int, str]] = []
    known: dict[str, str] = {}  # names, places, statuses repeat: cleaned and escaped once

    def inline(v: str) -> str:
        x = known.get(v)
        if x is None:
            x = known[v] = _inline(v)
        return x
    for k, row in enumerate(rows):
        while len(letters) < len(row):
            letters.append(column_letter(len(letters) + 1))
        cells = ['<row r="\x00">']
        for i, v in enumerate(row):
            t = type(v)
            if t is str:
                if v:
                    cells.append(f'<c r="{letters[i]}\x00" t="inlineStr">{inline(v)}</c>')
            elif v is None:
                continue
            elif t is int or t is float:
                if isfinite(v):  # no cell for NaN or infinity, as openpyxl wrote them
                    cells.append(f'<c r="{letters[i]}\x00"><v>{"%.16g" % v}</v></c>')
            elif t is Link:
                links.append((k, i, v.target))
                cells.append(f'<c r="{letters[i]}\x00" s="{XF_LINK}" t="inlineStr">{_inline(v.text)}</c>')
            elif isinstance(v, (date, datetime)):
                s = XF_TIME if isinstance(v, datetime) else XF_DATE
                cells.append(f'<c r="{letters[i]}\x00" s="{s}"><v>{"%.16g" % excel_serial(v)}</v></c>')
            elif t is bool:
                cells.append(f'<c r="{letters[i]}\x00" t="b"><v>{int(v)}</v></c>')
            else:
                cells.append(f'<c r="{letters[i]}\x00" t="inlineStr">{_inline(str(v))}</c>')
        cells.append("</row>")
        out.append("".join(cells).encode("utf-8", "replace"))
    widths = [0] * len(letters)
    for row in rows[::max(1, len(rows) // WIDTH_SAMPLE)]:
        for i, v in enumerate(row):
            w = text_width(v)
            if w > widths[i]:
                widths[i] = w
    return Block(out, links, widths)
