"""Fixing a problem (整改): "整改 #P12 已疏通" and the after-photo that makes it a fix to check.

Text: "整改 #P12 已清理", "#P12 已疏通", "整改 #P12 清理完毕" report the fix done (any finished
rectification verb, bot.problem_phrases.says_done); "整改 #P12 已联系物业,明天清运" is progress.
A fix needs an after-photo within [problems] photo_minutes: the photo always goes to the problem,
never to a check-in. It must be evidence (bot.problem_review.judge_after_photo); then the
problem waits for its check (待核查) and the checkers get the before/after picture and a card.
Where no check is configured for the fixer, the photo closes the problem at once.
Checking lives in handlers/problem_checks.py, registering and listing in handlers/problems.py.
"""

from __future__ import annotations

import asyncio

from loguru import logger

from bot.cards import review_card
from bot.context import Context
from bot.events import ImageMessage, TextMessage
from bot.photos.intake import read_photo
from bot.photos.files import save_photo
from bot.photos.media_store import media_for
from bot.photos.side_by_side import Panel, compose
from bot.problem_ledger import (PENDING, TABLE, WITHDRAWN, closed_reply, fmt_time, grid_name, history_entry,
                                live_context, lookup, may_close, problem_lock, set_context, short, withdrawn_note)
from bot.problem_phrases import parse_close
from bot.problem_review import (check_request_text, checker_words, checkers_for, close_unchecked_doc,
                                evidence_line, judge_after_photo, photo_record, picture_texts, submit_doc)
from bot.router import Router

router = Router("problem_fixes")

FIX_KINDS = ("fix_pending", "close_pending", "submitted", "progress")  # close_pending: before 核查 existed


def history(ctx: Context, action: str, note: str = "", **extra) -> dict:
    return history_entry(ctx.person, ctx.event, action, note, **extra)


async def remember(ctx: Context, pid: str, kind: str) -> None:
    await set_context(ctx.store, ctx.person.userid, pid, kind, ctx.event.create_time)


def who_checks(ctx: Context, p: dict) -> str:
    level, people = checkers_for(ctx.config, p, ctx.person)
    if level == "none" or not people:
        return ""
    return checker_words(level, people)


# --- the fix reported in words ---------------------------------------------------------------

@router.on(TextMessage, filter=lambda e, ctx: parse_close(e.content))
async def on_fix(event: TextMessage, ctx: Context, n: str, note: str, done: bool) -> None:
    cfg, person = ctx.config, ctx.person
    p = await ctx.settled(lambda: lookup(ctx.store, n))
    if p is None:
        ctx.reply(f"没有找到问题 #P{int(n)},请核对编号(发送“问题”查看本网格待整改问题)。")
        return
    pid, minutes = p["id"], cfg.problems.photo_minutes
    if p["status"] == WITHDRAWN:
        ctx.reply(withdrawn_note(cfg, p) + ",无需整改。如问题仍存在,请重新登记。")
        return
    if not may_close(cfg, person, p["grid"]):
        ctx.reply(f"#{pid} 属于{grid_name(cfg, p['grid'])},只有该网格的网格员、网格长或领导、管理员可以整改。")
        return
    if p["status"] == "closed":
        ctx.reply(f"#{pid} 已于{fmt_time(cfg, p['closed_at'])}由{p.get('closed_by_name') or ''}销号,无需重复操作。")
        return
    if p["status"] == PENDING:
        pend = p["pending"]
        ctx.reply(f"#{pid} 已由{pend['by_name']}于{fmt_time(cfg, pend['at'])}提交整改,"
                  f"正在等待{pend.get('checker_words') or '核查人'}核查。")
        return
    if any(h.get("msgid") == event.key for h in p["history"]):
        return  # replayed after a restart: already recorded
    if not done:
        async with problem_lock(ctx.bot):
            p = ctx.store.get(TABLE, pid)
            await ctx.store.put(TABLE, {**p, "history": p["history"] + [history(ctx, "progress", note)]})
        await remember(ctx, pid, "progress")
        ctx.reply(f"已记录 #{pid} 的整改进展,可在{minutes}分钟内补发进展照片。"
                  f"整改完成后请发送“整改 #{pid} 已清理”并附整改后照片。")
        return
    async with problem_lock(ctx.bot):
        p = ctx.store.get(TABLE, pid)
        await ctx.store.put(TABLE, {**p, "history": p["history"] + [history(ctx, "close_requested", note)]})
    await remember(ctx, pid, "fix_pending")
    checkers = who_checks(ctx, p)
    then = f"收到照片后提交{checkers}核查" if checkers else "收到照片即销号"
    ctx.reply(f"收到 #{pid} 的整改情况。请在{minutes}分钟内发送整改后的现场照片,{then}。")


# --- the after-photo ---------------------------------------------------------------------------

def fix_context(event, ctx: Context) -> dict | None:
    c = live_context(ctx.config, ctx.store, event.sender, event.create_time)
    return {"context": c} if c and c["kind"] in FIX_KINDS else None


