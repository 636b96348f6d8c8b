"""Commands a person types: 帮助, 本周, 撤回, 更正, 核实."""

from __future__ import annotations

from datetime import date, timedelta

from bot.clock import iso_week, zh_date
from bot.config import Config
from bot.context import Context
from bot.problem_ledger import open_problems
from bot.cards import parse_key
from bot.router import Router, command
from bot.events import CardAction, TextMessage
from bot.records import (category_lines, checkins_of_week, fmt_qty, reports_of_week, totals,
                         weeks_between)
from bot.report_parser import parse_report
from bot.usage import help_text, item_lines

router = Router("commands")


def can_edit(ctx: Context, report: dict) -> bool:
    p = ctx.person
    if p.userid == report["userid"] or p.role == "admin":
        return True
    return p.role == "grid_leader" and p.grid == report.get("grid")


def find_report(ctx: Context, rid: str | None) -> dict | None:
    if rid:
        return ctx.store.get("reports", rid.upper())
    mine = recent_reports(ctx)
    return mine[0] if mine else None


def history_entry(ctx: Context, action: str, before: dict) -> dict:
    # The MsgId lets a replay after a crash see that this message was already applied.
    return {"action": action, "by": ctx.person.userid, "by_name": ctx.person.name,
            "at": ctx.event.create_time, "msgid": ctx.event.key,
            "before": {"items": before["items"], "text": before.get("corrected_text") or before["text"],
                       "status": before["status"]}}


@router.on(TextMessage, filter=command(r"^(帮助|help|菜单|\?|？)$"))
async def on_help(event, ctx: Context) -> None:
    ctx.reply(help_text(ctx.config))


@router.on(TextMessage, filter=command(r"^(本周|我的本周|本周统计)$"))
async def on_my_week(event, ctx: Context) -> None:
    week = iso_week(ctx.sent_on)
    mine = totals(reports_of_week(ctx.store, week, userid=ctx.person.userid))
    checkins = checkins_of_week(ctx.store, week, userid=ctx.person.userid)
    lines = [f"【我的本周 {week}】"]
    if mine:
        lines += [f"· {label} {qty}" for label, qty in category_lines(ctx.config, mine)]
    else:
        lines.append("· 本周还没有上报工作")
    days = len({c["date"] for c in checkins})
    lines.append(f"打卡:{len(checkins)}次({days}天)")
    # Without a grid of one's own there is no "本网格" line (every problem is filed under a grid).
    mine_open = open_problems(ctx.store, ctx.person.grid) if ctx.person.grid else []
    if mine_open:
        lines.append(f"本网格待整改问题:{len(mine_open)}项(发送“问题”查看)")
    ctx.reply("\n".join(lines))


@router.on(TextMessage, filter=command(r"^撤回\s*(?:#?(?P<rid>[Rr]\d+))?\s*$"))
async def on_withdraw(event, ctx: Context, rid: str | None = None) -> None:
    report = find_report(ctx, rid)
    if report is None or report["status"] != "active":
        ctx.reply(f"没有找到可撤回的上报{f' #{rid.upper()}' if rid else ''}。")
        return
    if not can_edit(ctx, report):
        ctx.reply(f"#{report['id']} 不是您的上报,只有本人、网格长或管理员可以撤回。")
        return
    doc = {**report, "status": "withdrawn",
           "history": report.get("history", []) + [history_entry(ctx, "withdraw", report)]}
    await ctx.store.put("reports", doc)
    ctx.reply(f"已撤回 #{report['id']}({zh_date_of(report)}),不再计入统计。")


def zh_date_of(report: dict) -> str:
    return zh_date(date.fromisoformat(report["work_date"]))


# "更正 #R12 …", "更正 R12 …", "更正:…" and "更正 …" (the sender's latest report).
CORRECT = r"^更正\s*[::]?\s*(?:[#＃]?(?P<rid>[Rr]\d+))?\s*[::,,]?\s*(?P<text>.*)$"


def merge_items(old: list[dict], new: list[dict]) -> list[dict]:
    """A correction restates only the categories it names: those replace the old items of the
    same category (every unit of it); the report's other items stay as they were."""
    named = {it["category"] for it in new}
    merged: list[dict] = []
    placed: set[str] = set()
    for it in old:  # keep the report's order: a corrected category stays where it was
        c = it["category"]
        if c in named and c not in placed:
            merged += [n for n in new if n["category"] == c]
            placed.add(c)
        elif c not in named:
            merged.append(it)
    return merged + [n for n in new if n["category"] not in placed]


def recent_reports(ctx: Context) -> list[dict]:
    """The sender's active reports within the late-report window, newest first (only recent
    weeks: a withdrawal or correction is about what was just sent; old shards stay on disk)."""
    weeks = weeks_between(ctx.sent_on - timedelta(days=ctx.config.reports.late_days + 7), ctx.sent_on)
    mine = [r for r in ctx.store.docs("reports", weeks)
            if r["userid"] == ctx.person.userid and r["status"] == "active"]
    return sorted(mine, key=lambda r: (r["sent_at"], int(r["id"][1:])), reverse=True)


