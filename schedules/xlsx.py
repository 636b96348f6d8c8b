"""Writing xlsx files: styled header rows, measured column widths, plain-text cells.

The sheets are written straight as SpreadsheetML, row by row, into the zip: a district's week is
millions of cells, and openpyxl (even in write-only mode) spends some 10 µs on each, most of the
digest's time; an f-string per cell is about ten times cheaper. What is written is what openpyxl
wrote (shared strings, the same styles, number formats, frozen panes, column widths, external
hyperlinks), so openpyxl, Excel and WPS read the same workbook as before.

Column widths and frozen panes are decided before the rows go out: a Sheet buffers its rows.
Every string cell is a shared string, never a formula: a report that starts with "=" (or +, -, @)
stays text whatever Excel would make of it typed in.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from math import isfinite
from typing import Any, Iterator

MAX_CELL = 32000  # Excel holds 32,767 characters per cell
DATE_FMT, TIME_FMT, PCT_FMT = "yyyy-mm-dd", "yyyy-mm-dd hh:mm", "0.0%"
# The characters XML 1.0 cannot hold (as openpyxl's ILLEGAL_CHARACTERS_RE).
ILLEGAL_CHARACTERS_RE = re.compile(r"[\000-\010]|[\013-\014]|[\016-\037]")
EXCEL_EPOCH = datetime(1899, 12, 30)
_WIDE = re.compile("[\u2e81-\U0010ffff]")
ROWS_PER_CHUNK = 2000  # rows joined into one write: few calls, and the GIL is let go between them

# Fonts, fills and the cell formats (xf) built from them, as styles.xml lists them.
FONT_PLAIN, FONT_HEADER, FONT_TOTAL, FONT_LINK = range(4)
FONTS = ('<font><sz val="11"/><name val="Calibri"/><family val="2"/></font>',
         '<font><b/><sz val="11"/><color rgb="00FFFFFF"/><name val="Calibri"/><family val="2"/></font>',
         '<font><b/><sz val="11"/><name val="Calibri"/><family val="2"/></font>',
         '<font><u/><sz val="11"/><color rgb="000563C1"/><name val="Calibri"/><family val="2"/></font>')
FILLS = ('<fill><patternFill/></fill>', '<fill><patternFill patternType="gray125"/></fill>',
         '<fill><patternFill patternType="solid"><fgColor rgb="004A7EBB"/><bgColor rgb="004A7EBB"/></patternFill>'
         '</fill>')
FILL_HEADER = 2
# Cell formats every workbook numbers alike (registered first, in this order), so rows written
# once (xlsx_rows.Block) can go into any workbook.
XF_DATE, XF_TIME, XF_LINK = 1, 2, 3

NS_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
NS_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
NS_PKG = "http://schemas.openxmlformats.org/package/2006/relationships"
HYPERLINK_REL = NS_REL + "/hyperlink"


@dataclass
class Link:
    text: str
    target: str


@dataclass
class Styled:
    value: Any
    bold: bool = True


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
    # A CJK character (from U+2E81) counts two: counted by the regex engine, not a Python loop
    # over every character of a thousand rows' texts.
    return 2 * len(s) - len(_WIDE.sub("", s))


def excel_serial(v: date) -> float | int:
    """Days since Excel's epoch, the way openpyxl counts them (so the values read back the same)."""
    if isinstance(v, datetime):
        t = v - EXCEL_EPOCH
        return t.days + (t.seconds + t.microseconds / 10**6) / 86400
    return (v - EXCEL_EPOCH.date()).days


def column_letter(i: int) -> str:
    """1 → A, 27 → AA."""
    out = ""
    while i:
        i, r = divmod(i - 1, 26)
        out = chr(65 + r) + out
    return out


_ESCAPE = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\r": "&#13;"})


def escape(s: str) -> str:
    return s.translate(_ESCAPE)


