"""The week's ledger (台账): an xlsx, the chart and a zip of the photos for the archive (资料归档).

`gridbot export --week 2026-W48` runs beside the bot on a read-only store. The xlsx is written
with openpyxl's write-only mode (about twice as fast for ten thousand rows), so column widths
and frozen panes are decided before the rows go out.

Every string cell is plain text: a report that starts with "=" (or +, -, @) would otherwise
become a formula in Excel, so such cells are typed as strings explicitly.
"""

from __future__ import annotations

import io
import re
import sys
import zipfile
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.hyperlink import Hyperlink

from bot.clock import Clock, week_bounds, zh_date
from bot.config import Config
from bot.records import counted, fmt_qty
from bot.store import Store, atomic_file, atomic_write
from schedules.weekdata import (ISSUE_ZH, GridWeek, WeekData, collect_week, communities_of, ordered_units, rollup,
                       scope_name)
from schedules.week_titles import digest_title, previous_week, week_label

FORMULA_START = ("=", "+", "-", "@")
MAX_CELL = 32000  # Excel holds 32,767 characters per cell
ROLE_ZH = {"member": "网格员", "grid_leader": "网格长", "leader": "领导", "admin": "管理员"}
HEADER_FONT = Font(bold=True, color="FFFFFF")
HEADER_FILL = PatternFill("solid", fgColor="4A7EBB")
TOTAL_FONT = Font(bold=True)
LINK_FONT = Font(color="0563C1", underline="single")
DATE_FMT, TIME_FMT, PCT_FMT = "yyyy-mm-dd", "yyyy-mm-dd hh:mm", "0.0%"
_UNSAFE_PATH = re.compile(r'[\\/:*?"<>|\x00-\x1f]')


@dataclass
class Link:
    text: str
    target: str


@dataclass
class Styled:
    value: Any
    bold: bool = True


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


# --- naming ----------------------------------------------------------------------------

def ledger_filename(cfg: Config, week: str, scope: list[str] | None = None) -> str:
    return f"{scope_name(cfg, scope)}{week_label(week)}工作台账.xlsx"


def chart_filename(cfg: Config, week: str, scope: list[str] | None = None) -> str:
    return f"{scope_name(cfg, scope)}{week_label(week)}工作图表.png"


def archive_stem(cfg: Config, week: str, scope: list[str] | None = None) -> str:
    return f"{scope_name(cfg, scope)}{week_label(week)}照片归档"


def safe_part(s: str) -> str:
    return _UNSAFE_PATH.sub("_", s).strip(". ") or "_"


def photo_date(rel: str, fallback: date) -> str:
    """Stored photos are named <date>_<kind>_...; the folder in the archive is that date."""
    name = Path(rel).name
    try:
        return date.fromisoformat(name[:10]).isoformat()
    except ValueError:
        return fallback.isoformat()


def archive_path(stem: str, grid_name: str, day: str, rel: str) -> str:
    return f"{stem}/{safe_part(grid_name)}/{day}/{safe_part(Path(rel).name)}"


# --- the workbook ---------------------------------------------------------------------

def _local(cfg: Config, ts: float | None) -> datetime | None:
    # Excel has no time zones: write the bot's local wall time.
    return datetime.fromtimestamp(ts, cfg.tz).replace(tzinfo=None) if ts else None


def _items_text(cfg: Config, items: list[dict]) -> str:
    return ";".join(f"{cfg.category_label(i['category'])} {fmt_qty(i['quantity'])}{i['unit']}" for i in items)


def _history_text(cfg: Config, history: list[dict]) -> str:
    out = []
    for h in history or []:
        when = _local(cfg, h.get("at"))
        stamp = f"{when:%m-%d %H:%M} " if when else ""
        who = h.get("by_name") or h.get("by", "")
        before = h.get("before") or {}
        if h.get("action") == "correct":
            out.append(f"{stamp}{who}更正,原为:{before.get('text', '')}")
        elif h.get("action") == "withdraw":
            out.append(f"{stamp}{who}撤回")
        elif h.get("action") == "confirm":
            out.append(f"{stamp}{who}核实")
        else:
            out.append(f"{stamp}{who}{h.get('action', '')}")
    return ";".join(out)