def report_line(cfg: Config, r: dict) -> str:
    items = "、".join(f"{cfg.category_label(it['category'])}{fmt_qty(it['quantity'])}{it['unit']}"
                     for it in r.get("items", [])) or "无数量"
    return f"#{r['id']}({zh_date_of(r)}):{items}"


@router.on(TextMessage, filter=command(CORRECT))
async def on_correct(event, ctx: Context, rid: str | None = None, text: str = "") -> None:
    cfg = ctx.config
    text = text.strip()
    if not text:
        ctx.reply("请写明更正后的内容,例如“更正 #R12 清理小广告12处”;不写编号时更正您最近的一条上报。")
        return
    if rid:
        report = await ctx.settled(lambda: ctx.store.get("reports", rid.upper()))
        if report is None or report["status"] != "active":
            ctx.reply(f"没有找到上报 #{rid.upper()},请核对编号。")
            return
        if not can_edit(ctx, report):
            ctx.reply(f"#{report['id']} 不是您的上报,只有本人、网格长或管理员可以更正。")
            return
    else:
        mine = recent_reports(ctx)
        if not mine:
            ctx.reply(f"最近{cfg.reports.late_days}天没有您可更正的上报。")
            return
        report = mine[0]
    parsed = parse_report(text, cfg.report_vocabulary, date.fromisoformat(report["work_date"]))
    if not parsed.items:
        ctx.reply("更正内容里没有识别到数量,请写成“更正 #R12 清理小广告12处”。")
        return
    new = [{"category": i.category, "quantity": i.quantity, "unit": i.unit} for i in parsed.items]
    if not rid:
        named = {it["category"] for it in new}
        holding = [r for r in recent_reports(ctx) if named & {it["category"] for it in r.get("items", [])}]
        if holding and report not in holding:
            # The latest report does not hold what is corrected, an earlier one does: ask, do
            # not guess (a wrong guess would count the work twice).
            lines = [report_line(cfg, r) for r in ([report] + holding)[:4]]
            ctx.reply("要更正哪一条?请带上编号重新发送,例如“更正 #" + holding[0]["id"] + " " + text + "”:\n"
                      + "\n".join(lines))
            return
    items = merge_items(report["items"], new)
    doc = {**report, "items": items, "corrected_text": text, "corrected": True,
           "history": report.get("history", []) + [history_entry(ctx, "correct", report)]}
    await ctx.store.put("reports", doc)
    ctx.reply("\n".join([f"已更正 #{report['id']}({zh_date_of(report)}),现为:"] + item_lines(cfg, items)))


@router.on(TextMessage, filter=command(r"^核实\s*#?(?P<rid>[Rr]\d+)\s*$"))
async def on_confirm(event, ctx: Context, rid: str) -> None:
    await confirm(ctx, rid.upper(), True)


@router.on(CardAction, filter=lambda e, ctx: (k := parse_key(e.event_key)) is not None and k.kind == "confirm"
           and {"rid": k.target, "yes": k.choice == "yes"})
async def on_confirm_card(event: CardAction, ctx: Context, rid: str, yes: bool) -> None:
    done = await confirm(ctx, rid, yes)
    ctx.transport.update_card(ctx.person.userid, event.response_code,
                              ("已核实" if yes else "不予计入") if done else "已处理")


async def confirm(ctx: Context, rid: str, yes: bool) -> bool:
    """核实 (the count stands and is counted) or not (it stays out of every total); True when done."""
    report = await ctx.settled(lambda: ctx.store.get("reports", rid))
    if report is None:
        ctx.reply(f"没有找到上报 #{rid}。")
        return False
    p = ctx.person
    if not (p.role in ("admin", "leader") or (p.role == "grid_leader" and p.grid == report["grid"])):
        ctx.reply("只有本网格的网格长或管理员可以核实上报。")
        return False
    if any(h.get("msgid") == ctx.event.key for h in report.get("history", [])):
        return True  # replayed after a restart: already applied
    if report["status"] != "active":
        ctx.reply(f"#{rid} 已撤回,无需核实。")
        return False
    action = "confirm" if yes else "confirm_rejected"
    doc = {**report, "unconfirmed": not yes, "confirm_rejected": not yes,
           "history": report.get("history", []) + [history_entry(ctx, action, report)]}
    await ctx.store.put("reports", doc)
    if yes:
        ctx.reply(f"已核实 #{rid},计入统计。")
        told = f"您的上报 #{rid} 已由{p.name}核实,计入统计。"
    else:
        ctx.reply(f"已确认 #{rid} 不予计入统计,已告知{report['name']}。如需改为计入,可发送“核实 #{rid}”。")
        told = (f"您的上报 #{rid} 经{p.name}核实,数量不予计入统计。如数量有误,"
                f"可发送“更正 #{rid} …”重新填写,或与网格长联系。")
    if report["userid"] != p.userid:
        ctx.transport.send_text(report["userid"], told)
    return True
