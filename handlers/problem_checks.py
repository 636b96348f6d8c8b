"""Checking a fix (核查): pass it and the problem is closed (销号), or reject it with a reason and
it goes back to be fixed again (驳回). One tap on the card the checker received, or in words:
"核查 #P12 通过", "#P12 通过", "销号 #P12" (while a fix waits), "驳回 #P12 照片看不清",
"核查 #P12 不通过 仍有残留". The rules (who may check, what happens to the deadline) are
bot.problem_review's; the fix itself is reported through handlers/problem_fixes.py.

A second "驳回 #P12 …" by the same checker after a rejection adds to its reason and is passed on.
"""

from __future__ import annotations

from bot.cards import parse_key, selected_reason
from bot.context import Context
from bot.events import CardAction, TextMessage
from bot.problem_ledger import PENDING, TABLE, drop_context, history_entry, lookup, problem_lock
from bot.problem_phrases import parse_decision
from bot.problem_review import (decision_refusal, last_decision, pass_doc, passed_notices, passed_reply,
                                reject_doc, rejected_notice, rejected_reply, state_note)
from bot.router import Router

router = Router("problem_checks")

DONE_LABEL = {"pass": "已通过", "reject": "已驳回"}


def decision_filter(event, ctx: Context) -> dict | None:
    d = parse_decision(event.content)
    if d is None:
        return None
    if d["close_word"]:
        # "销号 #P12" decides only a fix that waits for its check; otherwise it reports a fix.
        p = lookup(ctx.store, d["n"])
        if p is None or p["status"] != PENDING:
            return None
    return d


@router.on(TextMessage, filter=decision_filter)
async def on_decision(event: TextMessage, ctx: Context, n: str, verdict: str, reason: str, close_word: bool) -> None:
    p = await ctx.settled(lambda: lookup(ctx.store, n))
    if p is None:
        ctx.reply(f"没有找到问题 #P{int(n)},请核对编号。")
        return
    if verdict == "reject" and not reason:
        ctx.reply(f"请写明驳回原因,例如“驳回 #{p['id']} 照片看不清”,整改人会收到原因。")
        return
    await decide(ctx, p["id"], verdict, reason, via="text")


@router.on(CardAction, filter=lambda e, ctx: (k := parse_key(e.event_key)) is not None and k.kind == "review"
           and {"key": k})
async def on_card(event: CardAction, ctx: Context, key) -> None:
    p = lookup(ctx.store, key.target[1:]) if key.target[1:].isdigit() else None
    if p is None:
        ctx.reply(f"没有找到问题 #{key.target}。")
        ctx.transport.update_card(ctx.person.userid, event.response_code, "已失效")
        return
    pending = p.get("pending") or {}
    if p["status"] == PENDING and pending.get("n") != key.n:
        ctx.reply(f"这张卡片是 #{p['id']} 此前提交的整改,已有新的整改等待核查,请以最新的卡片为准。")
        ctx.transport.update_card(ctx.person.userid, event.response_code, "已失效")
        return
    reason = selected_reason(event.selected or {}) if key.choice == "reject" else ""
    decided = await decide(ctx, p["id"], key.choice, reason, via="card")
    ctx.transport.update_card(ctx.person.userid, event.response_code,
                              DONE_LABEL[key.choice] if decided else "已处理")


async def decide(ctx: Context, pid: str, verdict: str, reason: str, *, via: str) -> bool:
    """Pass or reject the fix `pid` waits with on behalf of the sender; True when it was decided."""
    cfg, person, event = ctx.config, ctx.person, ctx.event
    async with problem_lock(ctx.bot):
        p = ctx.store.get(TABLE, pid)
        if any(h.get("msgid") == event.key for h in p["history"]):
            return True  # replayed after a restart: already decided
        if verdict == "reject" and via == "text" and p["status"] == "open" and reason:
            last = last_decision(p)
            if last and last["action"] == "check_rejected" and last.get("by") == person.userid:
                # A word more on the rejection just made: the rectifier hears it too.
                entry = history_entry(person, event, "reject_note", reason)
                await ctx.store.put(TABLE, {**p, "history": p["history"] + [entry]})
                fixer = next((h["by"] for h in reversed(p["history"]) if h.get("action") == "fix_submitted"), None)
                if fixer and fixer != person.userid:
                    ctx.transport.send_text(fixer, f"{person.name}对 #{pid} 的驳回补充说明:{reason}")
                ctx.reply(f"已补充 #{pid} 的驳回说明,已告知整改人。")
                return True
        note = state_note(cfg, p)
        if note:
            ctx.reply(note)
            return False
        refusal = decision_refusal(cfg, person, p)
        if refusal:
            ctx.reply(refusal)
            return False
        fixer = p["pending"]["by"]
        if verdict == "pass":
            p = pass_doc(p, history_entry(person, event, "check_passed", via=via))
        else:
            p = reject_doc(p, history_entry(person, event, "check_rejected", reason, via=via))
        await ctx.store.put(TABLE, p)
    # Later photos from the rectifier are no longer part of this fix.
    await drop_context(ctx.store, fixer, pid, event.create_time)
    if verdict == "pass":
        ctx.reply(passed_reply(cfg, p))
        for uid, text in passed_notices(cfg, p, person):
            ctx.transport.send_text(uid, text)
    else:
        ctx.reply(rejected_reply(cfg, p, reason))
        if cfg.person(fixer) and fixer != person.userid:
            ctx.transport.send_text(fixer, rejected_notice(cfg, p, person, reason))
    return True
