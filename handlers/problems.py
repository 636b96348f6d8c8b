"""Problems found on patrol (问题登记): registering, listing, reassigning and reopening them.

Texts: "问题:…" opens a problem; "转 #P12 2号网格" reassigns, "重开 #P12 原因" reopens;
"问题" / "我的问题" lists those not closed yet. A registration that may repeat an open problem is
registered and pointed out, one at a place where the same kind of problem was fixed lately is
marked a recurrence (反弹) (bot.problem_places). The fix ("整改 #P12 已清理" + after-photo) lives
in handlers/problem_fixes.py, its check (核查, 驳回) in handlers/problem_checks.py, "撤回 #P12" in
handlers/problem_withdrawal.py. How those texts are read lives in bot.problem_phrases, the ledger
itself in bot.problem_ledger.

Photos and a location sent within `[problems] photo_minutes` of an opening belong to that
problem. Which problem a photo belongs to is kept per sender in the "problem_context" table
(main shard), so it survives a restart; without such a context images fall through to check-ins.
"""

from __future__ import annotations

import re

from bot.photos.intake import read_photo
from bot.photos.files import save_photo
from bot.photos.media_store import media_for
from bot.context import Context
from bot.events import ImageMessage, LocationMessage, TextMessage
from bot.problem_ledger import (NOT_CLOSED, PENDING, TABLE, WITHDRAWN, deadline_hours, detail_text,
                                duplicates_text, fmt_time, grid_name, grids_in_view, history_entry,
                                is_manager, is_overdue, leader_names, live_context, lookup,
                                new_problem, open_problems, problem_line, problem_lock, recurrence_text,
                                reopen_doc, set_context, short, withdrawn_note)
from bot.problem_phrases import (DETAIL_CMD, LIST_CMD, REASSIGN, REOPEN, clean, detect_category,
                                 find_grid, grid_in_text, parse_opening, reopen_reason)
from bot.problem_places import possible_duplicates, recurrence_of
from bot.problem_review import photo_record
from bot.router import Router

router = Router("problems")

USAGE = "请写明问题内容,例如“问题:幸福路3号楼下堆放建筑垃圾”,并在10分钟内补发现场照片。"


# --- glue between a message and the ledger ----------------------------------------------

def _match(rx: re.Pattern):
    def flt(event, ctx):
        m = rx.match(clean(event.content))
        return m.groupdict() if m else None
    return flt


def _lock(ctx: Context):
    return problem_lock(ctx.bot)


def history(ctx: Context, action: str, note: str = "", **extra) -> dict:
    return history_entry(ctx.person, ctx.event, action, note, **extra)


async def remember(ctx: Context, pid: str, kind: str) -> None:
    """Follow-up photos (and, after an opening, a location) from the sender now belong to `pid`."""
    await set_context(ctx.store, ctx.person.userid, pid, kind, ctx.event.create_time)


def follow_up(event, ctx: Context) -> dict | None:
    return live_context(ctx.config, ctx.store, event.sender, event.create_time)


# --- listing -------------------------------------------------------------------------

@router.on(TextMessage, filter=lambda e, ctx: bool(LIST_CMD.match(e.content.strip())))
async def on_list(event: TextMessage, ctx: Context) -> None:
    cfg, person = ctx.config, ctx.person
    now = ctx.event.create_time
    grids = grids_in_view(cfg, person)
    if not grids:
        ctx.reply("您没有所属网格,暂无可查看的问题。")
        return
    lines: list[str] = []
    total = 0
    for gid in grids:
        items = open_problems(ctx.store, gid)
        if not items:
            continue
        total += len(items)
        late = sum(1 for p in items if is_overdue(p, now))
        head = f"【{grid_name(cfg, gid)} 待整改问题 {len(items)}项" + (f",逾期{late}项】" if late else "】")
        lines += ([""] if lines else []) + [head] + [problem_line(cfg, p, now) for p in items]
    if not total:
        where = grid_name(cfg, grids[0]) if len(grids) == 1 else "您负责的网格"
        ctx.reply(f"{where}目前没有待整改的问题。")
        return
    lines.append("整改完成后发送“整改 #P编号 已清理”并附整改后照片。")
    ctx.reply("\n".join(lines))


