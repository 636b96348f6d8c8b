"""Withdrawing a problem (撤回 #P12): "撤回 #P12 重复登记", "撤回问题 #P12", "#P12 撤回".

The reporter may take back their own problem until anyone has acted on it; the grid leader any
open problem of the grid, an admin any. A withdrawn problem leaves every open list, count and
reminder and keeps its history. A bare "撤回" or "撤回 #R12" is about reports (handlers/commands.py);
this router comes before handlers/problems.py, whose "问题…" opening would take "问题 #P12 撤回".
"""

from __future__ import annotations

from bot.context import Context
from bot.events import TextMessage
from bot.problem_ledger import (TABLE, drop_context, lookup, problem_lock, withdraw_doc, withdraw_refusal,
                                withdrawal_messages)
from bot.problem_phrases import parse_withdraw
from bot.router import Router

router = Router("problem_withdrawal")


@router.on(TextMessage, filter=lambda e, ctx: parse_withdraw(e.content))
async def on_withdraw(event: TextMessage, ctx: Context, n: str, reason: str) -> None:
    cfg, person = ctx.config, ctx.person
    await ctx.settled(lambda: lookup(ctx.store, n))  # a withdrawal may overtake the registration
    async with problem_lock(ctx.bot):
        p = lookup(ctx.store, n)
        if p is None:
            ctx.reply(f"没有找到问题 #P{int(n)},请核对编号(发送“问题”查看本网格待整改问题)。")
            return
        if any(h.get("msgid") == event.key for h in p["history"]):
            return  # replayed after a restart: already withdrawn
        refusal = withdraw_refusal(cfg, person, p)
        if refusal:
            ctx.reply(refusal)
            return
        p = withdraw_doc(p, person, event, reason)
        await ctx.store.put(TABLE, p)
    for uid in {person.userid, p["reporter"]}:
        # Their next photo is a check-in again, not a photo of a problem that is gone.
        await drop_context(ctx.store, uid, p["id"], event.create_time)
    reply, notices = withdrawal_messages(cfg, person, p)
    for uid, text in notices:
        ctx.transport.send_text(uid, text)
    ctx.reply(reply)
