"""The words of the 月通报: the leaders' bulletin (markdown, four parts, in the digest's official
tone) and each grid group's own month (plain text). Pure: MonthData in, text out.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

from bot.attendance import pct
from bot.clock import zh_date
from bot.config import Config
from bot.months import month_label, zh_month
from bot.problem_ledger import short
from bot.records import category_lines, fmt_qty
from bot.scoring import RULES, fmt_points
from schedules.digest import days_late, more, pack
from schedules.month_data import (Coverage, GridMonth, MonthData, coverage_of, day_rates, points_per_member,
                                  pooled, prev_pooled, totals_of)
from schedules.month_honours import Honours, honours
from schedules.weekdata import communities_of, ordered_units, scope_name

MAX_LISTED = 10
MAX_RANKED = 12  # more grids than this: the top and bottom five, the rest in the ledger
PROBLEM_TEXT_WIDTH = 25


def bulletin_title(cfg: Config, month: str, scope: list[str] | None) -> str:
    return f"{scope_name(cfg, scope)}{month_label(month)}工作通报"


def span_text(data: MonthData) -> str:
    last = min(data.last, data.as_of.date())
    return f"{zh_date(data.first)}—{zh_date(last)}" + ("" if data.complete else "(本月尚未结束)")


def change(cur: float, prev: float, what: str = "上月") -> str:
    if not prev and not cur:
        return ""
    if not prev:
        return f"{what}无"
    d = cur - prev
    return f"与{what}持平" if not d else f"较{what}{'+' if d > 0 else '-'}{fmt_qty(abs(d))}"


def rate_change(cur: float | None, prev: float | None) -> str:
    if cur is None or prev is None:
        return ""
    d = round((cur - prev) * 100)
    return "与上月持平" if not d else f"较上月{'+' if d > 0 else '-'}{abs(d)}个百分点"


def points_change(cur: float | None, prev: float | None) -> str:
    if cur is None or prev is None:
        return ""
    d = round(cur - prev, 1)
    return "与上月持平" if not d else f"较上月{fmt_points(d, signed=True)}"


def coverage_text(cov: Coverage) -> str:
    head = f"{pct(cov.rate)}(已走访 {fmt_qty(cov.visited)}/{cov.households} 户"
    if cov.counted and cov.named:
        return head + f",其中 {cov.named} 户按门牌去重,{fmt_qty(cov.counted)} 户未注明门牌、按上报数量计)"
    if cov.counted:
        return head + ",均未注明门牌,按上报数量计,可能含重复走访)"
    return head + ",按门牌去重)"


def target_text(g: GridMonth) -> str:
    return "、".join(f"{t.label} {fmt_qty(t.done)}/{fmt_qty(t.target)}{t.unit}({round(t.ratio * 100)}%"
                     + (",已完成)" if t.met else ")") for t in g.targets)


def campaign_lines(data: MonthData, grids: list[GridMonth], *, short_days: bool = False) -> list[str]:
    out = []
    for c, days in data.campaigns:
        rates = day_rates(data, grids, days)
        span = f"{zh_date(days[0])}—{zh_date(days[-1])}" if len(days) > 1 else zh_date(days[0])
        each = "、".join(f"{d.day if short_days else zh_date(d)}{'日' if short_days else ''} "
                        f"{pct(n / e if e else None)}" for d, n, e in rates)
        out.append(f"迎检“{c.name}”期间({span},每天均为工作日)每日打卡率:{each}")
    return out


def rules_line(cfg: Config) -> str:
    w = cfg.scoring.model_dump()
    parts = [f"{RULES[r][0]}每{RULES[r][1]}{fmt_points(w[r], signed=True)}" for r in RULES if w[r]]
    return "积分规则:" + "、".join(parts) + "(逐条明细见附件台账“积分明细”表)"


def _honour_lines(h: Honours, with_people_black: bool) -> list[str]:
    lines = []
    if h.red_grids or h.red_people:
        lines.append("**红榜**")
        lines += [f"· {x.line()}" for x in h.red_grids + h.red_people]
    if h.black_grids or h.black_people:
        lines.append("**黑榜**")
        lines += [f"· {x.line()}" for x in h.black_grids + (h.black_people if with_people_black else [])]
    if not lines:
        lines.append("本月参与排名的网格较少或积分相同,不设红黑榜。")
    return lines


# --- the leaders' bulletin ------------------------------------------------------------------------

def _part_overview(cfg: Config, data: MonthData, grids: list[GridMonth]) -> list[str]:
    lines = ["**一、总体情况**"]
    checked, expected = sum(g.checkin_days for g in grids), sum(g.expected_days for g in grids)
    reports = sum(g.reports for g in grids)
    rc = rate_change(pooled(grids), prev_pooled(grids))
    ppm = points_per_member(grids)
    pc = points_change(ppm, points_per_member(grids, prev=True))
    lines.append(f"本月共上报工作 {reports} 条;打卡率 {pct(pooled(grids))}(应打卡 {expected} 人天,实际 {checked} 人天"
                 + (f",{rc}" if rc else "") + f");人均积分 {fmt_points(ppm)} 分" + (f"({pc})" if pc else "") + "。")
    totals, prev_totals = totals_of(grids), totals_of(grids, prev=True)
    keys = ordered_units(cfg, [totals, prev_totals])
    if keys:
        compare = bool(prev_totals)
        lines.append("分类工作量:" if compare else "分类工作量(上月无数据,不作比较):")
        by_cat: dict[str, list[str]] = {}
        for cat, unit in keys:
            cur, prev = totals.get((cat, unit), 0), prev_totals.get((cat, unit), 0)
            ch = change(cur, prev) if compare else ""
            by_cat.setdefault(cat, []).append(f"{fmt_qty(cur)}{unit}" + (f"({ch})" if ch else ""))
        lines += [f"· {cfg.category_label(cat)} {'、'.join(parts)}" for cat, parts in by_cat.items()]
    else:
        lines.append("本月没有上报的工作量。")
    with_targets = [g for g in grids if g.targets]
    if with_targets:
        n_all = sum(len(g.targets) for g in with_targets)
        n_met = sum(1 for g in with_targets for t in g.targets if t.met)
        if len(with_targets) <= MAX_LISTED:
            lines.append(f"月度目标完成 {n_met}/{n_all} 项:")
            lines += [f"· {g.name} {target_text(g)}" for g in with_targets]
        else:  # a street's forty grids: the count here, the shortfalls under 存在问题, the rest in the ledger
            lines.append(f"月度目标完成 {n_met}/{n_all} 项(各网格完成情况见附件台账“目标与覆盖”表)。")
    covered = [g for g in grids if g.coverage is not None]
    if covered:
        label = cfg.category_label(cfg.monthly.coverage_category)
        if len(covered) <= MAX_LISTED:
            lines.append(f"{label}覆盖率:")
            lines += [f"· {g.name} {coverage_text(g.coverage)}" for g in covered]
        else:
            lines.append(f"{label}覆盖率 {coverage_text(coverage_of(covered))};最低的5个网格:")
            lowest = sorted(covered, key=lambda g: (g.coverage.rate, g.id))[:5]
            lines += [f"· {g.name} {coverage_text(g.coverage)}" for g in lowest]
    opened = sum(len(g.opened) for g in grids)
    on_time = sum(len(g.closed_on_time) for g in grids)
    late = sum(len(g.closed_late) for g in grids)
    overdue = sum(len(g.overdue) for g in grids)
    lines.append(f"问题整改:本月新增 {opened} 项,按期销号 {on_time} 项,逾期销号 {late} 项,"
                 f"{'月末' if data.complete else '目前'}逾期未整改 {overdue} 项。")
    communities = communities_of(cfg, grids)
    if len(communities) > 1:
        lines.append("各社区:")
        for _, name, cgrids in communities:
            lines.append(f"· {name}:{len(cgrids)}个网格 {sum(len(g.people) for g in cgrids)}人,打卡率 {pct(pooled(cgrids))},"
                         f"人均积分 {fmt_points(points_per_member(cgrids))} 分,上报 {sum(g.reports for g in cgrids)} 条")
    lines += campaign_lines(data, grids)
    if data.outside_reports and len(grids) == len(data.grids):
        lines.append(f"另有领导及机关人员上报 {data.outside_reports} 条,未计入各网格。")
    return lines


def _part_ranking(cfg: Config, data: MonthData, grids: list[GridMonth], h: Honours) -> list[str]:
    lines = [f"**二、考核排名(按人均积分,全街道共{len(data.grids)}个网格)**"]
    ranked = sorted(grids, key=lambda g: (g.points.rank, g.id))
    shown = ranked if len(ranked) <= MAX_RANKED else ranked[:5] + [None] + ranked[-5:]
    for g in shown:
        if g is None:
            lines.append(f"· ……(其余{len(ranked) - 10}个网格见附件台账)")
            continue
        pc = points_change(g.per_member, g.prev_per_member)
        lines.append(f"· 第{g.points.rank}名 {g.name} 人均{fmt_points(g.per_member)}分" + (f"({pc})" if pc else "")
                     + f" · 打卡率 {pct(g.rate)} · 上报 {g.reports} 条")
    lines += _honour_lines(h, cfg.monthly.black_list_people)
    lines.append(rules_line(cfg))
    return lines


def _part_problems(cfg: Config, data: MonthData, grids: list[GridMonth]) -> list[str]:
    lines = ["**三、存在问题**"]
    threshold = cfg.digest.checkin_threshold
    low = sorted((g for g in grids if g.rate is not None and g.rate < threshold), key=lambda g: g.rate)
    if low:
        lines.append(f"· 打卡率低于{pct(threshold)}的网格:" + "、".join(f"{g.name}({pct(g.rate)})" for g in low[:MAX_LISTED])
                     + more(MAX_LISTED, len(low), "个"))
    behind = [(g, t) for g in grids for t in g.targets if not t.met]
    if behind:
        lines.append(f"· 未完成月度目标 {len(behind)} 项:" + "、".join(
            f"{g.name}{t.label}({round(t.ratio * 100)}%)" for g, t in behind[:MAX_LISTED]) + more(MAX_LISTED, len(behind)))
    overdue = sorted((p for g in grids for p in g.overdue), key=lambda p: (p.get("deadline") or 0, p.get("id", "")))
    if overdue:
        names = {g.id: g.name for g in grids}
        cut = min(data.as_of, _month_end(data))
        lines.append(f"· {'月末' if data.complete else '目前'}逾期未整改问题 {len(overdue)} 项:")
        for p in overdue[:MAX_LISTED]:
            lines.append(f"  #{p['id']} {names.get(p.get('grid'), '')} {short(p.get('text'), PROBLEM_TEXT_WIDTH)}"
                         f"(逾期{days_late(p['deadline'], cut)}天)")
        if len(overdue) > MAX_LISTED:
            lines.append(f"  ……等{len(overdue)}项")
    lost = {}
    for g in grids:
        for rule, (count, _) in g.points.tally.by_rule.items():
            if rule in ("fix_rejected", "bad_photo", "wrong_count", "overdue_day"):
                lost[rule] = lost.get(rule, 0) + count
    if lost:
        lines.append("· 扣分情况:" + "、".join(f"{RULES[r][0]} {int(lost[r])}{RULES[r][1]}" for r in RULES if r in lost))
    if len(lines) == 1:
        lines.append("本月未发现突出问题。")
    return lines


def _part_next(cfg: Config, data: MonthData, grids: list[GridMonth], h: Honours) -> list[str]:
    lines = ["**四、下一步工作要求**"]
    overdue = sum(len(g.overdue) for g in grids)
    if overdue:
        lines.append(f"· 逾期未整改的 {overdue} 项问题由所在网格限期整改销号,社区跟踪督办")
    behind = [g.name for g in grids if any(not t.met for t in g.targets)]
    if behind:
        lines.append(f"· {'、'.join(behind[:MAX_LISTED])}{more(MAX_LISTED, len(behind), '个网格')}对照月度目标查找差距,加快进度")
    if h.black_grids:
        lines.append(f"· 黑榜网格({'、'.join(x.name for x in h.black_grids)})分析原因、制定措施,下月重点督导")
    threshold = cfg.digest.checkin_threshold
    if any(g.rate is not None and g.rate < threshold for g in grids):
        lines.append(f"· 打卡率低于{pct(threshold)}的网格由网格长每日跟进")
    lines.append("· 坚持日查周评月通报,做好日督导、日整改,巩固创建成果")
    return lines


def _month_end(data: MonthData) -> datetime:
    return datetime.combine(data.last + timedelta(days=1), time(0), data.as_of.tzinfo)


def build_bulletin(cfg: Config, data: MonthData, scope_grids: list[str] | None = None, *,
                   scope: list[str] | None = None) -> dict:
    """The bulletin for one scope (None: the street). Returns the title, markdown, message parts
    and the numbers tests and the job need."""
    grids = data.grid_list(scope_grids)
    if scope is None and scope_grids is not None and set(scope_grids) != set(data.grids):
        scope = list(scope_grids)
    title = bulletin_title(cfg, data.month, scope)
    h = honours(cfg, grids)
    people = sum(len(g.people) for g in grids)
    head = (f"# {title}\n> {span_text(data)} · {len(data.workdays)}个工作日 · {len(grids)}个网格 · {people}人")
    sections = [head, "\n".join(_part_overview(cfg, data, grids)), "\n".join(_part_ranking(cfg, data, grids, h)),
                "\n".join(_part_problems(cfg, data, grids)), "\n".join(_part_next(cfg, data, grids, h))]
    return {"title": title, "month": data.month, "markdown": "\n\n".join(sections), "parts": pack(sections),
            "grids": [g.id for g in grids], "honours": h, "rate": pooled(grids),
            "points_per_member": points_per_member(grids)}


# --- a grid group's own month ---------------------------------------------------------------------

def grid_text(cfg: Config, data: MonthData, g: GridMonth, street: Honours) -> str:
    scope = "全街道" if cfg.bot.street else "全部网格"
    lines = [f"【{g.name} {zh_month(data.month)}通报】{span_text(data)} · {len(data.workdays)}个工作日"]
    rc = rate_change(g.rate, g.prev_rate)
    pc = points_change(g.per_member, g.prev_per_member)
    lines.append(f"打卡率 {pct(g.rate)}({g.checkin_days}/{g.expected_days}人天" + (f",{rc}" if rc else "") + ")"
                 f" · 人均积分 {fmt_points(g.per_member)}分({scope}第{g.points.rank}/{g.points.of}名"
                 + (f",{pc}" if pc else "") + f") · 上报 {g.reports}条")
    work = category_lines(cfg, g.totals)
    lines.append("分类工作量:" + ("、".join(f"{label} {qty}" for label, qty in work) if work else "本月无"))
    if g.targets:
        lines.append("月度目标:" + target_text(g))
    if g.coverage is not None:
        lines.append(f"{cfg.category_label(cfg.monthly.coverage_category)}覆盖率 {coverage_text(g.coverage)}")
    lines.append(f"问题:新增 {len(g.opened)}项,按期销号 {len(g.closed_on_time)}项,逾期销号 {len(g.closed_late)}项,"
                 f"逾期未整改 {len(g.overdue)}项" + (":" + "、".join(f"#{p['id']}" for p in g.overdue[:5])
                                                  + more(5, len(g.overdue)) if g.overdue else ""))
    lines += campaign_lines(data, [g], short_days=True)
    mine = sorted(g.person_points.values(), key=lambda p: (p.grid_rank, p.userid))
    if mine:
        lines.append("个人积分:" + "、".join(f"{p.name} {fmt_points(p.total)}分" for p in mine[:MAX_LISTED])
                     + more(MAX_LISTED, len(mine), "人"))
    if street.red_grids or street.red_people:
        lines.append(f"{scope}红榜:" + "、".join(x.short() for x in street.red_grids + street.red_people))
    black = street.black_grids + (street.black_people if cfg.monthly.black_list_people else [])
    if black:
        lines.append(f"{scope}黑榜:" + ";".join(x.line() for x in black))
    lines.append("发送“我的积分”查看个人积分和排名。")
    return "\n".join(lines)
