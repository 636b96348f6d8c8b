"""The month's ledger (月度台账): one xlsx for the street or a leader's scope, with the summary,
the targets, the coverage, everyone's points, the 积分明细 (every entry with its record's id,
date and rule, so any point can be checked against the record that earned it), the 红黑榜 and,
in a month with a campaign period, the rate of every day of it.

The weekly ledgers keep every report and check-in; this one keeps what the month adds. Sent
through WeCom, a ledger over its 20 MB file cap goes as several files (`month_ledger_files`).
"""

from __future__ import annotations

from typing import Any

from bot.attendance import rate_of
from bot.config import Config
from bot.months import month_label
from bot.scoring import RULES
from schedules.month_data import GridMonth, MonthData, coverage_of, day_rates, pooled, prev_pooled, totals_of
from schedules.ledger_parts import LedgerFile, Unit, fit_ledger
from schedules.month_honours import honours
from schedules.weekdata import communities_of, ordered_units, scope_name
from schedules.xlsx import PCT_FMT, Sheet, Styled, Workbook, new_workbook, workbook_bytes

ROLE_ZH = {"member": "网格员", "grid_leader": "网格长"}


def month_ledger_filename(cfg: Config, month: str, scope: list[str] | None = None) -> str:
    return f"{scope_name(cfg, scope)}{month_label(month)}工作台账.xlsx"


def month_ledger(cfg: Config, data: MonthData, grid_ids: list[str] | None = None,
                 scope: list[str] | None = None) -> bytes:
    """The month's xlsx for these grids (None: the whole street), whatever its size."""
    return _MonthLedger(cfg, data, grid_ids, scope).write()


def month_ledger_files(cfg: Config, data: MonthData, grid_ids: list[str] | None = None,
                       scope: list[str] | None = None) -> list[LedgerFile]:
    """The ledger as WeCom can take it: one file, or (over its 20 MB cap) the summary sheets
    (汇总, 目标与覆盖, 红黑榜, 迎检每日) and then 个人积分 and 积分明细 in parts by community."""
    led = _MonthLedger(cfg, data, grid_ids, scope)
    rows = data.entry_counts()
    units = [Unit(cname, cgrids, sum(rows.get(g.id, 0) + 3 * len(g.people) + 1 for g in cgrids),
                  labels=[f"{cname}{g.name}" for g in cgrids]) for _, cname, cgrids in communities_of(cfg, led.grids)]
    if led.unlisted and (others := sum(n for g, n in rows.items() if g not in data.grids)):
        # Points of grids no longer configured (or of none): the street's ledger keeps them too.
        units.append(Unit("其他", [UNLISTED], others, whole=False))
    return fit_ledger(month_ledger_filename(cfg, data.month, led.scope), led.write(), led.write_summary,
                      led.write_details, units)


UNLISTED = "(unlisted)"  # stands, among a part's grids, for the entries of grids not configured


class _MonthLedger:
    def __init__(self, cfg: Config, data: MonthData, grid_ids: list[str] | None, scope: list[str] | None):
        self.cfg, self.data = cfg, data
        self.grids = data.grid_list(grid_ids)
        if scope is None and grid_ids is not None and set(grid_ids) != set(data.grids):
            scope = list(grid_ids)
        self.scope = scope
        self.unlisted = len(self.grids) == len(data.grids)  # the street's: entries of removed grids too
        self.cnames = {g.id: cfg.community_name(g.community) if g.community else "" for g in self.grids}

    def write(self) -> bytes:
        cfg, data, grids, wb = self.cfg, self.data, self.grids, new_workbook()
        sheets = [_summary(wb, cfg, data, grids, self.scope), _targets(wb, cfg, grids, self.cnames),
                  _people(wb, cfg, grids, self.cnames), _entries(wb, data, grids, self.unlisted),
                  _honours(wb, cfg, grids)]
        if data.campaigns:
            sheets.append(_campaign(wb, data, grids))
        return workbook_bytes(wb, sheets)

    def write_summary(self) -> bytes:
        cfg, data, grids, wb = self.cfg, self.data, self.grids, new_workbook()
        sheets = [_summary(wb, cfg, data, grids, self.scope), _targets(wb, cfg, grids, self.cnames),
                  _honours(wb, cfg, grids)]
        if data.campaigns:
            sheets.append(_campaign(wb, data, grids))
        return workbook_bytes(wb, sheets)

    def write_details(self, grids: list) -> bytes:
        wb = new_workbook()
        own = [g for g in grids if g is not UNLISTED]
        return workbook_bytes(wb, [_people(wb, self.cfg, own, self.cnames),
                                   _entries(wb, self.data, own, UNLISTED in grids)])


