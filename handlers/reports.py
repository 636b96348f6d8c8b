"""Task reports: free text → counted items, stored and confirmed; also 补报 (late reports)."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta

from bot.cards import confirm_card
from bot.clock import iso_week, zh_date
from bot.config import Config
from bot.context import Context
from bot.router import Router
from bot.events import TextMessage
from bot.records import category_lines, counted, fmt_qty
from bot.usage import examples, item_lines
from bot.replies import COMMAND_HINTS, NOT_A_REPORT
from bot.report_parser import ParsedReport, parse_report
from bot.report_text import unquoted

router = Router("reports")

LATE_PREFIX = re.compile(r"^\s*补报[\s::,,]*")
# Something that looks like a count: a digit or a Chinese numeral before a unit-ish character.
LOOKS_COUNTED = re.compile(r"[0-90-9一二两三四五六七八九十百千万]+\s*(余|多|来)?\s*[处个块户家份张条册本人名辆车袋吨米次场起件栋株棵]")


def week_totals_line(ctx: Context, mine_this_week: list[dict]) -> str:
    """The sender's whole week so far, every category (not only this message's)."""
    mine: dict[tuple[str, str], float] = {}
    for r in mine_this_week:
        if not counted(r):
            continue
        for it in r.get("items", []):
            key = (it["category"], it["unit"])
            mine[key] = mine.get(key, 0.0) + it["quantity"]
    if not mine:
        return ""
    return "本周累计:" + ",".join(f"{label} {qty}" for label, qty in category_lines(ctx.config, mine))


def flags_for(ctx: Context, parsed: ParsedReport, text: str, mine_this_week: list[dict]) -> list[str]:
    flags = []
    ceilings = ctx.config.category_ceilings
    if any(it.quantity > ceilings.get(it.category, 1000) for it in parsed.items):
        flags.append("implausible")
    window = ctx.config.reports.repeat_minutes * 60
    if window:
        since = ctx.event.create_time - window
        for r in mine_this_week:
            if (r.get("status") == "active"
                    and r["text"].strip() == text.strip() and r["sent_at"] >= since):
                flags.append("repeat")
                break
    return flags


FLAG_ZH = {"implausible": "数量超出常规", "repeat": "10分钟内重复上报", "late": "补报"}
PLANNED_ONLY = "计划中的工作不计入,完成后再上报(如“入户走访10户”)。"
MIXED_DATES = ("这条上报包含不同日期的工作,无法确定记到哪一天,没有记录。请按日期分开发送,"
               "每条只写一天的工作,例如“昨天 入户走访5户”“今天 清理小广告3处”。")


def who_to_ask(ctx: Context) -> str:
    """The grid leader by name (someone a grid worker can message), else the admin."""
    names = [p.name for p in ctx.config.grid_leaders(ctx.person.grid or "") if p.userid != ctx.person.userid]
    return f"网格长{'、'.join(names)}" if names else "社区管理员"


def planned_line(cfg: Config, planned) -> str:
    what = "、".join(f"{cfg.category_label(i.category)} {fmt_qty(i.quantity)}{i.unit}" for i in planned)
    return f"计划中的工作({what})不计入,完成后再上报。"


async def store_report(ctx: Context, text: str, parsed: ParsedReport, *, late_requested: bool) -> None:
    cfg, person = ctx.config, ctx.person
    sent_on = ctx.sent_on
    work_date = parsed.work_date
    if work_date > sent_on:
        ctx.reply(f"不能上报未来日期({zh_date(work_date)})的工作,请核对日期后重新发送。")
        return
    age = (sent_on - work_date).days
    if age > cfg.reports.late_days:
        window = cfg.reports.late_days
        ctx.reply(f"{zh_date(work_date)}的工作已超过补报期限,没有记录。只能补报最近{window}天"
                  f"({zh_date(sent_on - timedelta(days=window))}及以后)的工作;"
                  f"如需补录更早的工作,请联系{who_to_ask(ctx)}。")
        return
    week = iso_week(work_date)
    # One pass over the week for both the repeat check and the running totals.
    mine = ctx.store.docs_by("reports", "userid", person.userid, [week])
    flags = flags_for(ctx, parsed, text, mine)
    late = age > 0 or late_requested
    rid = await ctx.store.next_id("R")
    items = [{"category": i.category, "quantity": i.quantity, "unit": i.unit} for i in parsed.items]
    doc = {
        "id": rid, "msgid": ctx.event.key, "userid": person.userid, "name": person.name,
        "grid": person.grid, "work_date": work_date.isoformat(), "sent_at": ctx.event.create_time,
        "text": text, "items": items, "flags": flags + (["late"] if late else []), "late": late,
        "unconfirmed": bool(flags), "status": "active", "history": [],
    }
    await ctx.store.put("reports", doc, shard=week)
    head = f"已记录 #{rid}({zh_date(work_date)}{',补报' if late else ''})"
    lines = [head] + (item_lines(cfg, items) or ["· 未识别到数量,已按工作记录保存"])
    if parsed.planned:
        lines.append(planned_line(cfg, parsed.planned))
    if flags:
        lines.append("⚠ " + "、".join(FLAG_ZH[f] for f in flags) + ",已请网格长核实,核实前不计入排名。")
    total = week_totals_line(ctx, mine + [doc])
    if total:
        lines.append(total)
    ctx.reply("\n".join(lines))
    if flags:
        why = "、".join(FLAG_ZH[f] for f in flags)
        for leader in cfg.grid_leaders(person.grid or ""):
            if leader.userid != person.userid:
                # One tap on the card; the text says the same where a card cannot be shown.
                ctx.transport.send_card(leader.userid, confirm_card(cfg, doc, why),
                                        f"【待核实】{person.name} #{rid}:{text[:200]}\n"
                                        f"原因:{why}。核实无误请回复“核实 #{rid}”。")


def command_hint(text: str) -> str | None:
    for words, hint in COMMAND_HINTS:
        if any(w in text for w in words):
            return hint
    return None


def is_counted_looking(text: str) -> bool:
    return bool(LOOKS_COUNTED.search(text))


@router.on(TextMessage)
async def on_report(event: TextMessage, ctx: Context) -> None:
    text = event.content.strip()
    late_requested = bool(LATE_PREFIX.match(text))
    body = LATE_PREFIX.sub("", text) if late_requested else text
    sent_on = ctx.sent_on
    parsed = parse_report(body, ctx.config.report_vocabulary, sent_on)
    if not parsed.matched:
        hint = command_hint(body)
        if hint:
            ctx.reply(hint)
            return
        if late_requested or is_counted_looking(unquoted(body)):  # a quoted "20户" is not the sender's
            ex1, ex2 = examples(ctx.config)
            ctx.reply(NOT_A_REPORT.format(ex1=ex1, ex2=ex2))
        return  # chit-chat: no reply at all
    if parsed.mixed_dates:
        ctx.reply(MIXED_DATES)
        return
    if parsed.planned_only:
        ctx.reply(PLANNED_ONLY)
        return
    if late_requested and not parsed.dated:
        # "补报 入户走访10户" with no date means yesterday.
        parsed = replace(parsed, work_date=sent_on - timedelta(days=1), date_offset=-1)
    await store_report(ctx, text, parsed, late_requested=late_requested)
