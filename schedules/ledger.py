"""The week's ledger (台账): one xlsx with a sheet each for the summary, the reports, the
check-ins, the problems and the people, for the street or a leader's scope. Sent through WeCom,
a ledger over its 20 MB file cap goes as several files (`ledger_files`, ledger_parts.py).

`ledger_from_data` works from a collected WeekData (the digest shares one with the chart);
`build_ledger` collects the week itself. Photo cells link into the week's photo archive
(archive.py), the one `gridbot export` writes, whoever's ledger it is. Every ledger of a week has
the week's (category, unit) columns, so a grid's rows are written once for all of them
(ledger_rows.py).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from bot.clock import Clock, week_bounds
from bot.config import Config
from bot.store import Store
from schedules.archive import archive_path, opened_day, photo_date
from schedules.ledger_parts import LedgerFile, Unit, fit_ledger
from schedules.ledger_rows import Keys, ratio, rows_of, week_keys, week_stem
from schedules.week_titles import week_label
from schedules.weekdata import (GridWeek, WeekData, collect_week, communities_of, rollup,
                                scope_name)
from schedules.xlsx import PCT_FMT, Link, Sheet, Styled, Workbook, new_workbook, wall_time, workbook_bytes



def ledger_filename(cfg: Config, week: str, scope: list[str] | None = None) -> str:
    return f"{scope_name(cfg, scope)}{week_label(week)}工作台账.xlsx"


def ledger_from_data(cfg: Config, data: WeekData, grid_ids: list[str] | None = None,
                     scope: list[str] | None = None) -> bytes:
    """The xlsx for these grids (None: the whole street) from a collected week, whatever its size."""
    return _Ledger(cfg, data, grid_ids, scope).write()


def ledger_files(cfg: Config, data: WeekData, grid_ids: list[str] | None = None,
                 scope: list[str] | None = None) -> list[LedgerFile]:
    """The ledger as WeCom can take it: one file, or (over its 20 MB cap) the summary sheets
    (汇总, 问题台账, 人员) and then the 明细 and 打卡 sheets in parts by community."""
    led = _Ledger(cfg, data, grid_ids, scope)
    units: list[Unit] = []
    for _, cname, cgrids in communities_of(cfg, [g for g in led.grids if g.configured]):
        units.append(Unit(cname, cgrids, sum(_weight(g) for g in cgrids),
                          labels=[f"{cname}{g.name}" for g in cgrids]))
    units += [Unit(g.name, [g], _weight(g), whole=False) for g in led.grids if not g.configured]
    return fit_ledger(ledger_filename(cfg, data.week, scope), led.write, led.write_summary,
                      led.write_details, units)


def _weight(g: GridWeek) -> float:
    # Where to cut, not how big: each part is measured as written.
    return sum(120 + len(r.get("text", "")) * 3 for r in g.reports) + 200 * len(g.checkins) + 1


class _Ledger:
    """What the sheets share: the grids, their communities, the problems, the columns."""

    def __init__(self, cfg: Config, data: WeekData, grid_ids: list[str] | None, scope: list[str] | None):
        self.cfg, self.data = cfg, data
        self.grids = grids = data.grid_list(grid_ids)  # None: the street, records of removed grids too
        if scope is None and grid_ids is not None and set(grid_ids) != {g.id for g in cfg.grids}:
            scope = grid_ids
        self.scope = scope
        self.stem = week_stem(cfg, data)
        self.cnames = {g.id: cfg.community_name(g.community) if g.community else "" for g in grids}
        self.problems = data.problems_of({g.id for g in grids})
        self.keys = week_keys(cfg, data)
        self.key_cols = [f"{cfg.category_label(c)}({u})" if u else cfg.category_label(c) for c, u in self.keys]

    def write(self) -> bytes:
        cfg, data, grids, wb = self.cfg, self.data, self.grids, new_workbook()
        return workbook_bytes(wb, [
            _summary(wb, cfg, data, grids, self.problems, self.keys, self.key_cols, self.scope),
            _details(wb, cfg, data, grids, self.key_cols),
            _checkins(wb, cfg, data, grids),
            _problems(wb, cfg, data, grids, self.cnames, self.problems, self.stem),
            _people(wb, cfg, data, grids)])

    def write_summary(self) -> bytes:
        cfg, data, grids, wb = self.cfg, self.data, self.grids, new_workbook()
        return workbook_bytes(wb, [
            _summary(wb, cfg, data, grids, self.problems, self.keys, self.key_cols, self.scope),
            _problems(wb, cfg, data, grids, self.cnames, self.problems, self.stem),
            _people(wb, cfg, data, grids)])

    def write_details(self, grids: list[GridWeek]) -> bytes:
        """明细 and 打卡 of these grids, with the whole ledger's columns (so the parts line up)."""
        wb = new_workbook()
        cfg, data = self.cfg, self.data
        return workbook_bytes(wb, [_details(wb, cfg, data, grids, self.key_cols),
                                   _checkins(wb, cfg, data, grids)])


