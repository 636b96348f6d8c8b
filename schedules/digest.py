"""The leaders' weekly digest (领导周报): markdown in the three-part structure, a chart, the ledger.

Each leader gets their scope (communities or grids; everything when none is set), rolled up
grid → community → street. `build_digest` is pure (store in, dict out) so tests can check the
numbers without sending anything; the job only adds the sending.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from loguru import logger

from bot.clock import week_bounds, zh_date
from bot.config import Config
from bot.context import Bot
from bot.records import fmt_qty
from bot.store import Store
from bot.transport import TEXT_LIMIT, split_text
from bot.attendance import pct
from bot.ladder import topped
from bot.oversight import LEVEL_ZH
from bot.problem_ledger import short
from schedules.weekdata import (CHECKIN_ISSUES, ISSUE_ZH, REPORT_ISSUES, GridWeek, Rollup, WeekData,
                       collect_week, communities_of, ordered_units, rollup, scope_grid_ids)
from schedules.ledger_parts import send_ledger
from schedules.week_titles import digest_title, previous_week, week_number

MAX_LISTED = 10  # longer lists end with "等N项"; the ledger has everything
MAX_RANKED = 12  # more grids than this: show the top and bottom five
PROBLEM_TEXT_WIDTH = 25  # a problem's text in a list; a longer one is cut to 24 characters and "…"


def change(cur: float, prev: float) -> str:
    if not prev and not cur:
        return ""
    if not prev:
        return "上周无"
    d = cur - prev
    return "与上周持平" if not d else f"较上周{'+' if d > 0 else '-'}{fmt_qty(abs(d))}"


def rate_change(cur: float | None, prev: float | None) -> str:
    if cur is None or prev is None:
        return ""
    d = round((cur - prev) * 100)
    return "与上周持平" if not d else f"较上周{'+' if d > 0 else '-'}{abs(d)}个百分点"


def more(n_shown: int, n_all: int, unit: str = "项") -> str:
    return f"等{n_all}{unit}" if n_all > n_shown else ""


def days_late(deadline: float, now: datetime) -> int:
    """Whole days past the deadline, at least 1 (an hour late is "逾期1天")."""
    return max(1, int((now.timestamp() - deadline) // 86400))


def deadline_text(cfg: Config, ts: float | None) -> str:
    if not ts:
        return "未设期限"
    d = datetime.fromtimestamp(ts, cfg.tz)
    return f"{zh_date(d)} {d:%H:%M}"


# --- the three parts -----------------------------------------------------------------

def _part_work(cfg: Config, data: WeekData, total: Rollup, grids: list[GridWeek], closed: list[dict]) -> list[str]:
    lines = ["**一、本周工作开展情况**"]
    head = f"共上报工作 {total.reports} 条,有效打卡 {total.checkins} 次,打卡率 {pct(total.rate)}"
    rc = rate_change(total.rate, total.prev_rate)
    lines.append(head + (f"({rc})" if rc else "") + "。")
    keys = ordered_units(cfg, [total.totals, total.prev_totals])
    compare = bool(total.prev_totals)  # no data at all last week: say so once, not on every line
    if keys:
        lines.append("分类工作量:" if compare else "分类工作量(上周无数据,不作比较):")
        by_cat: dict[str, list[str]] = {}
        for cat, unit in keys:  # one line per category, its units side by side ("12家、3处")
            cur, prev = total.totals.get((cat, unit), 0), total.prev_totals.get((cat, unit), 0)
            ch = change(cur, prev) if compare else ""
            by_cat.setdefault(cat, []).append(f"{fmt_qty(cur)}{unit}" + (f"({ch})" if ch else ""))
        lines += [f"· {cfg.category_label(cat)} {'、'.join(parts)}" for cat, parts in by_cat.items()]
    else:
        lines.append("本周没有上报的工作量。")

    configured = [g for g in grids if g.configured]
    communities = communities_of(cfg, configured)
    apart = [g for g in grids if not g.configured and g.reports]
    if len(communities) > 1 or apart:
        lines.append("各社区:")
        for _, name, cgrids in communities:
            r = rollup(name, cgrids)
            lines.append(f"· {name}:{len(cgrids)}个网格 {r.people}人,打卡率 {pct(r.rate)},上报 {r.reports} 条")
        for g in apart:
            # Work of people outside every grid (a leader's own report) has its own line, so the
            # lines add up to the total without a phantom "0人" grid.
            lines.append(f"· {g.name}:上报 {len(g.counted_reports)} 条")

    ranked = sorted((g for g in grids if g.rank is not None), key=lambda g: g.rank)
    if ranked:
        n_all = sum(1 for g in data.grids.values() if g.rank is not None)
        lines.append(f"各网格打卡率(全街道排名,共{n_all}个网格):")
        shown = ranked if len(ranked) <= MAX_RANKED else ranked[:5] + [None] + ranked[-5:]
        for g in shown:
            if g is None:
                lines.append(f"· ……(其余{len(ranked) - 10}个网格见附件台账)")
                continue
            lines.append(f"· 第{g.rank}名 {g.name} {pct(g.rate)} · 上报 {len(g.counted_reports)} 条")

    highlights = _highlights(cfg, grids, closed)
    if highlights:
        lines.append("工作亮点:")
        lines += [f"· {h}" for h in highlights]
    return lines


def _highlights(cfg: Config, grids: list[GridWeek], closed: list[dict]) -> list[str]:
    out = []
    people = [p for g in grids for p in g.people]
    names = {g.id: g.name for g in grids}
    # The three categories with the most work, each with whoever did the most of it.
    cat_totals: dict[tuple[str, str], float] = {}
    for g in grids:
        for k, v in g.totals.items():
            cat_totals[k] = cat_totals.get(k, 0) + v
    for (cat, unit), _ in sorted(cat_totals.items(), key=lambda kv: -kv[1])[:3]:
        best = max(people, key=lambda p: p.totals.get((cat, unit), 0), default=None)
        if best and best.totals.get((cat, unit), 0) > 0:
            out.append(f"{cfg.category_label(cat)}:{best.name}({names.get(best.grid, best.grid)})"
                       f"完成 {fmt_qty(best.totals[(cat, unit)])}{unit},居首位")
    full = [p for p in people if p.rate is not None and p.rate >= 1]
    if full:
        out.append(f"全勤打卡 {len(full)} 人")
    if closed:
        out.append(f"整改销号问题 {len(closed)} 项")
    return out


def _part_problems(cfg: Config, data: WeekData, grids: list[GridWeek], overdue: list[dict]) -> list[str]:
    lines = ["**二、存在问题**"]
    found = False
    threshold = cfg.digest.checkin_threshold
    low = [g for g in grids if g.rate is not None and g.rate < threshold]
    if low:
        found = True
        low.sort(key=lambda g: g.rate)
        lines.append(f"· 打卡率低于{pct(threshold)}的网格:" +
                     "、".join(f"{g.name}({pct(g.rate)})" for g in low[:MAX_LISTED]) +
                     more(MAX_LISTED, len(low), "个"))
    need = cfg.digest.missing_days
    missing = sorted(((p, g) for g in grids for p in g.people if len(p.missing_run) >= need),
                     key=lambda pg: (-len(pg[0].missing_run), pg[1].name, pg[0].name))
    if missing:
        found = True
        lines.append(f"· 连续{need}个工作日以上未打卡 {len(missing)} 人:")
        for p, g in missing[:MAX_LISTED]:
            run = p.missing_run
            span = zh_date(run[0]) + (f"—{zh_date(run[-1])}" if len(run) > 1 else "")
            lines.append(f"  {p.name}({g.name})连续{len(run)}天({span})")
        if len(missing) > MAX_LISTED:
            lines.append(f"  ……等{len(missing)}人,名单见附件台账")
    if overdue:
        found = True
        names = {g.id: g.name for g in grids}
        lines.append(f"· 逾期未整改问题 {len(overdue)} 项:")
        for p in overdue[:MAX_LISTED]:
            lines.append(f"  #{p['id']} {names.get(p.get('grid'), p.get('grid'))} {short(p.get('text'), PROBLEM_TEXT_WIDTH)}"
                         f"(逾期{days_late(p['deadline'], data.as_of)}天)")
        if len(overdue) > MAX_LISTED:
            lines.append(f"  ……等{len(overdue)}项")
    supervised = _supervision_lines(cfg, data, grids, overdue)
    if supervised:
        found = True
        lines += supervised
    flagged = _flag_counts(grids)
    if flagged:
        found = True
        lines.append("· 待核实记录:" + "、".join(f"{ISSUE_ZH[k]} {n}{'张' if k in CHECKIN_ISSUES else '条'}"
                                            for k, n in flagged.items()))
    if not found:
        lines.append("本周未发现突出问题。")
    return lines


def _supervision_lines(cfg: Config, data: WeekData, grids: list[GridWeek], overdue: list[dict]) -> list[str]:
    """What reached the top of the escalation ladder (bot.ladder), and the hot spots (反弹)."""
    names = {g.id: g.name for g in grids}
    lines = []
    top_p = LEVEL_ZH.get(cfg.ladder.problems[-1].notify, "") if cfg.ladder.problems else ""
    topped_p = [p for p in overdue if topped(p)]
    if topped_p:
        lines.append(f"· 已逐级督办至{top_p}仍未整改的问题 {len(topped_p)} 项:" + "、".join(
            f"#{p['id']}({names.get(p.get('grid'), p.get('grid'))})" for p in topped_p[:MAX_LISTED])
            + more(MAX_LISTED, len(topped_p)))
    top_c = LEVEL_ZH.get(cfg.ladder.checkins[-1].notify, "") if cfg.ladder.checkins else ""
    topped_c = [d for d in data.topped_checkins if d.get("grid") in names]
    if topped_c:
        lines.append(f"· 连续未打卡已督办至{top_c} {len(topped_c)} 人:" + "、".join(
            f"{d['name']}({names[d['grid']]})" for d in topped_c[:MAX_LISTED]) + more(MAX_LISTED, len(topped_c), "人"))
    spots = [s for s in data.hot_spots if s[-1].get("grid") in names]
    if spots:
        lines.append(f"· 反弹热点(同一地点{cfg.problems.recurrence_days}天内同类问题{cfg.problems.hot_spot_count}次以上)"
                     f"{len(spots)} 处:")
        for spot in spots[:MAX_LISTED]:
            last = spot[-1]
            lines.append(f"  {short(last.get('text'), PROBLEM_TEXT_WIDTH)}({names[last['grid']]},{len(spot)}次:"
                         + "、".join(f"#{p['id']}" for p in spot) + ")")
        if len(spots) > MAX_LISTED:
            lines.append(f"  ……等{len(spots)}处")
    return lines


def _flag_counts(grids: list[GridWeek]) -> dict[str, int]:
    counts = {k: 0 for k in CHECKIN_ISSUES + REPORT_ISSUES}
    for g in grids:
        for c in g.checkins:
            for f in c.get("flags", []):
                if f in CHECKIN_ISSUES:
                    counts[f] += 1
        for r in g.reports:
            # Withdrawn, or already verified by the grid leader (核实): no longer waiting.
            if r.get("status") == "withdrawn" or not r.get("unconfirmed") or r.get("confirm_rejected"):
                continue
            for f in r.get("flags", []):
                if f in REPORT_ISSUES:
                    counts[f] += 1
    return {k: n for k, n in counts.items() if n}


def _part_next(cfg: Config, data: WeekData, grids: list[GridWeek], still_open: list[dict]) -> list[str]:
    lines = ["**三、下一步工作重点**"]
    names = {g.id: g.name for g in grids}
    if still_open:
        lines.append(f"· 督促整改未销号问题 {len(still_open)} 项:")
        now = data.as_of.timestamp()
        for p in still_open[:MAX_LISTED]:
            waiting = p.get("status") == "pending_check"  # fixed, its check still to come
            late = (p.get("deadline") or now) < now and not waiting
            lines.append(f"  #{p['id']} {names.get(p.get('grid'), p.get('grid'))} {short(p.get('text'), PROBLEM_TEXT_WIDTH)}"
                         f",期限{deadline_text(cfg, p.get('deadline'))}"
                         f"{'(已逾期)' if late else '(已整改,待核查)' if waiting else ''}")
        if len(still_open) > MAX_LISTED:
            lines.append(f"  ……等{len(still_open)}项")
    behind = []
    for g in grids:
        for cat, target in g.targets.items():
            done = sum(q for (c, _), q in g.totals.items() if c == cat)
            if done < target:
                unit = next((u for (c, u) in g.totals if c == cat), "")
                behind.append(f"  {g.name} {cfg.category_label(cat)} {fmt_qty(done)}/{fmt_qty(target)}{unit}"
                              f"(完成{done / target * 100:.0f}%)")
    if behind:
        lines.append(f"· 未完成周目标 {len(behind)} 项,需加快进度:")
        lines += behind[:MAX_LISTED]
        if len(behind) > MAX_LISTED:
            lines.append(f"  ……等{len(behind)}项")
    threshold = cfg.digest.checkin_threshold
    if any(g.rate is not None and g.rate < threshold for g in grids):
        lines.append(f"· 提高打卡率,低于{pct(threshold)}的网格由网格长每日跟进")
    if len(lines) == 1:
        lines.append("保持各项工作常态化开展,做好日督导、日整改。")
    return lines


# --- assembling ----------------------------------------------------------------------

def pack(sections: list[str], limit: int = TEXT_LIMIT) -> list[str]:
    """Messages of at most `limit` bytes: whole sections together where they fit, an oversize
    section split on its lines (WeCom refuses app markdown over 2048 bytes)."""
    out: list[str] = []
    for section in sections:
        for s in split_text(section, limit):
            if out and len((out[-1] + "\n\n" + s).encode()) <= limit:
                out[-1] += "\n\n" + s
            else:
                out.append(s)
    return out


def build_digest(cfg: Config, store: Store | None, week: str, scope_grids: list[str] | None = None, *,
                 scope: list[str] | None = None, data: WeekData | None = None,
                 as_of: datetime | None = None) -> dict:
    """The digest for one scope. `scope_grids` None means the whole street; `scope` (the
    leader's Person.scope) only names it. Returns the markdown, its message parts, and numbers."""
    if data is None:
        data = collect_week(cfg, store, week, as_of)
    ids = scope_grid_ids(cfg, None) if scope_grids is None else list(scope_grids)
    grids = data.grid_list(ids)
    if scope_grids is None:
        grids += [g for g in data.grids.values() if not g.configured]
    if scope is None and set(ids) != {g.id for g in cfg.grids}:
        scope = ids  # named by its grids
    title = digest_title(cfg, data.week, scope)
    total = rollup(title, grids)
    gids = {g.id for g in grids}
    problems = data.problems_of(gids)
    closed = [p for p in problems if data.closed_in_week(p)]
    now = data.as_of.timestamp()
    still_open = sorted((p for p in problems if data.open_at(p, now)),
                        key=lambda p: (p.get("deadline") or 0, p.get("id", "")))
    overdue = [p for p in still_open if data.overdue(p)]

    configured_grids = [g for g in grids if g.configured]
    head = (f"# {title}\n> {zh_date(data.monday)}—{zh_date(data.sunday)} · {len(data.workdays)}个工作日"
            f" · {len(configured_grids)}个网格 · {total.people}人")
    sections = [head,
                "\n".join(_part_work(cfg, data, total, grids, closed)),
                "\n".join(_part_problems(cfg, data, grids, overdue)),
                "\n".join(_part_next(cfg, data, grids, still_open))]
    markdown = "\n\n".join(sections)
    return {
        "title": title,
        "week": data.week,
        "markdown": markdown,
        "parts": pack(sections),
        "grids": [g.id for g in grids],
        "people": total.people,
        "rate": total.rate,
        "prev_rate": total.prev_rate,
        "reports": total.reports,
        "checkins": total.checkins,
        "totals": total.totals,
        "prev_totals": total.prev_totals,
        "grid_rates": {g.id: g.rate for g in grids},
        "ranks": {g.id: g.rank for g in grids},
        "below_threshold": [g.id for g in grids if g.rate is not None and g.rate < cfg.digest.checkin_threshold],
        "missing": {p.userid: len(p.missing_run) for g in grids for p in g.people
                    if len(p.missing_run) >= cfg.digest.missing_days},
        "overdue": [p["id"] for p in overdue],
        "ladder_top": [p["id"] for p in overdue if topped(p)],
        "hot_spots": [[p["id"] for p in s] for s in data.hot_spots if s[-1].get("grid") in gids],
        "open_problems": [p["id"] for p in still_open],
        "closed_problems": [p["id"] for p in closed],
        "flags": _flag_counts(grids),
        "data": data,
    }


async def weekly_digest(bot: Bot, at: datetime) -> str | None:
    cfg = bot.config
    leaders = cfg.people_with_role("leader")
    if not leaders:
        return "没有配置领导,未发送周报"
    week = previous_week(at.astimezone(cfg.tz).date())
    # Everything below reads a week or more of records and builds documents: seconds for a big
    # street. It runs in a thread on a snapshot taken here, on the loop, so callbacks are not
    # held up and the digest sees one moment of the store (not half of a later update).
    view = bot.store.snapshot([week, previous_week(week_bounds(week)[0])])
    data = await asyncio.to_thread(collect_week, cfg, view, week, at)
    built: dict[tuple[str, ...], tuple[dict, bytes | None, list | None]] = {}
    failed = too_big = False
    for leader in leaders:
        # No scope: the whole street, including records of grids since removed from the config.
        key = tuple(leader.scope)
        if key not in built:
            built[key] = await asyncio.to_thread(build_for_scope, cfg, data, week, leader.scope)
        digest, png, ledger = built[key]
        for part in digest["parts"]:
            bot.transport.send_markdown(leader.userid, part)
        if png:
            bot.transport.send_image(leader.userid, png, f"{digest['title']}.png")
        # Over WeCom's 20 MB a ledger comes in parts, the leader told why; never a doomed upload.
        if ledger and not send_ledger(bot.transport, leader.userid, ledger, f"第{week_number(week)}周工作台账"):
            too_big = True
        if not (png and ledger):
            failed = True
    note = (",部分附件生成失败,详见日志" if failed else "") + (",部分台账文件超过企业微信大小上限未能发送,已告知领导"
                                                          if too_big else "")
    return f"第{week_number(week)}周工作简报已发送给 {len(leaders)} 位领导{note}"


def build_for_scope(cfg: Config, data: WeekData, week: str, scope: list[str]) -> tuple[dict, bytes | None, list | None]:
    """One scope's digest, chart and ledger, from the week's data alone (run in a thread). A
    failed attachment must not cost the leaders their digest: they get what could be built."""
    # matplotlib and openpyxl take about half a second to import: loaded when the digest is
    # built, not whenever the bot starts (the package loads this module).
    from schedules.chart import render_chart
    from schedules.ledger import ledger_files

    ids = scope_grid_ids(cfg, scope) if scope else None
    digest = build_digest(cfg, None, week, ids, scope=scope, data=data)
    grids = data.grid_list(digest["grids"])
    png = _attempt("chart", render_chart, cfg, data, grids, digest["title"])
    ledger = _attempt("ledger", ledger_files, cfg, data, ids, scope)
    return digest, png, ledger


def _attempt(what: str, fn, *args):
    try:
        return fn(*args)
    except Exception:
        logger.exception("weekly digest: building the {} failed", what)
        return None
