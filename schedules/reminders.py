"""Daily jobs for the grid groups: the morning reminder, the check-in nudge and the evening
escalation to grid leaders. They run on workdays only; on a rest day they send nothing and
say so in their result.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from datetime import date, datetime, timedelta

from bot.clock import iso_week, zh_date
from bot.config import Config, Grid
from bot.context import Bot
from bot.problem_ledger import PENDING, days_overdue, open_problems, short
from bot.records import fmt_qty
from bot.workdays import is_workday
from bot.attendance import common_unit, grid_day, repeated_misses, zh_day
from bot.leave_records import leave_until

MAX_PROBLEMS_LISTED = 5
TURN_EVERY = 20  # grids a job handles between two turns of the event loop
TARGETS_FROM_WEEKDAY = 2  # Wednesday: early in the week a shortfall is just the calendar


async def in_turns(items: Iterable) -> AsyncIterator:
    """The items, letting the event loop run every TURN_EVERY of them. A job over a district's
    thousand grids takes most of a second; callbacks arriving meanwhile are answered between
    turns instead of after the whole job (WeCom gives up on an answer after 5 seconds)."""
    for i, item in enumerate(items):
        if i and i % TURN_EVERY == 0:
            await asyncio.sleep(0)
        yield item


def local(bot: Bot, at: datetime) -> datetime:
    return at.astimezone(bot.config.tz) if at.tzinfo else at.replace(tzinfo=bot.config.tz)


def rest_day_result(bot: Bot, day: date) -> str | None:
    """The job's result when `day` is not a workday (nothing is sent), else None."""
    if is_workday(day, bot.config.calendar):
        return None
    return f"{zh_day(day)}不是工作日,不发送提醒。"


def push_grids(cfg: Config) -> list[Grid]:
    """Grids that can be pushed to: with a robot webhook (the emulator serves every grid), or
    through the AI bot's long connection, which takes pushes to groups that talked to it."""
    by_aibot = cfg.aibot.enabled and cfg.aibot.mode == "websocket" and cfg.aibot.proactive_push
    return [g for g in cfg.grids if g.robot_webhook or by_aibot or cfg.wecom.mode == "emulator"]


# --- problems (shared with the weekly tally) ------------------------------------------------

def overdue_days(problem: dict, at: datetime) -> int:
    """Whole days past the deadline as the problems module counts them (DESIGN: 47 hours late is
    "逾期1天"), at least 1 once overdue; 0 if not overdue."""
    deadline = problem.get("deadline")
    if not deadline or at.timestamp() <= deadline or problem.get("status", "open") != "open":
        return 0
    return max(1, days_overdue(problem, at.timestamp()))


def problem_line(p: dict, at: datetime, tz) -> str:
    late = overdue_days(p, at)
    if p.get("status") == PENDING:
        when = "已整改,待核查"
    elif late:
        when = f"已逾期{late}天"
    elif p.get("deadline"):
        when = f"{zh_date(datetime.fromtimestamp(p['deadline'], tz))}到期"
    else:
        when = "未定期限"
    return f"#{p['id']} {short(p.get('text'), 18)}({when})"


# --- daily reminder -------------------------------------------------------------------------


def previous_workday(cfg: Config, day: date) -> date:
    """The last workday before `day` (yesterday if no workday is found within two weeks)."""
    d = day - timedelta(days=1)
    for _ in range(14):
        if is_workday(d, cfg.calendar):
            return d
        d -= timedelta(days=1)
    return day - timedelta(days=1)


def _yesterday_line(bot: Bot, grid_id: str, day: date, today: date) -> str:
    cfg, store = bot.config, bot.store
    # From the store's day index: the grid's counted reports of that work day, summed once.
    week = iso_week(day)
    store.ensure(week, "reports")
    reports = store.days.day_reports(week, grid_id, day.isoformat())
    if reports is not None and reports.reports:
        order = {c.id: i for i, c in enumerate(cfg.category_list)}
        sums = sorted(reports.totals.items(), key=lambda kv: (order.get(kv[0][0], 99), kv[0][1]))
        work = f"上报{len(reports.reports)}条," + "、".join(
            f"{cfg.category_label(c)} {fmt_qty(q)}{u}" for (c, u), q in sums)
    else:
        work = "暂无工作上报"
    att = grid_day(cfg, store, grid_id, day)
    if is_workday(day, cfg.calendar):
        expected = len(att.people) - len(att.on_leave)
        checkin = f"打卡 {len(att.present)}/{expected}人"
    else:
        checkin = f"打卡 {len(att.present)}人" if att.present else ""
    label = "昨日" if day == today - timedelta(days=1) else "上个工作日"
    return f"{label}({zh_date(day)})本网格:{work}" + (f";{checkin}" if checkin else "")