@router.on(TextMessage, filter=_match(DETAIL_CMD))
async def on_detail(event: TextMessage, ctx: Context, n: str) -> None:
    cfg = ctx.config
    p = await ctx.settled(lambda: lookup(ctx.store, n))
    if p is None:
        ctx.reply(f"没有找到问题 #P{int(n)},请核对编号。")
        return
    ctx.reply(detail_text(cfg, p, ctx.event.create_time))


# --- reassign and reopen ----------------------------------------------------------------

def managed_problem(ctx: Context, n: str, verb: str) -> dict | None:
    """The problem #P<n> if the sender may manage it; otherwise replies why not."""
    p = lookup(ctx.store, n)
    if p is None:
        ctx.reply(f"没有找到问题 #P{int(n)},请核对编号。")
        return None
    if p["status"] == WITHDRAWN:
        ctx.reply(withdrawn_note(ctx.config, p) + f",不能{verb}。如问题仍存在,请重新登记。")
        return None
    if not is_manager(ctx.config, ctx.person, p["grid"]):
        ctx.reply(f"只有{grid_name(ctx.config, p['grid'])}的网格长、领导或管理员可以{verb} #{p['id']}。")
        return None
    return p


@router.on(TextMessage, filter=_match(REASSIGN))
async def on_reassign(event: TextMessage, ctx: Context, n: str, target: str) -> None:
    cfg, person = ctx.config, ctx.person
    p = managed_problem(ctx, n, "转派")
    if p is None:
        return
    pid = p["id"]
    grid = find_grid(cfg, target)
    if grid is None:
        names = "、".join(g.name for g in cfg.grids)
        ctx.reply(f"没有找到网格“{target.strip() or '(未填写)'}”。请写成“转 #{pid} 2号网格”,可选:{names}。")
        return
    if p["status"] == PENDING:
        ctx.reply(f"#{pid} 已提交整改,正在等待核查,核查后再转派。")
        return
    if p["status"] != "open":
        ctx.reply(f"#{pid} 已销号,无需转派;如需重新整改请先发送“重开 #{pid} 原因”。")
        return
    if grid.id == p["grid"]:
        ctx.reply(f"#{pid} 已经在{grid.name}。")
        return
    async with _lock(ctx):
        p = ctx.store.get(TABLE, pid)
        old = p["grid"]
        p = {**p, "grid": grid.id,
             "history": p["history"] + [history(ctx, "reassigned", f"{grid_name(cfg, old)} → {grid.name}",
                                                from_grid=old, to_grid=grid.id)]}
        await ctx.store.put(TABLE, p)
    told = leader_names(cfg, grid.id)
    ctx.reply(f"已将 #{pid} 从{grid_name(cfg, old)}转至{grid.name}" + (f",已告知网格长{told}。" if told else "。"))
    for leader in cfg.grid_leaders(grid.id):
        if leader.userid != person.userid:
            ctx.transport.send_text(leader.userid, f"【转派问题】#{pid} 由{grid_name(cfg, old)}转来:{short(p['text'], 60)}\n"
                                                   f"整改期限 {fmt_time(cfg, p['deadline'])}。")
    if p["reporter"] != person.userid and cfg.person(p["reporter"]):
        ctx.transport.send_text(p["reporter"], f"您上报的问题 #{pid} 已由{person.name}转至{grid.name}处理。")


