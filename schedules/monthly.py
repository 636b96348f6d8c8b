"""The monthly bulletin job (月通报): on the first workday of a month, last month to every grid
group (its own numbers, the street's 红黑榜) and to every leader (their scope, with the chart and
the month's ledger).

The cron in config.example.toml fires on each of the first ten days of a month; the job sends
on the first of them that is a workday (so after National Day it waits for 10月8日) and marks
the month sent in the store (table "bulletins"), so later runs that month send nothing. A run
from the command line (`gridbot jobs run`, read-only store) always sends: the admin asked for it.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from loguru import logger

from bot.attendance import zh_day
from bot.context import Bot
from bot.months import month_label, month_of, previous_month
from bot.store import no_cyclic_gc
from bot.workdays import is_workday
from schedules.month_data import collect_month  # matplotlib and openpyxl load only in build_month
from schedules.month_honours import honours
from schedules.ledger_parts import send_ledger
from schedules.month_text import build_bulletin, grid_text
from schedules.reminders import local, push_grids
from schedules.weekdata import scope_grid_ids

SENT_TABLE = "bulletins"


async def monthly_bulletin(bot: Bot, at: datetime) -> str | None:
    cfg, store = bot.config, bot.store
    at = local(bot, at)
    today = at.date()
    month = previous_month(month_of(today))
    label = month_label(month)
    if not is_workday(today, cfg.calendar):
        return f"{zh_day(today)}不是工作日,{label}工作通报在本月第一个工作日发送。"
    sent = store.get(SENT_TABLE, month)
    if sent and not store.readonly:
        return f"{label}工作通报已于{sent.get('at', '')[:16].replace('T', ' ')}发送,不再重复发送。"

    # A month of records (and the year's, for the trend) folded and turned into documents:
    # seconds for a big street, minutes for a district. In a thread, on a snapshot taken here on
    # the loop; old weeks are streamed from their files, a document at a time, and none kept.
    groups, leaders = push_grids(cfg), cfg.people_with_role("leader")
    texts, docs = await asyncio.to_thread(build_month, cfg, store.snapshot(), month, at, groups, leaders)
    for grid_id, text in texts:
        bot.transport.push_text(grid_id, text)
    failed = too_big = False
    for leader in leaders:
        bulletin, png, ledger = docs[tuple(leader.scope)]
        for part in bulletin["parts"]:
            bot.transport.send_markdown(leader.userid, part)
        if png:
            bot.transport.send_image(leader.userid, png, f"{bulletin['title']}.png")
        # Over WeCom's 20 MB a ledger comes in parts, the leader told why; never a doomed upload.
        if ledger and not send_ledger(bot.transport, leader.userid, ledger, f"{label}工作台账"):
            too_big = True
        failed = failed or not (png and ledger)
    try:
        await store.put(SENT_TABLE, {"id": month, "at": at.isoformat(), "grids": len(groups), "leaders": len(leaders)})
    except RuntimeError:
        pass  # read-only store: a run from the command line
    note = (",部分附件生成失败,详见日志" if failed else "") + (",部分台账文件超过企业微信大小上限未能发送,已告知领导"
                                                          if too_big else "")
    return f"{label}工作通报已发送给 {len(groups)} 个网格群和 {len(leaders)} 位领导{note}"


def build_month(cfg, store, month: str, at: datetime, groups: list, leaders: list) -> tuple[list, dict]:
    """The grid groups' texts and each leader scope's bulletin, chart and ledger (in a thread)."""
    from schedules.month_chart import render_month_chart
    from schedules.month_ledger import month_ledger_files

    # Folded with the cyclic collector paused: the month's slim records are a million small
    # containers for a district, and each full pass over them would hold the GIL for tenths of
    # a second (the documents streamed past are freed by reference counting all the same).
    with no_cyclic_gc():
        data = collect_month(cfg, store, month, as_of=at)
    street = honours(cfg, data.grid_list())
    texts = [(grid.id, grid_text(cfg, data, data.grids[grid.id], street)) for grid in groups]
    built: dict[tuple[str, ...], tuple[dict, bytes | None, list | None]] = {}
    for leader in leaders:
        key = tuple(leader.scope)
        if key not in built:
            ids = scope_grid_ids(cfg, leader.scope) if leader.scope else None
            bulletin = build_bulletin(cfg, data, ids, scope=leader.scope or None)
            grids = data.grid_list(ids)
            # A failed attachment must not cost the leaders their bulletin.
            png = _attempt("chart", render_month_chart, cfg, data, grids, bulletin["title"])
            ledger = _attempt("ledger", month_ledger_files, cfg, data, ids, leader.scope or None)
            built[key] = (bulletin, png, ledger)
    return texts, built


def _attempt(what: str, fn, *args):
    try:
        return fn(*args)
    except Exception:
        logger.exception("monthly bulletin: building the {} failed", what)
        return None
