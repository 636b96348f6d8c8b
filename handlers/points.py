"""我的积分 and 积分规则: a person's points this month (or another), where they came from, and
their rank; the rules as the config sets them. Points are bot.scoring's, the same the monthly
bulletin ranks by."""

from __future__ import annotations

import re

from bot.clock import zh_date
from bot.context import Context
from bot.events import TextMessage
from bot.months import month_bounds, month_of, previous_month, zh_month
from bot.router import Router
from bot.scoring import RULES, fmt_points, month_standings

router = Router("points")

# 我的积分, 积分, 本月积分, 上月积分, 10月积分, 我的10月积分, 我的积分 10月
MY_POINTS = re.compile(r"^(?:我的)?(?:(?P<rel>本月|上月)|(?P<n1>\d{1,2})\s*月份?)?的?积分(?:\s*(?P<n2>\d{1,2})\s*月份?)?[??]?$")
RULES_CMD = re.compile(r"^(?:积分规则|积分办法|计分规则|积分怎么算)[??]?$")


def _points_filter(event, ctx) -> dict | bool:
    m = MY_POINTS.match(event.content.strip())
    if not m:
        return False
    return {"which": "last" if m.group("rel") == "上月" else "", "number": m.group("n1") or m.group("n2") or ""}


def wanted_month(ctx: Context, which: str, number: str) -> str | None:
    """The month asked for: this month, last month, or 'N月' (this year's, or last year's if N
    is still to come); None for a month number that does not exist."""
    today = ctx.sent_on
    if which == "last":
        return previous_month(month_of(today))
    if not number:
        return month_of(today)
    n = int(number)
    if not 1 <= n <= 12:
        return None
    year = today.year if n <= today.month else today.year - 1
    return f"{year:04d}-{n:02d}"


@router.on(TextMessage, filter=_points_filter)
async def on_my_points(event: TextMessage, ctx: Context, which: str = "", number: str = "") -> None:
    cfg, person = ctx.config, ctx.person
    month = wanted_month(ctx, which, number)
    if month is None:
        ctx.reply("月份写得不对,请发送“我的积分”(本月)、“上月积分”或“我的积分 10月”。")
        return
    first, last = month_bounds(month)
    now = ctx.sent_at
    running = first <= now.date() <= last
    # Runs on the loop: about 0.2 s for a street of 400 with 40,000 records (bench_monthly).
    points, _, _ = month_standings(cfg, ctx.store, month, now if running else None, ordered=False)
    when = f"截至{zh_date(now)} {now:%H:%M}" if running else "全月"
    me = points.people.get(person.userid)
    if me is None:
        ctx.reply(_grids_view(ctx, points, month, when))
        return
    grid = points.grids[me.grid]
    lines = [f"【我的积分 {zh_month(month)}】{when}"]
    if not me.tally.by_rule:
        lines.append("本月还没有积分记录。拍照打卡、上报工作、登记和整改问题都会计分,发送“积分规则”查看计分办法。")
        ctx.reply("\n".join(lines))
        return
    lines.append(f"共 {fmt_points(me.total)} 分 · {grid.name}第{me.grid_rank}/{me.grid_of}名 · 全街道第{me.rank}/{me.of}名")
    lines += [f"· {label} {count}{unit} {fmt_points(pts, signed=True)}分" for label, count, unit, pts in me.tally.lines()]
    lines.append(f"{grid.name}人均 {fmt_points(grid.per_member)} 分,全街道网格第{grid.rank}/{grid.of}名")
    lines.append("每一分都对应一条记录(月度台账“积分明细”表可查);发送“积分规则”查看计分办法。")
    ctx.reply("\n".join(lines))


def _grids_view(ctx: Context, points, month: str, when: str) -> str:
    """For someone outside every grid (a leader, an admin): the grids they oversee, by points per member."""
    person = ctx.person
    wanted = set(person.scope)
    grids = [g for g in points.ranked_grids()
             if not wanted or g.grid in wanted or (g.community and g.community in wanted)]
    lines = [f"【网格积分 {zh_month(month)}】{when}",
             "个人积分只计网格员和网格长;以下是各网格的人均积分(全街道排名):"]
    lines += [f"· 第{g.rank}名 {g.name} 人均{fmt_points(g.per_member)}分" for g in grids[:20]]
    if len(grids) > 20:
        lines.append(f"……共{len(grids)}个网格,详见月度台账")
    return "\n".join(lines)


@router.on(TextMessage, filter=lambda e, ctx: bool(RULES_CMD.match(e.content.strip())))
async def on_rules(event: TextMessage, ctx: Context) -> None:
    w = ctx.config.scoring.model_dump()
    explain = {
        "checkin_day": "每个应打卡的工作日有效打卡一次(请假、休息日不计)",
        "report": "每条计入统计的工作上报(撤回的、待核实的不计)",
        "problem_found": "每登记一个问题(计给登记人)",
        "problem_closed_on_time": "每个问题在整改期限内销号(计给销号人)",
        "fix_rejected": "已销号的问题被重开(计给原销号人)",
        "overdue_day": "问题超过整改期限每满一天(计入所在网格)",
        "bad_photo": "打卡照片被认定为重复或旧照片",
        "wrong_count": "上报数量超出常规,经网格长等核查后更正或撤回(本人主动更正不扣分)",
    }
    lines = ["【积分规则】积分由系统根据每条记录自动计算,不能手工填写:"]
    lines += [f"· {RULES[r][0]}:{explain[r]},{fmt_points(w[r], signed=True)}分" for r in RULES if w[r]]
    lines.append("网格积分按成员人数折算为人均积分后排名,人少的网格同样公平。发送“我的积分”查看本月积分。")
    ctx.reply("\n".join(lines))