def _report_status(r: dict) -> str:
    if r.get("status") == "withdrawn":
        return "已撤回"
    return "待核实" if r.get("unconfirmed") else "有效"


def _problem_status(data: WeekData, p: dict) -> str:
    if p.get("status") == "closed":
        return "已销号(无整改照片)" if p.get("closed_without_photo") else "已销号"
    return "逾期未整改" if data.overdue(p) else "整改中"


def _grids_for(cfg: Config, data: WeekData, grid_ids: list[str] | None) -> list[GridWeek]:
    if grid_ids is None:
        return list(data.grids.values())  # the street: records of removed grids too
    return data.grid_list(grid_ids)


def ledger_from_data(cfg: Config, data: WeekData, grid_ids: list[str] | None = None,
                     scope: list[str] | None = None) -> bytes:
    """The xlsx for these grids (None: the whole street) from a collected week."""
    grids = _grids_for(cfg, data, grid_ids)
    if scope is None and grid_ids is not None and set(grid_ids) != {g.id for g in cfg.grids}:
        scope = grid_ids
    stem = archive_stem(cfg, data.week, scope)
    gnames = {g.id: g.name for g in grids}
    cnames = {g.id: cfg.community_name(g.community) if g.community else "" for g in grids}
    problems = data.problems_of({g.id for g in grids})
    keys = ordered_units(cfg, [g.totals for g in grids])
    if not keys:
        keys = [(c.id, "") for c in cfg.category_list]
    key_cols = [f"{cfg.category_label(c)}({u})" if u else cfg.category_label(c) for c, u in keys]

    wb = Workbook(write_only=True)

    # 汇总: grid rows, a subtotal per community, the street total.
    summary = Sheet(wb, "汇总", ["层级", "社区", "网格", "人数", "工作日", "有效打卡(次)", "打卡率", "上报(条)"]
                    + key_cols + ["新增问题", "销号问题", "逾期未整改", "待整改"],
                    formats={6: PCT_FMT}, freeze="D2")
    now = data.as_of.timestamp()

    def summary_row(level: str, community: str, grid: str, gs: list[GridWeek], bold: bool) -> list:
        r = rollup(grid or community, gs)
        ids = {g.id for g in gs}
        ps = [p for p in problems if p.get("grid") in ids]
        values = [level, community, grid, r.people, len(data.rated_days), r.checkins, _ratio(r.rate), r.reports]
        values += [r.totals.get(k, 0) for k in keys]
        values += [sum(1 for p in ps if data.opened_in_week(p)), sum(1 for p in ps if data.closed_in_week(p)),
                   sum(1 for p in ps if data.overdue(p)), sum(1 for p in ps if data.open_at(p, now))]
        return [Styled(v) if bold and v is not None else v for v in values]

    communities = communities_of(cfg, grids)
    for _, cname, cgrids in communities:
        for g in cgrids:
            summary.add(summary_row("网格", cname, g.name, [g], False))
        summary.add(summary_row("社区小计", cname, "", cgrids, True))
    summary.add(summary_row("合计", scope_name(cfg, scope), "", grids, True))

    # 人员
    people = Sheet(wb, "人员", ["社区", "网格", "姓名", "角色", "工作日", "打卡天数", "打卡率",
                              "最长连续未打卡(天)", "请假(天)", "上报(条)"], formats={6: PCT_FMT}, freeze="D2")
    for g in grids:
        for p in g.people:
            people.add([cnames[g.id], g.name, p.name, ROLE_ZH.get(p.role, p.role), p.workdays,
                        p.checkin_days, _ratio(p.rate), len(p.missing_run), p.leave_days, p.reports])

    # 明细: every report, with numbers only where it counts, so column sums are the totals.
    details = Sheet(wb, "明细", ["编号", "工作日期", "上报时间", "社区", "网格", "上报人", "原文", "识别结果",
                               "状态", "标记", "更正记录"] + key_cols, freeze="C2")
    index = {k: i for i, k in enumerate(keys)}
    for g in grids:
        for r in g.reports:
            nums: list[Any] = [None] * len(keys)
            if counted(r):
                for it in r.get("items", []):
                    i = index.get((it["category"], it["unit"]))
                    if i is not None:
                        nums[i] = (nums[i] or 0) + it["quantity"]
            try:
                wd: Any = date.fromisoformat(r.get("work_date", ""))
            except ValueError:
                wd = r.get("work_date", "")
            details.add([r.get("id", ""), wd, _local(cfg, r.get("sent_at")), cnames[g.id], g.name,
                         r.get("name") or r.get("userid", ""), r.get("text", ""),
                         _items_text(cfg, r.get("items", [])), _report_status(r),
                         "、".join(ISSUE_ZH.get(f, f) for f in r.get("flags", [])),
                         _history_text(cfg, r.get("history", []))] + nums)

    # 打卡
    checks = Sheet(wb, "打卡", ["编号", "日期", "时间", "社区", "网格", "人员", "位置", "计入", "标记", "说明",
                              "照片"], freeze="C2")
    for g in grids:
        for c in g.checkins:
            try:
                day: Any = date.fromisoformat(c.get("date", ""))
            except ValueError:
                day = c.get("date", "")
            photo = None
            if c.get("file"):
                target = archive_path(stem, g.name, c.get("date", ""), c["file"])
                photo = Link(target.split("/", 1)[1], target)
            checks.add([c.get("id", ""), day, _local(cfg, c.get("time")), cnames[g.id], g.name,
                        c.get("name") or c.get("userid", ""), _place(c), "是" if c.get("counted", True) else "否",
                        "、".join(ISSUE_ZH.get(f, f) for f in c.get("flags", [])), c.get("reason") or "", photo])

    # 问题台账: opened, closed or still open during the week.
    ledger = Sheet(wb, "问题台账", ["编号", "社区", "网格", "登记人", "问题描述", "类别", "登记时间", "整改期限",
                                 "状态", "销号时间", "销号人", "整改说明", "整改前照片", "整改后照片"], freeze="C2")
    for p in problems:
        gname = gnames.get(p.get("grid"), p.get("grid") or "")
        opened = _local(cfg, p.get("opened_at"))
        fallback = opened.date() if opened else data.monday
        closer = p.get("closed_by") or ""
        closer_name = (cfg.person(closer).name if cfg.person(closer) else
                       next((h.get("by_name") for h in p.get("history", []) if h.get("by") == closer
                             and h.get("by_name")), closer))
        ledger.add([p.get("id", ""), cnames.get(p.get("grid"), ""), gname,
                    p.get("reporter_name") or p.get("reporter", ""), p.get("text", ""),
                    cfg.category_label(p["category"]) if p.get("category") else "", opened,
                    _local(cfg, p.get("deadline")), _problem_status(data, p),
                    _local(cfg, p.get("closed_at")) if p.get("status") == "closed" else None, closer_name,
                    p.get("closed_note") or "",
                    _photos_cell(stem, gname, p.get("photos_before") or [], fallback),
                    _photos_cell(stem, gname, p.get("photos_after") or [], fallback)])

    for s in (summary, details, checks, ledger, people):
        s.write()
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _ratio(x: float | None) -> float | None:
    return None if x is None else round(x, 4)  # 0.88, not 0.8799999999999999