class Workbook:
    """The shared strings and the cell formats its sheets use."""

    def __init__(self) -> None:
        self.strings: dict[str, int] = {}
        self.known: dict[str, int] = {}  # a cell's text as given → its shared string (cleaned)
        self.numfmts: dict[str, int] = {}  # custom number formats from 164, as Excel numbers them
        self.xfs: dict[tuple[int, int, int, bool], int] = {(FONT_PLAIN, 0, 0, False): 0}
        fixed = (self.style(fmt=DATE_FMT), self.style(fmt=TIME_FMT), self.style(FONT_LINK))
        assert fixed == (XF_DATE, XF_TIME, XF_LINK)

    def string(self, s: str) -> int:
        i = self.strings.get(s)
        if i is None:
            i = self.strings[s] = len(self.strings)
        return i

    def style(self, font: int = FONT_PLAIN, fmt: str | None = None, fill: int = 0, centred: bool = False) -> int:
        fmt_id = 0
        if fmt:
            fmt_id = self.numfmts.setdefault(fmt, 164 + len(self.numfmts))
        key = (font, fill, fmt_id, centred)
        i = self.xfs.get(key)
        if i is None:
            i = self.xfs[key] = len(self.xfs)
        return i


def new_workbook() -> Workbook:
    return Workbook()