@router.on(TextMessage, filter=_match(REOPEN))
async def on_reopen(event: TextMessage, ctx: Context, n: str, note: str) -> None:
    cfg, person = ctx.config, ctx.person
    p = managed_problem(ctx, n, "重开")
    if p is None:
        return
    pid = p["id"]
    if p["status"] in NOT_CLOSED:
        ctx.reply(f"#{pid} 尚未销号,仍在整改中,无需重开。")
        return
    reason = reopen_reason(note)
    now = ctx.event.create_time
    async with _lock(ctx):
        p = ctx.store.get(TABLE, pid)
        hours = deadline_hours(cfg, p.get("category"))
        entry = history(ctx, "reopened", reason, previous={
            "closed_at": p.get("closed_at"), "closed_by": p.get("closed_by"),
            "closed_note": p.get("closed_note"), "closed_without_photo": p.get("closed_without_photo"),
            "photos_after": p.get("photos_after", []), "fixed_by": p.get("fixed_by"), "fixed_at": p.get("fixed_at")})
        p = reopen_doc(p, entry, now, hours)
        await ctx.store.put(TABLE, p)
    deadline = fmt_time(cfg, p["deadline"])
    ctx.reply(f"已重开 #{pid},新的整改期限 {deadline}。")
    text = (f"【问题重开】#{pid} {grid_name(cfg, p['grid'])}:{short(p['text'], 60)}\n"
            f"{person.name}重开" + (f",原因:{reason}" if reason else "") + f"。整改期限 {deadline}。")
    told = {person.userid}
    previous = entry["previous"]
    for uid in [u.userid for u in cfg.grid_leaders(p["grid"])] + [previous["closed_by"], previous["fixed_by"],
                                                                  p["reporter"]]:
        if uid and uid not in told and cfg.person(uid):
            ctx.transport.send_text(uid, text)
            told.add(uid)


# --- opening -------------------------------------------------------------------------

@router.on(TextMessage, filter=lambda e, ctx: (b := parse_opening(e.content, ctx.sent_on)) is not None
           and {"body": b})
async def on_open(event: TextMessage, ctx: Context, body: str) -> None:
    cfg, person = ctx.config, ctx.person
    if not body:
        ctx.reply(USAGE)
        return
    if len(body) > 500:
        body = body[:500]
    existing = [p for p in ctx.store.docs(TABLE) if p.get("msgid") == event.key]
    if existing:
        return  # replayed after a restart: already registered
    grid_id = ctx.grid_id
    if not grid_id or cfg.grid(grid_id) is None:
        g = grid_in_text(cfg, body)
        if g is None:
            names = "、".join(g.name for g in cfg.grids)
            ctx.reply(f"您不属于某个网格,请注明问题所在网格,例如“问题:1号网格 幸福路3号楼下堆放建筑垃圾”。可选:{names}。")
            return
        grid_id = g.id
    cat = detect_category(cfg, body)
    hours = deadline_hours(cfg, cat.id if cat else None)
    async with _lock(ctx):
        pid = await ctx.store.next_id("P")
        doc = new_problem(pid, person, event, grid_id, body, cat.id if cat else None, hours)
        # Flagged, never refused: the person on the spot may know it is a new problem.
        dups = possible_duplicates(open_problems(ctx.store, grid_id), grid_id, doc["category"], body)
        if dups:
            doc["possible_duplicates"] = [d["id"] for d in dups]
        earlier = [ctx.store.get(TABLE, i) for i in recurrence_of(cfg, ctx.store.docs(TABLE), doc)]
        if earlier:
            doc["recurs_of"] = [e["id"] for e in earlier]
        await ctx.store.put(TABLE, doc)
    await remember(ctx, pid, "opened")
    deadline = fmt_time(cfg, doc["deadline"])
    leaders = [p for p in cfg.grid_leaders(grid_id) if p.userid != person.userid]
    reply = f"已登记 #{pid},整改期限 {deadline}"
    if leaders:
        reply += f",已告知网格长{'、'.join(p.name for p in leaders)}"
    reply += "。"
    if dups:
        reply += (f"\n疑似重复登记,已有 {duplicates_text(cfg, dups)},如确为新问题可忽略本提示;"
                  f"如是重复登记,请发送“撤回 #{pid} 重复登记”。")
    if earlier:
        reply += f"\n⚠ 反弹问题:{recurrence_text(cfg, earlier)}。"
    reply += f"\n可在{cfg.problems.photo_minutes}分钟内补发现场照片和位置。"
    ctx.reply(reply)
    cat_text = f"({cat.label})" if cat else ""
    dup_text = (f"\n⚠ 疑似重复登记,已有 {duplicates_text(cfg, dups)},请核实;如属重复,"
                f"可发送“撤回 #{pid} 重复登记”。" if dups else "")
    if earlier:
        dup_text += f"\n⚠ 反弹问题:{recurrence_text(cfg, earlier)},请关注。"
    for leader in leaders:
        ctx.transport.send_text(leader.userid, f"【新问题】#{pid} {grid_name(cfg, grid_id)}{cat_text}\n"
                                               f"{person.name}:{short(body, 200)}\n整改期限 {deadline}。"
                                               f"整改后请发送“整改 #{pid} 已清理”并附整改后照片。{dup_text}")