def _ratio(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def _pts(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def _summary(wb: Workbook, cfg: Config, data: MonthData, grids: list[GridMonth], scope: list[str] | None) -> Sheet:
    keys = ordered_units(cfg, [totals_of(grids)])
    key_cols = [f"{cfg.category_label(c)}({u})" for c, u in keys]
    sheet = Sheet(wb, "汇总", ["层级", "社区", "网格", "人数", "工作日", "应打卡(人天)", "实际打卡(人天)", "打卡率",
                             "上月打卡率", "上报(条)"] + key_cols
                  + ["积分合计", "人均积分", "积分排名", "新增问题", "按期销号", "逾期销号", "逾期未整改"],
                  formats={7: PCT_FMT, 8: PCT_FMT}, freeze="D2")

    def row(level: str, community: str, name: str, gs: list[GridMonth], bold: bool, rank: int | None) -> list:
        members = sum(g.points.members for g in gs)
        total = sum(g.points.total for g in gs)
        totals = totals_of(gs)
        values: list[Any] = [level, community, name, sum(len(g.people) for g in gs), len(data.rated_days),
                             sum(g.expected_days for g in gs), sum(g.checkin_days for g in gs),
                             _ratio(pooled(gs)), _ratio(prev_pooled(gs)), sum(g.reports for g in gs)]
        values += [totals.get(k, 0) for k in keys]
        values += [_pts(total), _pts(total / members if members else None), rank,
                   sum(len(g.opened) for g in gs), sum(len(g.closed_on_time) for g in gs),
                   sum(len(g.closed_late) for g in gs), sum(len(g.overdue) for g in gs)]
        return [Styled(v) if bold and v is not None else v for v in values]

    for _, cname, cgrids in communities_of(cfg, grids):
        for g in cgrids:
            sheet.add(row("网格", cname, g.name, [g], False, g.points.rank))
        sheet.add(row("社区小计", cname, "", cgrids, True, None))
    sheet.add(row("合计", scope_name(cfg, scope), "", grids, True, None))
    return sheet


def _targets(wb: Workbook, cfg: Config, grids: list[GridMonth], cnames: dict[str, str]) -> Sheet:
    """目标与覆盖: each monthly target's progress, then each grid's household coverage."""
    sheet = Sheet(wb, "目标与覆盖", ["项目", "社区", "网格", "类别", "完成", "目标", "单位", "完成率", "说明"],
                  formats={7: PCT_FMT}, freeze="D2")
    for g in grids:
        for t in g.targets:
            sheet.add(["月度目标", cnames[g.id], g.name, t.label, t.done, t.target, t.unit, _ratio(t.ratio),
                       "已完成" if t.met else "未完成"])
    label = cfg.category_label(cfg.monthly.coverage_category)
    covered = [g for g in grids if g.coverage is not None]
    for g in covered:
        c = g.coverage
        sheet.add([f"{label}覆盖率", cnames[g.id], g.name, label, c.visited, c.households, "户", _ratio(c.rate),
                   _coverage_note(c.named, c.counted)])
    if len(covered) > 1:
        c = coverage_of(covered)
        sheet.add([Styled(f"{label}覆盖率"), "", Styled("合计"), label, Styled(c.visited), Styled(c.households), "户",
                   Styled(_ratio(c.rate)), _coverage_note(c.named, c.counted)])
    return sheet


def _coverage_note(named: int, counted: float) -> str:
    if named and counted:
        return f"按门牌去重 {named} 户;未注明门牌、按上报数量计 {counted:g} 户(可能含重复)"
    if counted:
        return f"均未注明门牌,按上报数量计 {counted:g} 户(可能含重复)"
    return f"按门牌去重 {named} 户" if named else "本月无走访记录"


# The person's own rules: overdue days belong to the grid, and check-in days have their columns.
PERSON_RULES = [r for r in RULES if r not in ("checkin_day", "overdue_day")]


def _people(wb: Workbook, cfg: Config, grids: list[GridMonth], cnames: dict[str, str]) -> Sheet:
    """个人积分: each member's month, points per rule, the total and the ranks."""
    counts = [f"{RULES[r][0]}({RULES[r][1]})" for r in PERSON_RULES]
    points = [f"{RULES[r][0]}得分" for r in ["checkin_day"] + PERSON_RULES]
    sheet = Sheet(wb, "个人积分", ["社区", "网格", "姓名", "角色", "应打卡(天)", "实际打卡(天)", "打卡率"] + counts + points
                  + ["积分合计", "网格内排名", "全街道排名"], formats={6: PCT_FMT}, freeze="D2")
    for g in grids:
        for pm in g.people:
            pp = g.person_points.get(pm.userid)
            if pp is None:
                continue
            by = pp.tally.by_rule
            sheet.add([cnames[g.id], g.name, pm.name, ROLE_ZH.get(pm.role, pm.role), len(pm.expected),
                       len(pm.checkin_days), _ratio(rate_of(len(pm.checkin_days), len(pm.expected)))]
                      + [int(by[r][0]) if r in by else None for r in PERSON_RULES]
                      + [_pts(by[r][1]) if r in by else None for r in ["checkin_day"] + PERSON_RULES]
                      + [_pts(pp.total), pp.grid_rank, pp.rank])
    return sheet


def _entries(wb: Workbook, data: MonthData, grids: list[GridMonth], unlisted: bool) -> Sheet:
    """积分明细: the entries of one person (or grid), day and rule on one row with the ids of the
    records that earned them ("R12、R13、R14"), so every point leads back to its record and the
    sheet stays readable (a street's month is some 40,000 entries, a fifth as many rows)."""
    sheet = Sheet(wb, "积分明细", ["日期", "网格", "姓名", "规则", "数量", "分值", "记录编号", "说明"], freeze="B2")
    names = {g.id: g.name for g in grids}
    people = data.standings.people
    row: list | None = None
    key = None
    # The street's ledger also keeps entries of grids no longer configured (or none).
    for e in data.standings.entries if unlisted else data.entries_of(names):
        if e.grid not in names and not (unlisted and e.grid not in data.grids):
            continue
        k = (e.day, e.grid, e.userid, e.rule, e.note)
        if k == key and row is not None:
            row[4] += 1
            row[5] += e.points
            row[6].append(e.record)
            continue
        if row is not None:
            sheet.add(_entry_row(row))
        key = k
        note = e.note if e.userid is None or e.userid in people else \
            "不在网格名单中,不参与排名" + (f";{e.note}" if e.note else "")
        row = [e.day, names.get(e.grid, e.grid), "(网格)" if e.userid is None else e.name, e.label, 1, e.points,
               [e.record], note]
    if row is not None:
        sheet.add(_entry_row(row))
    return sheet


def _entry_row(row: list) -> list:
    return [*row[:6], "、".join(row[6]), row[7]]


def _honours(wb: Workbook, cfg: Config, grids: list[GridMonth]) -> Sheet:
    h = honours(cfg, grids)
    sheet = Sheet(wb, "红黑榜", ["榜单", "对象", "名称", "积分", "理由"], freeze="A2")
    for kind, who, items in (("红榜", "网格", h.red_grids), ("红榜", "个人", h.red_people),
                             ("黑榜", "网格", h.black_grids),
                             ("黑榜", "个人", h.black_people if cfg.monthly.black_list_people else [])):
        for x in items:
            sheet.add([kind, who, x.name + (f"({x.grid})" if x.grid else ""), x.points, x.reason])
    if h.empty:
        sheet.add(["—", "", "参与排名的网格较少或积分相同,本月不设红黑榜", "", ""])
    return sheet


def _campaign(wb: Workbook, data: MonthData, grids: list[GridMonth]) -> Sheet:
    """迎检每日: every day of the campaign period, each grid's rate and the scope's."""
    sheet = Sheet(wb, "迎检每日", ["迎检", "日期", "应打卡(人)", "实际打卡(人)", "打卡率"] + [g.name for g in grids],
                  formats={i: PCT_FMT for i in range(4, 5 + len(grids))}, freeze="C2")
    for c, days in data.campaigns:
        total = day_rates(data, grids, days)
        per_grid = [day_rates(data, [g], days) for g in grids]
        for i, (d, n, e) in enumerate(total):
            sheet.add([c.name, d, e, n, _ratio(n / e if e else None)]
                      + [_ratio(pg[i][1] / pg[i][2] if pg[i][2] else None) for pg in per_grid])
    return sheet