def target_lines(bot: Bot, grid: Grid, day: date) -> list[str]:
    """From Wednesday on, what is left of the grid's weekly targets (reports up to `day`)."""
    if not grid.targets or day.weekday() < TARGETS_FROM_WEEKDAY:
        return []
    cfg, store = bot.config, bot.store
    week = iso_week(day)
    done: dict[str, float] = {}
    store.ensure(week, "reports")
    for work_date, reports in store.days.report_days(week, grid.id).items():
        if (work_date or "") <= day.isoformat():
            for (cat, _unit), q in reports.totals.items():
                done[cat] = done.get(cat, 0) + q
    lines = []
    for cat, target in grid.targets.items():
        unit = common_unit(store, week, cat, grid.id)
        label = cfg.category_label(cat)
        left = target - done.get(cat, 0)
        if left > 0:
            lines.append(f"本周{label}还差{fmt_qty(left)}{unit}")
        else:
            lines.append(f"本周{label}已完成目标({fmt_qty(target)}{unit})")
    return lines


def reminder_text(bot: Bot, grid: Grid, at: datetime) -> str:
    cfg = bot.config
    day = at.date()
    lines = [f"【今日工作提醒】{zh_day(day)}"]
    if cfg.reminders.focus.strip():
        lines.append(f"今日重点:{cfg.reminders.focus.strip()}")
    # On a Monday (or after a holiday) the last workday says more than an empty Sunday.
    lines.append(_yesterday_line(bot, grid.id, previous_workday(cfg, day), day))
    probs = open_problems(bot.store, grid.id)
    if probs:
        shown = ";".join(problem_line(p, at, cfg.tz) for p in probs[:MAX_PROBLEMS_LISTED])
        more = f"等{len(probs)}项" if len(probs) > MAX_PROBLEMS_LISTED else ""
        lines.append(f"待整改问题{len(probs)}项:{shown}{more}")
    lines += target_lines(bot, grid, day)
    lines.append("请大家按时拍照打卡,及时上报工作。")
    return "\n".join(lines)


async def daily_reminder(bot: Bot, at: datetime) -> str | None:
    at = local(bot, at)
    if (skip := rest_day_result(bot, at.date())) is not None:
        return skip
    grids = push_grids(bot.config)
    async for g in in_turns(grids):
        bot.transport.push_text(g.id, reminder_text(bot, g, at))
    return f"已向{len(grids)}个网格群发送早间提醒。"


# --- check-in nudge -------------------------------------------------------------------------


def nudge_text(names: list[str], at: datetime, deadline: str) -> str:
    who = " ".join(f"@{n}" for n in names)
    return f"【今日打卡提醒】截至{at:%H:%M},尚未打卡:{who},请于{deadline}前拍照打卡。"


async def checkin_nudge(bot: Bot, at: datetime) -> str | None:
    at = local(bot, at)
    day = at.date()
    if (skip := rest_day_result(bot, day)) is not None:
        return skip
    cfg = bot.config
    pushed, people = 0, 0
    async for g in in_turns(push_grids(cfg)):
        missing = grid_day(cfg, bot.store, g.id, day).missing
        if not missing:
            continue  # everyone is in: a push would only be noise
        bot.transport.push_text(g.id, nudge_text([p.name for p in missing], at, cfg.reminders.nudge_deadline),
                                mentioned=[p.userid for p in missing])
        pushed += 1
        people += len(missing)
    if not pushed:
        return "所有网格均已打卡,未发送提醒。"
    return f"已在{pushed}个网格群提醒{people}人打卡。"


# --- escalation -----------------------------------------------------------------------------


def escalation_text(bot: Bot, grid: Grid, day: date, at: datetime, streaks: list[tuple[str, str, int]]) -> str | None:
    att = grid_day(bot.config, bot.store, grid.id, day)
    if not att.missing:
        return None
    expected = len(att.people) - len(att.on_leave)
    lines = [f"【未打卡情况】{zh_day(day)} {grid.name}截至{at:%H:%M}仍有{len(att.missing)}人未打卡"
             f"(应打卡{expected}人):" + "、".join(p.name for p in att.missing)]
    if streaks:
        lines.append("连续未打卡:" + "、".join(f"{name}({n}个工作日)" for _, name, n in streaks))
    if att.on_leave:
        tz = bot.config.tz
        lines.append("请假:" + "、".join(
            f"{p.name}(至{zh_date(leave_until(bot.store, p.userid, day, tz) or day)})" for p in att.on_leave))
    lines.append("请督促尽快补拍打卡。")
    return "\n".join(lines)


async def escalation(bot: Bot, at: datetime) -> str | None:
    at = local(bot, at)
    day = at.date()
    if (skip := rest_day_result(bot, day)) is not None:
        return skip
    cfg = bot.config
    told = 0
    async for g in in_turns(cfg.grids):
        text = escalation_text(bot, g, day, at, repeated_misses(bot, day, grids=[g]).get(g.id, []))
        if text is None:
            continue
        leaders = cfg.grid_leaders(g.id)
        if not leaders:
            continue
        bot.transport.send_text([p.userid for p in leaders], text)
        told += len(leaders)
    if not told:
        return "无需告知网格长:各网格均已打卡(或未配置网格长)。"
    return f"已告知{told}位网格长未打卡情况。"