def _place(c: dict) -> str:
    loc = c.get("location")
    if loc:
        label = loc.get("label") or ""
        return label or f"{loc.get('lat', 0):.5f},{loc.get('lng', 0):.5f}"
    gps = c.get("gps")
    if gps:
        return f"照片定位 {gps.get('lat', 0):.5f},{gps.get('lng', 0):.5f}"
    return ""


def _photos_cell(stem: str, grid_name: str, paths: list[str], fallback: date) -> Any:
    if not paths:
        return ""
    targets = [archive_path(stem, grid_name, photo_date(p, fallback), p) for p in paths]
    text = "\n".join(t.split("/", 1)[1] for t in targets)
    return Link(text, targets[0])


def collect_for_ledger(cfg: Config, store: Store, week: str, now: datetime | None = None) -> WeekData:
    """A finished week as of its end; the running week as of now."""
    monday, _ = week_bounds(week)
    end = datetime.combine(monday, datetime.min.time(), cfg.tz) + timedelta(days=7)
    return collect_week(cfg, store, week, as_of=min(now or Clock(cfg.tz).now(), end))


def build_ledger(cfg: Config, store: Store, week: str, scope_grids: list[str] | None = None, *,
                 now: datetime | None = None) -> bytes:
    """The week's xlsx ledger (None: the whole street)."""
    return ledger_from_data(cfg, collect_for_ledger(cfg, store, week, now), scope_grids)