@router.on(ImageMessage, filter=fix_context)
async def on_photo(event: ImageMessage, ctx: Context, context: dict) -> None:
    cfg = ctx.config
    pid, kind = context["problem"], context["kind"]
    p = ctx.store.get(TABLE, pid)
    if p["status"] == WITHDRAWN:
        ctx.reply(withdrawn_note(cfg, p) + ",照片未添加。")
        return
    if any(h.get("msgid") == event.key for h in p["history"]):
        return  # replayed after a restart: already attached
    got = await read_photo(ctx)
    if got is None:
        return
    photo, facts = got
    rel, _thumb = await save_photo(media_for(cfg), ctx.sent_on, p["grid"], ctx.person.userid, photo, kind="problem")
    if kind == "progress":
        async with problem_lock(ctx.bot):
            p = ctx.store.get(TABLE, pid)
            await ctx.store.put(TABLE, {**p, "photos_progress": p.get("photos_progress", []) + [rel],
                                        "history": p["history"] + [history(ctx, "photo_progress", photo=rel)]})
        ctx.reply(f"已添加 #{pid} 的整改进展照片。整改完成后请发送“整改 #{pid} 已清理”并附整改后照片。")
        return
    if kind == "submitted" and p["status"] != PENDING:
        ctx.reply(f"#{pid} 当前没有待核查的整改,照片未添加。")
        return
    if kind != "submitted" and p["status"] != "open":
        ctx.reply(f"#{pid} 已{'提交整改' if p['status'] == PENDING else '销号'},照片未添加。")
        return
    evidence = judge_after_photo(cfg, p, facts, ctx.sent_at)
    record = photo_record(facts)
    async with problem_lock(ctx.bot):
        p = ctx.store.get(TABLE, pid)
        records = {**(p.get("photo_records") or {}), rel: record}
        if evidence.refusal:
            # Kept with the problem all the same: who sent what, and why it was not taken.
            await ctx.store.put(TABLE, {**p, "photo_records": records, "history": p["history"] + [
                history(ctx, "after_photo_refused", evidence.refusal, photo=rel)]})
        elif kind == "submitted":
            pend = {**p["pending"], "extra_photos": p["pending"].get("extra_photos", []) + [rel]}
            await ctx.store.put(TABLE, {**p, "pending": pend, "photo_records": records, "history": p["history"] + [
                history(ctx, "photo_after", photo=rel, evidence=evidence.notes)]})
        elif p["status"] != "open":
            # Someone else's fix got in first (or it was closed meanwhile): keep the photo on record.
            await ctx.store.put(TABLE, {**p, "photo_records": records, "history": p["history"] + [
                history(ctx, "photo_after", photo=rel, evidence=evidence.notes)]})
            ctx.reply(f"#{pid} 已由他人提交整改,照片已记录在台账中。")
            return
        else:
            note = next((h.get("note", "") for h in reversed(p["history"]) if h["action"] == "close_requested"), "")
            entry = history(ctx, "fix_submitted", note, photo=rel)
            level, checkers = checkers_for(cfg, p, ctx.person)
            p = {**p, "photo_records": records}
            p = submit_doc(p, entry, level, checkers, evidence) if checkers else close_unchecked_doc(p, entry)
            await ctx.store.put(TABLE, p)
    if evidence.refusal:
        await remember(ctx, pid, kind)  # a fresh window for the photo they go back to take
        ctx.reply(evidence.refusal)
        return
    if kind == "submitted":
        ctx.transport.send_image(p["pending"]["checkers"], photo.data, filename=f"{pid}_整改后照片.jpg")
        ctx.reply(f"已补充 #{pid} 的整改后照片,已转给{p['pending']['checker_words']}。")
        return
    await remember(ctx, pid, "submitted" if p["status"] == PENDING else "closed")
    if p["status"] == "closed":
        ctx.reply(closed_reply(cfg, p))
        notify_closed_unchecked(ctx, p)
        return
    line = evidence_line(evidence.notes)
    ctx.reply(f"已提交 #{pid} 的整改情况,等待{p['pending']['checker_words']}核查。" + (f"\n{line}" if line else ""))
    await ask_checkers(ctx, p, photo.data)


async def ask_checkers(ctx: Context, p: dict, after: bytes) -> None:
    """The before/after picture and the card, to everyone who is to check the fix."""
    cfg, pid = ctx.config, p["id"]
    pend = p["pending"]
    title, before_caption, after_caption, footer = picture_texts(cfg, p, pend["at"], pend["by_name"])
    before_rel = (p.get("photos_before") or [None])[0]
    try:
        before = await asyncio.to_thread(media_for(cfg).get, before_rel) if before_rel else None
    except OSError as e:
        logger.warning("before-photo of {} unreadable: {}", pid, e)
        before = None
    picture = await asyncio.to_thread(compose, title, Panel(before, "整改前", before_caption),
                                      Panel(after, "整改后", after_caption), footer)
    ctx.transport.send_image(pend["checkers"], picture, filename=f"{pid}_整改前后对比.jpg")
    ctx.transport.send_card(pend["checkers"], review_card(cfg, p), check_request_text(cfg, p))


def notify_closed_unchecked(ctx: Context, p: dict) -> None:
    cfg = ctx.config
    text = (f"【已销号】#{p['id']} {grid_name(cfg, p['grid'])}:{short(p['text'], 60)}\n"
            f"由{ctx.person.name}于{fmt_time(cfg, p['closed_at'])}整改销号(附整改后照片,未经核查)。")
    told = {ctx.person.userid}
    for leader in cfg.grid_leaders(p["grid"]):
        if leader.userid not in told:
            ctx.transport.send_text(leader.userid, text)
            told.add(leader.userid)
    if p["reporter"] not in told and cfg.person(p["reporter"]):
        ctx.transport.send_text(p["reporter"], f"您上报的问题 #{p['id']} 已由{ctx.person.name}整改销号。")