def collect_for_ledger(cfg: Config, store: Store, week: str, now: datetime | None = None) -> WeekData:
    """A finished week as of its end; the running week as of now."""
    monday, _ = week_bounds(week)
    end = datetime.combine(monday, datetime.min.time(), cfg.tz) + timedelta(days=7)
    return collect_week(cfg, store, week, as_of=min(now or Clock(cfg.tz).now(), end))


def build_ledger(cfg: Config, store: Store, week: str, scope_grids: list[str] | None = None, *,
                 now: datetime | None = None) -> bytes:
    """The week's xlsx ledger (None: the whole street)."""
    return ledger_from_data(cfg, collect_for_ledger(cfg, store, week, now), scope_grids)


# --- the sheets --------------------------------------------------------------------------

def _summary(wb: Workbook, cfg: Config, data: WeekData, grids: list[GridWeek], problems: list[dict], keys: Keys,
             key_cols: list[str], scope: list[str] | None) -> Sheet:
    """汇总: grid rows, a subtotal per community, the street total."""
    summary = Sheet(wb, "汇总", ["层级", "社区", "网格", "人数", "工作日", "有效打卡(次)", "打卡率", "上报(条)"]
                    + key_cols + ["新增问题", "销号问题", "逾期未整改", "待整改"],
                    formats={6: PCT_FMT}, freeze="D2")
    now = data.as_of.timestamp()
    by_grid: dict[str, list[dict]] = {}
    for p in problems:  # once, not once per row: a district has a thousand rows
        by_grid.setdefault(p.get("grid"), []).append(p)

    def summary_row(level: str, community: str, grid: str, gs: list[GridWeek], bold: bool) -> list:
        r = rollup(grid or community, gs)
        ps = problems if len(gs) == len(grids) else [p for g in gs for p in by_grid.get(g.id, ())]
        values = [level, community, grid, r.people, len(data.rated_days), r.checkins, ratio(r.rate), r.reports]
        values += [r.totals.get(k, 0) for k in keys]
        values += [sum(1 for p in ps if data.opened_in_week(p)), sum(1 for p in ps if data.closed_in_week(p)),
                   sum(1 for p in ps if data.overdue(p)), sum(1 for p in ps if data.open_at(p, now))]
        return [Styled(v) if bold and v is not None else v for v in values]

    for _, cname, cgrids in communities_of(cfg, [g for g in grids if g.configured]):
        for g in cgrids:
            summary.add(summary_row("网格", cname, g.name, [g], False))
        summary.add(summary_row("社区小计", cname, "", cgrids, True))
    for g in grids:
        if not g.configured and (g.reports or g.checkins):
            # People outside every grid (a leader's own report): their own row, no attendance
            # (nobody there is expected to check in), so every column still adds up to the total.
            row = summary_row("其他", "", g.name, [g], False)
            row[3] = row[4] = row[6] = None
            summary.add(row)
    summary.add(summary_row("合计", scope_name(cfg, scope), "", grids, True))
    return summary