def workbook_bytes(wb: Workbook, sheets: list[Sheet]) -> bytes:
    """Write the sheets (their tabs in this order) and return the file's bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for n, s in enumerate(sheets, 1):
            with z.open(f"xl/worksheets/sheet{n}.xml", "w") as f:
                for chunk in s.xml():
                    f.write(chunk if type(chunk) is bytes else chunk.encode("utf-8", "replace"))
            if s.links:
                z.writestr(f"xl/worksheets/_rels/sheet{n}.xml.rels", _rels(
                    (f"rId{i}", HYPERLINK_REL, escape(target), ' TargetMode="External"')
                    for i, (_, target) in enumerate(s.links, 1)))
        z.writestr("xl/sharedStrings.xml", _shared_strings(wb).encode("utf-8", "replace"))
        z.writestr("xl/styles.xml", _styles(wb))
        z.writestr("xl/workbook.xml", _workbook_xml(sheets))
        z.writestr("xl/_rels/workbook.xml.rels", _rels(
            [(f"rId{n}", NS_REL + "/worksheet", f"worksheets/sheet{n}.xml", "") for n in range(1, len(sheets) + 1)]
            + [(f"rId{len(sheets) + 1}", NS_REL + "/styles", "styles.xml", ""),
               (f"rId{len(sheets) + 2}", NS_REL + "/sharedStrings", "sharedStrings.xml", "")]))
        z.writestr("_rels/.rels", _rels([("rId1", NS_REL + "/officeDocument", "xl/workbook.xml", "")]))
        z.writestr("[Content_Types].xml", _content_types(len(sheets)))
    return buf.getvalue()


class Sheet:
    """Rows are buffered so the column widths can be measured before the sheet is written."""

    def __init__(self, wb: Workbook, title: str, headers: list[str], *, formats: dict[int, str] | None = None,
                 freeze: str = "A2", max_width: int = 50):
        self.wb, self.title, self.headers = wb, title, headers
        self.formats = formats or {}  # 0-based column → number format
        self.freeze, self.max_width = freeze, max_width
        self.rows: list[list[Any]] = []
        self.blocks: list[Any] = []  # xlsx_rows.Block: rows written already, after self.rows
        self.links: list[tuple[str, str]] = []  # (cell, target), filled as the rows are written

    def add(self, row: list[Any]) -> None:
        self.rows.append(row)

    def add_block(self, block: Any) -> None:
        self.blocks.append(block)

    def xml(self) -> Iterator[str | bytes]:
        """The worksheet's XML in chunks of rows; the buffered rows are let go as they are written."""
        wb = self.wb
        widths = [text_width(h) for h in self.headers]
        widths += [0] * max(0, max((len(b.widths) for b in self.blocks), default=0) - len(widths))
        for row in self.rows[::max(1, len(self.rows) // 500)]:  # a spread sample is plenty for widths
            for i, v in enumerate(row):
                w = text_width(v)
                if w > widths[i]:
                    widths[i] = w
        for b in self.blocks:
            for i, w in enumerate(b.widths):
                if w > widths[i]:
                    widths[i] = w
        letters = [column_letter(i) for i in range(1, max(len(widths), max(map(len, self.rows), default=0)) + 1)]
        cols = "".join(f'<col min="{i}" max="{i}" width="{max(6, min(self.max_width, w + 2))}" customWidth="1"/>'
                       for i, w in enumerate(widths, 1))
        head = [f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet xmlns="{NS_MAIN}" '
                f'xmlns:r="{NS_REL}"><sheetViews><sheetView workbookViewId="0">{_pane(self.freeze)}</sheetView>'
                f'</sheetViews><sheetFormatPr defaultRowHeight="15"/><cols>{cols}</cols><sheetData><row r="1">']
        hs = wb.style(FONT_HEADER, fill=FILL_HEADER, centred=True)
        head += [f'<c r="{letters[i]}1" s="{hs}" t="s"><v>{wb.string(safe_text(h))}</v></c>'
                 for i, h in enumerate(self.headers)]
        head.append("</row>")
        yield "".join(head)

        plain_fmt = {i: wb.style(fmt=f) for i, f in self.formats.items()}
        bold_fmt = {i: wb.style(FONT_TOTAL, fmt=f) for i, f in self.formats.items()}
        s_bold, s_link = wb.style(FONT_TOTAL), wb.style(FONT_LINK)
        s_time, s_date = wb.style(fmt=TIME_FMT), wb.style(fmt=DATE_FMT)
        s_time_b, s_date_b = wb.style(FONT_TOTAL, fmt=TIME_FMT), wb.style(FONT_TOTAL, fmt=DATE_FMT)
        formats, known = self.formats, wb.known

        def string(v: str) -> int:
            # Most strings repeat (names, grids, statuses): cleaned and numbered once per workbook.
            i = known.get(v)
            if i is None:
                i = known[v] = wb.string(safe_text(v))
            return i
        rows, self.rows = self.rows, []
        out: list[str] = []
        for n, row in enumerate(rows, 2):
            cells = [f'<row r="{n}">']
            for i, v in enumerate(row):
                t = type(v)
                if t is str:  # the common cells first, on the shortest path
                    if v:  # an empty text is no cell: it costs as much to write as a full one
                        k = known.get(v)
                        cells.append(f'<c r="{letters[i]}{n}" t="s"><v>{string(v) if k is None else k}</v></c>')
                    continue
                if v is None:
                    continue
                if (t is int or t is float) and i not in formats:
                    if isfinite(v):  # no cell for NaN or infinity, as openpyxl wrote them
                        cells.append(f'<c r="{letters[i]}{n}"><v>{"%.16g" % v}</v></c>')
                    continue
                ref = f"{letters[i]}{n}"
                bold = False
                if t is Styled:
                    bold, v = v.bold, v.value
                    if v is None:
                        continue
                    t = type(v)
                if t is str:
                    if not v:
                        continue
                    cells.append(f'<c r="{ref}" s="{s_bold}" t="s"><v>{string(v)}</v></c>' if bold
                                 else f'<c r="{ref}" t="s"><v>{string(v)}</v></c>')
                elif t is int or t is float:
                    if not isfinite(v):
                        continue
                    s = (bold_fmt if bold else plain_fmt).get(i, s_bold if bold else 0)
                    num = "%.16g" % v  # as openpyxl writes numbers: 12.0 reads back as 12
                    cells.append(f'<c r="{ref}" s="{s}"><v>{num}</v></c>' if s else f'<c r="{ref}"><v>{num}</v></c>')
                elif t is Link:
                    self.links.append((ref, v.target))
                    cells.append(f'<c r="{ref}" s="{s_link}" t="s"><v>{string(v.text)}</v></c>')
                elif t is bool:
                    cells.append(f'<c r="{ref}" t="b"><v>{int(v)}</v></c>')
                elif isinstance(v, datetime) or isinstance(v, date):
                    fmt = formats.get(i)
                    if fmt:
                        s = (bold_fmt if bold else plain_fmt)[i]
                    elif isinstance(v, datetime):
                        s = s_time_b if bold else s_time
                    else:
                        s = s_date_b if bold else s_date
                    cells.append(f'<c r="{ref}" s="{s}"><v>{"%.16g" % excel_serial(v)}</v></c>')
                else:  # anything else is written as its text
                    cells.append(f'<c r="{ref}" t="s"><v>{string(str(v))}</v></c>')
            cells.append("</row>")
            out.append("".join(cells))
            if len(out) >= ROWS_PER_CHUNK:
                yield "".join(out)
                out = []
        yield "".join(out)
        n = len(rows) + 1
        for b in self.blocks:
            # The block's bytes as written once, each row given its number here.
            yield b"".join([r.replace(b"\x00", b"%d" % (n + k)) for k, r in enumerate(b.rows, 1)])
            self.links += [(f"{letters[i]}{n + 1 + k}", target) for k, i, target in b.links]
            n += len(b.rows)
        out = ["</sheetData>"]
        if self.links:
            out.append("<hyperlinks>" + "".join(f'<hyperlink ref="{ref}" r:id="rId{k}"/>'
                                                for k, (ref, _) in enumerate(self.links, 1)) + "</hyperlinks>")
        out.append('<pageMargins left="0.75" right="0.75" top="1" bottom="1" header="0.5" footer="0.5"/></worksheet>')
        yield "".join(out)


# --- the package's other parts ----------------------------------------------------------------

def _pane(freeze: str | None) -> str:
    if not freeze or freeze == "A1":
        return '<selection activeCell="A1" sqref="A1"/>'
    m = re.fullmatch(r"([A-Z]+)(\d+)", freeze)
    col = 0
    for ch in m.group(1):
        col = col * 26 + ord(ch) - 64
    x, y = col - 1, int(m.group(2)) - 1
    pane = "bottomRight" if x and y else "topRight" if x else "bottomLeft"
    split = (f' xSplit="{x}"' if x else "") + (f' ySplit="{y}"' if y else "")
    return (f'<pane{split} topLeftCell="{freeze}" activePane="{pane}" state="frozen"/>'
            f'<selection pane="{pane}" activeCell="{freeze}" sqref="{freeze}"/>')


def _shared_strings(wb: Workbook) -> str:
    def item(s: str) -> str:
        # Leading or trailing spaces and line breaks are kept only when the text says so.
        keep = ' xml:space="preserve"' if s[:1].isspace() or s[-1:].isspace() or "\n" in s else ""
        return f"<si><t{keep}>{escape(s)}</t></si>"
    n = len(wb.strings)
    return (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<sst xmlns="{NS_MAIN}" count="{n}" '
            f'uniqueCount="{n}">' + "".join(map(item, wb.strings)) + "</sst>")


def _styles(wb: Workbook) -> str:
    numfmts = "".join(f'<numFmt numFmtId="{i}" formatCode="{escape(f)}"/>' for f, i in wb.numfmts.items())
    xfs = []
    for font, fill, fmt, centred in wb.xfs:
        attrs = (f'numFmtId="{fmt}" fontId="{font}" fillId="{fill}" borderId="0" xfId="0"'
                 + (' applyNumberFormat="1"' if fmt else "") + (' applyFont="1"' if font else "")
                 + (' applyFill="1"' if fill else ""))
        xfs.append(f'<xf {attrs} applyAlignment="1"><alignment horizontal="center" vertical="center"/></xf>'
                   if centred else f"<xf {attrs}/>")
    return (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<styleSheet xmlns="{NS_MAIN}">'
            + (f'<numFmts count="{len(wb.numfmts)}">{numfmts}</numFmts>' if wb.numfmts else "")
            + f'<fonts count="{len(FONTS)}">{"".join(FONTS)}</fonts><fills count="{len(FILLS)}">{"".join(FILLS)}</fills>'
            '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
            '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
            f'<cellXfs count="{len(xfs)}">{"".join(xfs)}</cellXfs>'
            '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles></styleSheet>').encode()


def _workbook_xml(sheets: list[Sheet]) -> bytes:
    tabs = "".join(f'<sheet name="{escape(s.title)}" sheetId="{n}" r:id="rId{n}"/>' for n, s in enumerate(sheets, 1))
    return (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<workbook xmlns="{NS_MAIN}" '
            f'xmlns:r="{NS_REL}"><bookViews><workbookView/></bookViews><sheets>{tabs}</sheets></workbook>').encode()


def _rels(items) -> bytes:
    body = "".join(f'<Relationship Id="{i}" Type="{t}" Target="{target}"{extra}/>' for i, t, target, extra in items)
    return (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Relationships xmlns="{NS_PKG}">'
            f"{body}</Relationships>").encode("utf-8", "replace")


def _content_types(n: int) -> bytes:
    ct = "application/vnd.openxmlformats-officedocument.spreadsheetml"
    parts = "".join(f'<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="{ct}.worksheet+xml"/>'
                    for i in range(1, n + 1))
    return ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Types '
            'xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            f'<Override PartName="/xl/workbook.xml" ContentType="{ct}.sheet.main+xml"/>'
            f'<Override PartName="/xl/styles.xml" ContentType="{ct}.styles+xml"/>'
            f'<Override PartName="/xl/sharedStrings.xml" ContentType="{ct}.sharedStrings+xml"/>'
            f"{parts}</Types>").encode()
