"""Overdue problems (逾期未整改): pushed to each grid group with the people responsible @-ed.

`overdue_of` is the shared query: the leader digest counts the same problems.
"""

from __future__ import annotations

from datetime import datetime

from bot.clock import zh_date
from bot.context import Bot
from bot.problem_ledger import grid_name, open_problems, overdue_label, short

__all__ = ["overdue_of", "overdue_problems"]


def overdue_of(store, at: datetime, grid: str | None = None) -> list[dict]:
    """Problems being fixed whose deadline passed before `at`, oldest deadline first (a fix
    waiting for its check is not overdue: the rectifier has done their part)."""
    now = at.timestamp()
    return [p for p in open_problems(store, grid) if p["status"] == "open" and p["deadline"] < now]


def push_text_for(bot: Bot, grid_id: str, problems: list[dict], at: datetime) -> tuple[str, list[str]]:
    cfg = bot.config
    now = at.timestamp()
    lines = [f"【逾期未整改问题】截至{zh_date(at)} {at:%H:%M},{grid_name(cfg, grid_id)}有{len(problems)}项问题"
             f"超过整改期限:"]
    mentioned: list[str] = []
    for p in problems:
        lines.append(f"#{p['id']} {short(p['text'])}({overdue_label(p, now)},上报人{p['reporter_name']})")
        if cfg.person(p["reporter"]) and p["reporter"] not in mentioned:
            mentioned.append(p["reporter"])
    for leader in cfg.grid_leaders(grid_id):
        if leader.userid not in mentioned:
            mentioned.append(leader.userid)
    lines.append("请尽快整改,完成后发送“整改 #P编号 已清理”并附整改后照片。")
    return "\n".join(lines), mentioned


LISTED_GRIDS = 10  # grids named in the job's result (the run log, `gridbot jobs run`)


async def overdue_problems(bot: Bot, at: datetime) -> str:
    cfg = bot.config
    at = at if at.tzinfo else at.replace(tzinfo=cfg.tz)
    at = at.astimezone(cfg.tz)
    pushed = []
    for grid in cfg.grids:
        problems = overdue_of(bot.store, at, grid.id)
        if not problems:
            continue  # a grid with nothing overdue hears nothing
        text, mentioned = push_text_for(bot, grid.id, problems, at)
        if grid.robot_webhook or cfg.wecom.mode == "emulator":
            bot.transport.push_text(grid.id, text, mentioned=mentioned)
        else:
            # No group robot configured: the grid leaders still need to know.
            leaders = [p.userid for p in cfg.grid_leaders(grid.id)]
            if leaders:
                bot.transport.send_text(leaders, text)
        pushed.append((grid.name, len(problems)))
    if not pushed:
        return "没有逾期问题"
    if len(pushed) <= LISTED_GRIDS:
        return "逾期问题:" + ",".join(f"{name}{n}项" for name, n in pushed)
    # A district's result names hundreds of grids: the admin reads the total and the worst few.
    worst = sorted(pushed, key=lambda gn: -gn[1])[:LISTED_GRIDS]
    return (f"逾期问题共{sum(n for _, n in pushed)}项,涉及{len(pushed)}个网格,已分别推送;"
            f"最多的是" + ",".join(f"{name}{n}项" for name, n in worst))
