"""The weekly tally (周通报): each grid group gets last week's numbers and its rank.

Runs whatever the calendar says (a Monday after a holiday still gets last week's bulletin).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import datetime, timedelta

from bot.clock import iso_week, week_bounds, zh_date
from bot.config import Config
from bot.context import Bot
from bot.records import category_lines
from bot.attendance import GridWeek, PersonWeek, WeekStats, grid_week_stats, pct
from bot.problem_ledger import open_problems
from schedules.reminders import local, overdue_days, push_grids

MAX_OVERDUE_LISTED = 5


def person_part(p: PersonWeek) -> str:
    if p.expected_days == 0:
        return f"{p.name} 全周请假" if p.leave_days else f"{p.name} —"
    leave = f",请假{p.leave_days}天" if p.leave_days else ""
    return f"{p.name} {pct(p.rate)}({p.checkin_days}/{p.expected_days}天{leave})"


def tally_text(cfg: Config, stats: WeekStats, g: GridWeek, problems: list[dict], at: datetime,
               recurred: list[dict] = ()) -> str:
    monday, sunday = week_bounds(stats.week)
    week_no = int(stats.week.split("-W")[1])
    scope = "全街道" if cfg.bot.street else "全部网格"
    lines = [f"【{g.name} 第{week_no}周通报】{zh_date(monday)}—{zh_date(sunday)}"]
    place = f"{scope}{'并列' if g.tied else ''}第{g.rank}/{g.of}"
    head = [f"打卡率 {pct(g.rate)}({place})" if g.rate is not None
            else f"打卡率 —(本周无应打卡工作日,{place})", f"上报 {g.reports}条"]
    head += [f"{label} {qty}" for label, qty in category_lines(cfg, g.totals)]
    lines.append(" · ".join(head))
    rest = [f"打卡 {g.rest_checkins} 次" if g.rest_checkins else "",
            f"上报 {g.rest_reports} 条" if g.rest_reports else ""]
    if any(rest):
        # Work on a weekend or holiday is shown, never lost, and never changes the rate.
        lines.append("休息日" + "、".join(r for r in rest if r) + "(不计入打卡率)")
    if g.people:
        lines.append("个人打卡:" + "、".join(person_part(p) for p in g.people))
    overdue = [(p, overdue_days(p, at)) for p in problems]
    overdue = [(p, n) for p, n in overdue if n]
    if not problems:
        lines.append("无待整改问题")
    elif not overdue:
        lines.append(f"待整改问题 {len(problems)}项,均未逾期")
    else:
        shown = "、".join(f"#{p['id']}(逾期{n}天)" for p, n in overdue[:MAX_OVERDUE_LISTED])
        more = f"等{len(overdue)}项" if len(overdue) > MAX_OVERDUE_LISTED else ""
        lines.append(f"待整改问题 {len(problems)}项,其中逾期未整改 {len(overdue)}项:{shown}{more}")
    if recurred:
        shown = "、".join(f"#{p['id']}(第{len(p['recurs_of']) + 1}次)" for p in recurred[:MAX_OVERDUE_LISTED])
        more = f"等{len(recurred)}项" if len(recurred) > MAX_OVERDUE_LISTED else ""
        lines.append(f"反弹问题 {len(recurred)}项(整治后又出现):{shown}{more}")
    return "\n".join(lines)


def recurred_in(store, grid_id: str | None, week: str, tz) -> list[dict]:
    """Problems registered in `week` in the grid (every grid: None) that recur at a place fixed
    lately (反弹)."""
    monday, sunday = week_bounds(week)
    return sorted((p for p in store.docs("problems", ["main"])
                   if (grid_id is None or p.get("grid") == grid_id) and p.get("recurs_of")
                   and p.get("status") != "withdrawn"
                   and monday <= datetime.fromtimestamp(p["opened_at"], tz).date() <= sunday),
                  key=lambda p: p["opened_at"])


def previous_week(at: datetime) -> str:
    return iso_week(at.date() - timedelta(days=7))


def tally_texts(cfg: Config, store, week: str, grids: list, at: datetime) -> list[tuple[str, str]]:
    """(grid id, text) for each grid: a week of records and a year of problems read once, not
    once per grid (run in a thread, on a snapshot of the store)."""
    stats = grid_week_stats(store, week, cfg)
    by_grid: dict[str, list[dict]] = defaultdict(list)
    for p in open_problems(store):
        by_grid[p.get("grid")].append(p)
    recurred: dict[str, list[dict]] = defaultdict(list)
    for p in recurred_in(store, None, week, cfg.tz):
        recurred[p.get("grid")].append(p)
    return [(grid.id, tally_text(cfg, stats, stats.grids[grid.id], by_grid[grid.id], at, recurred[grid.id]))
            for grid in grids]


async def weekly_tally(bot: Bot, at: datetime) -> str | None:
    at = local(bot, at)
    cfg = bot.config
    week = previous_week(at)
    grids = push_grids(cfg)
    # Seconds of reading for a big street: off the loop, on a snapshot taken here.
    texts = await asyncio.to_thread(tally_texts, cfg, bot.store.snapshot([week]), week, grids, at)
    for grid_id, text in texts:
        bot.transport.push_text(grid_id, text)
    return f"已向{len(grids)}个网格群发送{week}周通报。"