# --- photos and location that follow --------------------------------------------------

def photo_context(event, ctx: Context) -> dict | None:
    c = follow_up(event, ctx)
    return {"context": c} if c and c["kind"] in ("opened", "closed") else None


@router.on(ImageMessage, filter=photo_context)
async def on_photo(event: ImageMessage, ctx: Context, context: dict) -> None:
    cfg = ctx.config
    got = await read_photo(ctx)
    if got is None:
        return
    photo, facts = got
    pid, kind = context["problem"], context["kind"]
    p = ctx.store.get(TABLE, pid)
    if p["status"] == WITHDRAWN:
        ctx.reply(withdrawn_note(cfg, p) + ",照片未添加。")
        return
    rel, _thumb = await save_photo(media_for(cfg), ctx.sent_on, p["grid"], ctx.person.userid, photo, kind="problem")
    record = photo_record(facts)
    async with _lock(ctx):
        p = ctx.store.get(TABLE, pid)
        field = "photos_before" if kind == "opened" else "photos_after"
        if rel in p.get(field, []):
            ctx.reply(f"这张照片已添加到 #{pid}。")
            return
        p = {**p, field: p.get(field, []) + [rel], "photo_records": {**(p.get("photo_records") or {}), rel: record},
             "history": p["history"] + [history(ctx, "photo_before" if kind == "opened" else "photo_after", photo=rel)]}
        if kind == "opened" and not p.get("location") and record["gps"]:
            # The photo's own position stands for the problem's until a location is sent.
            p["location"] = {**record["gps"], "label": "", "source": "photo"}
        await ctx.store.put(TABLE, p)
    if kind == "opened":
        ctx.reply(f"已添加现场照片到 #{pid}(共{len(p['photos_before'])}张)。")
    else:
        # A photo more after a problem closed without a check: kept in the ledger with the rest.
        ctx.reply(f"已补充 #{pid} 的整改后照片(共{len(p['photos_after'])}张)。")


def location_context(event, ctx: Context) -> dict | None:
    c = follow_up(event, ctx)
    return {"context": c} if c and c["kind"] == "opened" else None


@router.on(LocationMessage, filter=location_context)
async def on_location(event: LocationMessage, ctx: Context, context: dict) -> None:
    pid = context["problem"]
    loc = {"lat": event.lat, "lng": event.lng, "label": event.label}
    async with _lock(ctx):
        p = ctx.store.get(TABLE, pid)
        if p["status"] == WITHDRAWN:
            ctx.reply(withdrawn_note(ctx.config, p) + ",位置未记录。")
            return
        p = {**p, "location": loc, "history": p["history"] + [history(ctx, "location", event.label, location=loc)]}
        # Places are told apart better by where they are than by how they were written.
        was = p.get("recurs_of") or []
        now = recurrence_of(ctx.config, ctx.store.docs(TABLE), p)
        p = {**p, "recurs_of": now} if now or was else p
        await ctx.store.put(TABLE, p)
    reply = f"已记录 #{pid} 的位置:{event.label or f'{event.lat:.5f}, {event.lng:.5f}'}。"
    if now and now != was:
        reply += f"\n⚠ 反弹问题:{recurrence_text(ctx.config, [ctx.store.get(TABLE, i) for i in now])}。"
    ctx.reply(reply)