def _people(wb: Workbook, cfg: Config, data: WeekData, grids: list[GridWeek]) -> Sheet:
    """人员: each person's week, attendance and reports."""
    people = Sheet(wb, "人员", ["社区", "网格", "姓名", "角色", "工作日", "打卡天数", "打卡率",
                              "最长连续未打卡(天)", "请假(天)", "上报(条)"], formats={6: PCT_FMT}, freeze="D2")
    for g in grids:
        for row in rows_of(cfg, data, g).people:
            people.add(row)
    return people


def _details(wb: Workbook, cfg: Config, data: WeekData, grids: list[GridWeek], key_cols: list[str]) -> Sheet:
    """明细: every report, with numbers only where it counts, so column sums are the totals."""
    details = Sheet(wb, "明细", ["编号", "工作日期", "上报时间", "社区", "网格", "上报人", "原文", "更正为",
                               "识别结果", "状态", "标记", "更正记录"] + key_cols, freeze="C2")
    for g in grids:
        details.add_block(rows_of(cfg, data, g).details)
    return details


def _checkins(wb: Workbook, cfg: Config, data: WeekData, grids: list[GridWeek]) -> Sheet:
    """打卡: every check-in of the week, counted or not, its photo linked into the archive."""
    checks = Sheet(wb, "打卡", ["编号", "日期", "时间", "社区", "网格", "人员", "位置", "计入", "标记", "说明",
                              "照片"], freeze="C2")
    for g in grids:
        checks.add_block(rows_of(cfg, data, g).checkins)
    return checks


def _problems(wb: Workbook, cfg: Config, data: WeekData, grids: list[GridWeek], cnames: dict[str, str],
              problems: list[dict], stem: str) -> Sheet:
    """问题台账: opened, closed or still open during the week."""
    ledger = Sheet(wb, "问题台账", ["编号", "社区", "网格", "登记人", "问题描述", "类别", "登记时间", "整改期限",
                                 "状态", "销号时间", "销号人", "整改说明", "整改前照片", "整改后照片"], freeze="C2")
    gnames = {g.id: g.name for g in grids}
    for p in problems:
        gname = gnames.get(p.get("grid"), p.get("grid") or "")
        fallback = opened_day(cfg, data, p)
        closer = p.get("closed_by") or ""
        closer_name = (cfg.person(closer).name if cfg.person(closer) else
                       next((h.get("by_name") for h in p.get("history", []) if h.get("by") == closer
                             and h.get("by_name")), closer))
        ledger.add([p.get("id", ""), cnames.get(p.get("grid"), ""), gname,
                    p.get("reporter_name") or p.get("reporter", ""), p.get("text", ""),
                    cfg.category_label(p["category"]) if p.get("category") else "",
                    wall_time(cfg.tz, p.get("opened_at")),
                    wall_time(cfg.tz, p.get("deadline")), _problem_status(data, p),
                    wall_time(cfg.tz, p.get("closed_at")) if p.get("status") == "closed" else None, closer_name,
                    p.get("closed_note") or "",
                    _photos_cell(stem, gname, p.get("photos_before") or [], fallback),
                    _photos_cell(stem, gname, p.get("photos_after") or [], fallback)])
    return ledger


# --- cell values --------------------------------------------------------------------------

def _problem_status(data: WeekData, p: dict) -> str:
    if p.get("status") == "closed":
        return "已销号(无整改照片)" if p.get("closed_without_photo") else "已销号"
    if p.get("status") == "pending_check":
        return "待核查"
    return "逾期未整改" if data.overdue(p) else "整改中"


def _photos_cell(stem: str, grid_name: str, paths: list[str], fallback: date) -> Any:
    if not paths:
        return ""
    targets = [archive_path(stem, grid_name, photo_date(p, fallback), p) for p in paths]
    text = "\n".join(t.split("/", 1)[1] for t in targets)
    return Link(text, targets[0])