# --- the photo archive -------------------------------------------------------------------

def week_photos(cfg: Config, data: WeekData, grid_ids: list[str] | None = None,
                scope: list[str] | None = None) -> list[tuple[str, str]]:
    """(path relative to data_dir, path in the archive) for check-in and problem photos."""
    grids = _grids_for(cfg, data, grid_ids)
    stem = archive_stem(cfg, data.week, scope)
    out: dict[str, str] = {}
    for g in grids:
        for c in g.checkins:
            if c.get("file"):
                out.setdefault(c["file"], archive_path(stem, g.name, c.get("date", ""), c["file"]))
    gnames = {g.id: g.name for g in grids}
    for p in data.problems_of(set(gnames)):
        opened = _local(cfg, p.get("opened_at"))
        fallback = opened.date() if opened else data.monday
        for rel in (p.get("photos_before") or []) + (p.get("photos_after") or []):
            out.setdefault(rel, archive_path(stem, gnames[p["grid"]], photo_date(rel, fallback), rel))
    return sorted(out.items(), key=lambda kv: kv[1])


def write_photo_zip(cfg: Config, data: WeekData, path: Path, grid_ids: list[str] | None = None) -> tuple[int, int]:
    """Write the archive atomically; returns (photos archived, photos missing on disk)."""
    base = cfg.data_path.resolve()
    added = missing = 0
    with atomic_file(path) as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as z:
        for rel, arc in week_photos(cfg, data, grid_ids):
            src = (base / rel).resolve()
            if not src.is_relative_to(base) or not src.is_file():
                missing += 1
                continue
            z.write(src, arc)  # photos are compressed already: stored, not deflated
            added += 1
    return added, missing


# --- the command ---------------------------------------------------------------------------

def export_command(cfg: Config, store: Store, week: str | None, out_dir: str | Path | None, *,
                   now: datetime | None = None) -> int:
    from schedules.chart import render_chart

    now = now or Clock(cfg.tz).now()
    if not week:
        week = previous_week(now.date())
    try:
        monday, sunday = week_bounds(week)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    week = week.upper()
    out = Path(out_dir or ".")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        print(f"无法创建输出目录 / cannot create {out}: {e.strerror}", file=sys.stderr)
        return 2
    data = collect_for_ledger(cfg, store, week, now)
    grids = list(data.grids.values())
    xlsx_path = out / ledger_filename(cfg, week)
    png_path = out / chart_filename(cfg, week)
    zip_path = out / f"{archive_stem(cfg, week)}.zip"
    try:
        atomic_write(xlsx_path, ledger_from_data(cfg, data))
        atomic_write(png_path, render_chart(cfg, data, grids, digest_title(cfg, week, None)))
        photos, missing = write_photo_zip(cfg, data, zip_path)
    except OSError as e:
        print(f"导出失败 / export failed: {e}", file=sys.stderr)
        return 1
    reports = sum(len(g.reports) for g in grids)
    checkins = sum(len(g.checkins) for g in grids)
    print(f"已导出 {week}({zh_date(monday)}—{zh_date(sunday)}):")
    print(f"  台账 {xlsx_path}(上报 {reports} 条,打卡 {checkins} 次,问题 {len(data.problems)} 项)")
    print(f"  图表 {png_path}")
    print(f"  照片 {zip_path}({photos} 张" + (f",{missing} 张文件缺失" if missing else "") + ")")
    return 0
