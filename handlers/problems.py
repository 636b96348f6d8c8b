"""Problems found on patrol (问题登记) and their rectification (整改、销号).

Texts: "问题:…" opens a problem; "整改 #P12 已清理" closes it (members need an after-photo);
"转 #P12 2号网格" reassigns, "重开 #P12 原因" reopens; "问题" / "我的问题" lists the open ones.

Photos and a location sent within `[problems] photo_minutes` of an opening or a close belong to
that problem. Which problem a photo belongs to is kept per sender in the "problem_context" table
(main shard), so it survives a restart; without such a context images fall through to check-ins.
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime

from bot.clock import zh_date
from bot.config import Config, Person
from bot.context import Context
from bot.router import Router
from bot.events import ImageMessage, LocationMessage, TextMessage
from bot.taxonomy import Category
from bot import media
from bot.numbers_zh import chinese_number, normalize
from bot.report_parser import parse_report

router = Router("problems")

TABLE = "problems"
CONTEXT_TABLE = "problem_context"
# WeCom CreateTime has one-second resolution and a photo may be stamped a moment before the
# text that opened its context was processed.
CLOCK_SLACK = 5

# Patterns run on the text as typed (full-width punctuation included) so that what is stored
# reads exactly as the person wrote it.
_COLON = "[:\uff1a]"
_SEP = "[,\uff0c\u3001;\uff1b]"
_ID = r"[#\uff03]?\s*[Pp\uff30\uff50]\s*(?P<n>\d{1,7})"
OPEN_PREFIX = re.compile(rf"^(?P<prefix>发现问题|问题|隐患|反映)(?P<sep>\s*{_COLON}\s*|(?:\s|{_SEP})+)?(?P<body>.*)$", re.S)
# What follows the prefix when it is the name of an activity, not a problem ("隐患排查…",
# "问题整改…"): that text is a report.
ACTIVITY_WORDS = ("排查", "整改", "销号", "汇总", "台账", "台帐", "清单", "统计", "处理", "摸排", "督导")
LIST_CMD = re.compile(r"^(问题|我的问题|问题列表|问题清单|待整改|待整改问题|本网格问题)$")
DETAIL_CMD = re.compile(rf"^(?:问题|查看|查询)\s*{_ID}\s*$")
_TAIL = rf"(?:\s|{_COLON}|{_SEP})*(?P<note>.*)$"
CLOSE_VERB_FIRST = re.compile(
    rf"^(?P<verb>整改完成|已整改|整改|已完成|完成|已处理|已销号|销号|进展)\s*{_COLON}?\s*{_ID}{_TAIL}", re.S)
CLOSE_ID_FIRST = re.compile(
    rf"^{_ID}(?:\s|{_COLON}|{_SEP})*(?P<verb>已整改|整改完成|已完成|已处理|已清理|已销号|销号)(?P<note>.*)$", re.S)
REASSIGN = re.compile(rf"^(?:转派|转交|改派|转)\s*{_ID}\s*(?:到|至|给)?\s*(?P<target>.*)$", re.S)
REOPEN = re.compile(rf"^(?:重开|重新打开|重启)\s*{_ID}{_TAIL}", re.S)

# A "整改 #P12 …" note closes the problem when it says the work is done; otherwise it is progress.
DONE_WORDS = ("已清理", "已整改", "已完成", "完成", "销号", "已处理", "已清除", "已拆除", "已修复", "已清运",
              "已解决", "办结", "已恢复", "已规范", "已劝离", "已取缔", "已清", "完毕", "已更换", "已维修",
              "已移除", "已搬离", "已整治", "已落实")
NOT_DONE = re.compile(r"未完成|没完成|尚未|还没|未处理|未整改|正在|进行中|计划|预计|明天|下周")
ALWAYS_CLOSE_VERBS = {"已整改", "整改完成", "已完成", "完成", "已处理", "销号", "已销号", "已清理"}

USAGE = "请写明问题内容,例如“问题:幸福路3号楼下堆放建筑垃圾”,并在10分钟内补发现场照片。"


# --- time and wording ----------------------------------------------------------------

def fmt_time(cfg: Config, ts: float) -> str:
    dt = datetime.fromtimestamp(ts, cfg.tz)
    return f"{zh_date(dt)} {dt:%H:%M}"


def fmt_duration(seconds: float) -> str:
    minutes = max(0, int(seconds // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}天{hours}小时" if hours else f"{days}天"
    if hours:
        return f"{hours}小时{mins}分钟" if mins else f"{hours}小时"
    return f"{max(mins, 1)}分钟"


def days_overdue(problem: dict, now_ts: float) -> int:
    """Whole days past the deadline (0 while less than a day late)."""
    return max(0, int((now_ts - problem["deadline"]) // 86400))


def is_overdue(problem: dict, now_ts: float) -> bool:
    return problem.get("status") == "open" and problem["deadline"] < now_ts


def overdue_label(problem: dict, now_ts: float) -> str:
    late = now_ts - problem["deadline"]
    days = int(late // 86400)
    if days >= 1:
        return f"逾期{days}天"
    return f"逾期{max(1, int(late // 3600))}小时" if late >= 3600 else "逾期不足1小时"


def short(text: str, limit: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def open_problems(store, grid: str | None = None) -> list[dict]:
    return sorted((p for p in store.docs(TABLE) if p.get("status") == "open"
                   and (grid is None or p.get("grid") == grid)),
                  key=lambda p: (p["deadline"], _num(p["id"])))


def _num(pid: str) -> int:
    return int(pid[1:]) if pid[1:].isdigit() else 0


# --- who may do what ---------------------------------------------------------------

def in_scope(cfg: Config, person: Person, grid_id: str) -> bool:
    if person.role == "admin":
        return True
    if person.role != "leader":
        return False
    if not person.scope:
        return True  # a leader with no scope oversees the whole street
    grid = cfg.grid(grid_id)
    return grid_id in person.scope or (grid is not None and grid.community in person.scope)


def is_manager(cfg: Config, person: Person, grid_id: str) -> bool:
    """Grid leader of that grid, a leader over it, or an admin."""
    if person.role == "grid_leader" and person.grid == grid_id:
        return True
    return in_scope(cfg, person, grid_id)


def may_close(cfg: Config, person: Person, grid_id: str) -> bool:
    return (person.grid == grid_id and person.role in ("member", "grid_leader")) or is_manager(cfg, person, grid_id)


def grid_name(cfg: Config, grid_id: str | None) -> str:
    g = cfg.grid(grid_id)
    return g.name if g else (grid_id or "未分配网格")


def leader_names(cfg: Config, grid_id: str) -> str:
    return "、".join(p.name for p in cfg.grid_leaders(grid_id))


# --- parsing -----------------------------------------------------------------------

COUNT_PROBE = (Category("count", "count", ("问题",)),)


def has_count(body: str, day) -> bool:
    """True when the text holds a counted quantity ("2处", "三户"), not an address ("3号楼", "5栋2单元").

    The report parser already tells counts from addresses; a heading before a colon gives every
    number a category, so any count at all shows up as an item.
    """
    try:
        return bool(parse_report("问题:" + body, COUNT_PROBE, day).items)
    except Exception:
        return False


def parse_opening(text: str, day) -> str | None:
    """The problem description when `text` opens a problem; "" when only the prefix was sent."""
    m = OPEN_PREFIX.match(_clean(text))
    if not m:
        return None
    sep = m.group("sep") or ""
    body = m.group("body").strip()
    colon = bool(re.search(_COLON, sep))
    if not body:
        # "问题" alone lists problems (an earlier route); "问题:" or "隐患" alone asks for the text.
        return "" if colon or not sep else None
    if colon:
        return body
    if body.startswith(ACTIVITY_WORDS) or len(re.sub(r"\W", "", body)) < 4:
        return None
    if has_count(body, day):
        return None  # "隐患排查三处", "发现问题2处": a report with a count
    return body


ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\ufeff]")


def _clean(text: str) -> str:
    # Zero-width characters sneak in from copy-paste and would defeat the anchors.
    return ZERO_WIDTH.sub("", text).strip()


def _match(rx: re.Pattern):
    def flt(event, ctx):
        m = rx.match(_clean(event.content))
        return m.groupdict() if m else None
    return flt


def detect_category(cfg: Config, text: str) -> Category | None:
    for cat in cfg.category_list:
        if any(k and k in text for k in cat.keywords):
            return cat
    return None


def _cn_digits(s: str) -> str:
    def conv(m: re.Match) -> str:
        try:
            return str(chinese_number(m.group(0)))
        except Exception:
            return m.group(0)
    return re.sub(r"[一二两三四五六七八九十百零〇]+", conv, s)


def find_grid(cfg: Config, target: str):
    """A grid by id or name ("g2", "2号网格", "2号", "二号网格", "第二网格")."""
    t = normalize(target).strip().strip("。.,,")
    if not t:
        return None
    variants = {t, _cn_digits(t)}
    for v in list(variants):
        variants.add(v.removeprefix("第"))
    for g in cfg.grids:
        if g.id.lower() in {v.lower() for v in variants}:
            return g
    for g in cfg.grids:
        names = {g.name, _cn_digits(g.name), g.name.removesuffix("网格"), _cn_digits(g.name).removesuffix("网格")}
        names |= {n.removeprefix("第") for n in names}
        if variants & names:
            return g
        if any(v + "网格" in names for v in variants):
            return g
    return None


def grid_in_text(cfg: Config, text: str):
    for g in cfg.grids:
        if g.name and g.name in text:
            return g
    return None


# --- store helpers -----------------------------------------------------------------

def _lock(ctx_or_bot) -> asyncio.Lock:
    # One lock for all problem updates: two people may touch one problem at once, and each
    # update is read-modify-write of the whole document.
    bot = getattr(ctx_or_bot, "bot", ctx_or_bot)
    return bot.locks["problems"]


def history(ctx: Context, action: str, note: str = "", **extra) -> dict:
    # The MsgId lets a replay after a crash see that this message was already applied.
    return {"action": action, "by": ctx.person.userid, "by_name": ctx.person.name,
            "at": ctx.event.create_time, "note": note, "msgid": ctx.event.key, **extra}


async def set_context(ctx: Context, pid: str, kind: str) -> None:
    await ctx.store.put(CONTEXT_TABLE, {"id": ctx.person.userid, "problem": pid, "kind": kind,
                                        "at": ctx.event.create_time})


async def clear_context(ctx: Context) -> None:
    old = ctx.store.get(CONTEXT_TABLE, ctx.person.userid)
    if old is not None and old.get("kind"):
        await ctx.store.put(CONTEXT_TABLE, {"id": ctx.person.userid, "problem": None, "kind": None,
                                            "at": ctx.event.create_time})


def live_context(event, ctx: Context) -> dict | None:
    """The sender's problem context when it is recent enough to claim this message."""
    doc = ctx.store.get(CONTEXT_TABLE, event.sender)
    if not doc or not doc.get("kind") or not doc.get("problem"):
        return None
    age = event.create_time - doc["at"]
    if age < -CLOCK_SLACK or age > ctx.config.problems.photo_minutes * 60:
        return None
    if ctx.store.get(TABLE, doc["problem"]) is None:
        return None
    return doc


def lookup(ctx: Context, n: str) -> dict | None:
    return ctx.store.get(TABLE, f"P{int(n)}")


# --- listing -------------------------------------------------------------------------

def problem_line(cfg: Config, p: dict, now_ts: float) -> str:
    line = f"#{p['id']} {short(p['text'])} · 期限{fmt_time(cfg, p['deadline'])}"
    if is_overdue(p, now_ts):
        line += f" ⚠{overdue_label(p, now_ts)}"
    return line


@router.on(TextMessage, filter=lambda e, ctx: bool(LIST_CMD.match(e.content.strip())))
async def on_list(event: TextMessage, ctx: Context) -> None:
    cfg, person = ctx.config, ctx.person
    now = ctx.event.create_time
    if person.grid and person.role in ("member", "grid_leader"):
        grids = [person.grid]
    else:
        grids = [g.id for g in cfg.grids if in_scope(cfg, person, g.id)]
        if person.grid and person.grid not in grids:
            grids.insert(0, person.grid)
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
    p = lookup(ctx, n)
    if p is None:
        ctx.reply(f"没有找到问题 #P{int(n)},请核对编号。")
        return
    status = "待整改" if p["status"] == "open" else "已销号"
    lines = [f"#{p['id']}({grid_name(cfg, p['grid'])},{status})", p["text"],
             f"上报:{p['reporter_name']} {fmt_time(cfg, p['opened_at'])}",
             f"整改期限:{fmt_time(cfg, p['deadline'])}"]
    if p["status"] == "open" and is_overdue(p, ctx.event.create_time):
        lines[-1] += f"(⚠{overdue_label(p, ctx.event.create_time)})"
    if p.get("location"):
        loc = p["location"]
        lines.append(f"位置:{loc.get('label') or '%.5f, %.5f' % (loc['lat'], loc['lng'])}")
    lines.append(f"照片:现场{len(p.get('photos_before', []))}张,整改后{len(p.get('photos_after', []))}张")
    if p["status"] == "closed" and p.get("closed_at"):
        lines.append(f"销号:{p.get('closed_by_name') or p.get('closed_by')} {fmt_time(cfg, p['closed_at'])}"
                     + ("(未附整改后照片)" if p.get("closed_without_photo") else ""))
    ctx.reply("\n".join(lines))


# --- closing and progress -------------------------------------------------------------

def parse_close(text: str) -> dict | None:
    text = _clean(text)
    m = CLOSE_VERB_FIRST.match(text) or CLOSE_ID_FIRST.match(text)
    if not m:
        return None
    verb, note = m.group("verb"), m.group("note").strip(" \t:\uff1a,\uff0c。")
    if m.re is CLOSE_ID_FIRST:
        note = (verb + note).strip()
    if verb == "进展":
        done = False
    elif verb in ALWAYS_CLOSE_VERBS:
        done = not NOT_DONE.search(note)
    else:  # 整改 + note: closes unless the note is only progress
        done = not note or (any(w in note for w in DONE_WORDS) and not NOT_DONE.search(note))
    return {"n": m.group("n"), "note": note, "done": done}


@router.on(TextMessage, filter=lambda e, ctx: parse_close(e.content))
async def on_close(event: TextMessage, ctx: Context, n: str, note: str, done: bool) -> None:
    cfg, person = ctx.config, ctx.person
    p = lookup(ctx, n)
    if p is None:
        ctx.reply(f"没有找到问题 #P{int(n)},请核对编号(发送“问题”查看本网格待整改问题)。")
        return
    pid = p["id"]
    if not may_close(cfg, person, p["grid"]):
        ctx.reply(f"#{pid} 属于{grid_name(cfg, p['grid'])},只有该网格的网格员、网格长或领导、管理员可以整改销号。")
        return
    manager = is_manager(cfg, person, p["grid"])
    if p["status"] == "closed":
        if p.get("closed_without_photo"):
            await set_context(ctx, pid, "closed")
            ctx.reply(f"#{pid} 已于{fmt_time(cfg, p['closed_at'])}销号。如需补充整改后照片,"
                      f"请在{cfg.problems.photo_minutes}分钟内发送。")
        else:
            ctx.reply(f"#{pid} 已于{fmt_time(cfg, p['closed_at'])}由{p.get('closed_by_name') or ''}销号,无需重复操作。")
        return
    if not done:
        async with _lock(ctx):
            p = ctx.store.get(TABLE, pid)
            await ctx.store.put(TABLE, {**p, "history": p["history"] + [history(ctx, "progress", note)]})
        ctx.reply(f"已记录 #{pid} 的整改进展。整改完成后请发送“整改 #{pid} 已清理”并附整改后照片。")
        return
    if not manager:
        async with _lock(ctx):
            p = ctx.store.get(TABLE, pid)
            await ctx.store.put(TABLE, {**p, "history": p["history"] + [history(ctx, "close_requested", note)]})
        await set_context(ctx, pid, "close_pending")
        ctx.reply(f"收到 #{pid} 的整改情况。请在{cfg.problems.photo_minutes}分钟内发送整改后的现场照片,"
                  f"收到照片即销号。")
        return
    # Grid leaders and above may close on their word; a photo that follows is still attached.
    async with _lock(ctx):
        p = ctx.store.get(TABLE, pid)
        if p["status"] != "open":
            return
        p = close_doc(ctx, p, note, with_photo=False)
        await ctx.store.put(TABLE, p)
    await set_context(ctx, pid, "closed")
    ctx.reply(closed_reply(cfg, p) + f"\n未附整改后照片;如有照片,请在{cfg.problems.photo_minutes}分钟内发送,将补入台账。")
    notify_closed(ctx, p)


def close_doc(ctx: Context, p: dict, note: str, *, with_photo: bool, photo: str | None = None) -> dict:
    closed_at = ctx.event.create_time
    entry = history(ctx, "closed", note, with_photo=with_photo)
    if photo:
        entry["photo"] = photo
    return {**p, "status": "closed", "closed_at": closed_at, "closed_by": ctx.person.userid,
            "closed_by_name": ctx.person.name, "closed_note": note or p.get("closed_note"),
            "closed_without_photo": not with_photo,
            "photos_after": p.get("photos_after", []) + ([photo] if photo else []),
            "history": p["history"] + [entry]}


def closed_reply(cfg: Config, p: dict) -> str:
    start = p.get("reopened_at") or p["opened_at"]
    text = f"已销号 #{p['id']},用时{fmt_duration(p['closed_at'] - start)}"
    if p["closed_at"] > p["deadline"]:
        text += f"(超过整改期限{fmt_duration(p['closed_at'] - p['deadline'])})"
    return text + "。"


def notify_closed(ctx: Context, p: dict) -> None:
    cfg = ctx.config
    photo = "附整改后照片" if not p.get("closed_without_photo") else "未附整改后照片"
    text = (f"【已销号】#{p['id']} {grid_name(cfg, p['grid'])}:{short(p['text'], 60)}\n"
            f"由{ctx.person.name}于{fmt_time(cfg, p['closed_at'])}销号({photo})。")
    told = {ctx.person.userid}
    for leader in cfg.grid_leaders(p["grid"]):
        if leader.userid not in told:
            ctx.transport.send_text(leader.userid, text)
            told.add(leader.userid)
    if p["reporter"] not in told and cfg.person(p["reporter"]):
        ctx.transport.send_text(p["reporter"], f"您上报的问题 #{p['id']} 已由{ctx.person.name}整改销号。")


# --- reassign and reopen ----------------------------------------------------------------

def managed_problem(ctx: Context, n: str, verb: str) -> dict | None:
    """The problem #P<n> if the sender may manage it; otherwise replies why not."""
    p = lookup(ctx, n)
    if p is None:
        ctx.reply(f"没有找到问题 #P{int(n)},请核对编号。")
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
    if p["status"] == "open":
        ctx.reply(f"#{pid} 尚未销号,仍在整改中,无需重开。")
        return
    reason = re.sub(rf"^原因\s*{_COLON}?\s*", "", note.strip())
    now = ctx.event.create_time
    async with _lock(ctx):
        p = ctx.store.get(TABLE, pid)
        hours = deadline_hours(cfg, p.get("category"))
        entry = history(ctx, "reopened", reason, previous={
            "closed_at": p.get("closed_at"), "closed_by": p.get("closed_by"),
            "closed_note": p.get("closed_note"), "closed_without_photo": p.get("closed_without_photo"),
            "photos_after": p.get("photos_after", [])})
        p = {**p, "status": "open", "deadline": now + int(hours * 3600), "reopened_at": now,
             "closed_at": None, "closed_by": None, "closed_by_name": None, "closed_note": None,
             "closed_without_photo": None, "photos_after": [], "history": p["history"] + [entry]}
        await ctx.store.put(TABLE, p)
    deadline = fmt_time(cfg, p["deadline"])
    ctx.reply(f"已重开 #{pid},新的整改期限 {deadline}。")
    text = (f"【问题重开】#{pid} {grid_name(cfg, p['grid'])}:{short(p['text'], 60)}\n"
            f"{person.name}重开" + (f",原因:{reason}" if reason else "") + f"。整改期限 {deadline}。")
    told = {person.userid}
    previous_closer = entry["previous"]["closed_by"]
    for uid in [u.userid for u in cfg.grid_leaders(p["grid"])] + [previous_closer, p["reporter"]]:
        if uid and uid not in told and cfg.person(uid):
            ctx.transport.send_text(uid, text)
            told.add(uid)


# --- opening -------------------------------------------------------------------------

def deadline_hours(cfg: Config, category: str | None) -> float:
    for cat in cfg.category_list:
        if cat.id == category and cat.deadline_hours:
            return cat.deadline_hours
    return cfg.problems.deadline_hours


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
    opened = event.create_time
    async with _lock(ctx):
        pid = ctx.store.next_id("P")
        doc = {
            "id": pid, "msgid": event.key, "grid": grid_id, "reporter": person.userid,
            "reporter_name": person.name, "text": body, "category": cat.id if cat else None,
            "opened_at": opened, "deadline": opened + int(hours * 3600), "status": "open",
            "closed_at": None, "closed_by": None, "closed_by_name": None, "closed_note": None,
            "closed_without_photo": None, "photos_before": [], "photos_after": [], "location": None,
            "history": [history(ctx, "opened", body)],
        }
        await ctx.store.put(TABLE, doc)
    await set_context(ctx, pid, "opened")
    deadline = fmt_time(cfg, doc["deadline"])
    leaders = [p for p in cfg.grid_leaders(grid_id) if p.userid != person.userid]
    reply = f"已登记 #{pid},整改期限 {deadline}"
    if leaders:
        reply += f",已告知网格长{'、'.join(p.name for p in leaders)}"
    reply += f"。\n可在{cfg.problems.photo_minutes}分钟内补发现场照片和位置。"
    ctx.reply(reply)
    cat_text = f"({cat.label})" if cat else ""
    for leader in leaders:
        ctx.transport.send_text(leader.userid, f"【新问题】#{pid} {grid_name(cfg, grid_id)}{cat_text}\n"
                                               f"{person.name}:{short(body, 200)}\n整改期限 {deadline}。"
                                               f"整改后请发送“整改 #{pid} 已清理”并附整改后照片。")


# --- photos and location that follow --------------------------------------------------

PHOTO_UNREADABLE = "照片无法识别,请重新发送一张清晰的现场照片(JPG/PNG)。"
PHOTO_EXPIRED = "照片已过期,无法识别,请重新发送。"


@router.on(ImageMessage, filter=lambda e, ctx: (c := live_context(e, ctx)) and {"context": c})
async def on_photo(event: ImageMessage, ctx: Context, context: dict) -> None:
    cfg = ctx.config
    try:
        photo = await ctx.photo()
    except media.PhotoExpired:
        ctx.reply(PHOTO_EXPIRED)
        return
    except media.PhotoError:
        ctx.reply(PHOTO_UNREADABLE)
        return
    pid, kind = context["problem"], context["kind"]
    p = ctx.store.get(TABLE, pid)
    rel, _thumb = await media.save(cfg.data_path, ctx.sent_on, p["grid"], ctx.person.userid, photo, kind="problem")
    async with _lock(ctx):
        p = ctx.store.get(TABLE, pid)
        if kind == "opened":
            if rel in p["photos_before"]:
                ctx.reply(f"这张照片已添加到 #{pid}。")
                return
            p = {**p, "photos_before": p["photos_before"] + [rel],
                 "history": p["history"] + [history(ctx, "photo_before", photo=rel)]}
            await ctx.store.put(TABLE, p)
            ctx.reply(f"已添加现场照片到 #{pid}(共{len(p['photos_before'])}张)。")
            return
        if rel in p.get("photos_after", []):
            ctx.reply(f"这张照片已添加到 #{pid}。")
            return
        if kind == "close_pending" and p["status"] == "open":
            note = next((h.get("note", "") for h in reversed(p["history"]) if h["action"] == "close_requested"), "")
            p = close_doc(ctx, p, note, with_photo=True, photo=rel)
            await ctx.store.put(TABLE, p)
            closing = True
        else:
            # After a close on someone's word (or a second after-photo): attach it to the ledger.
            p = {**p, "photos_after": p.get("photos_after", []) + [rel],
                 "closed_without_photo": False if p["status"] == "closed" else p.get("closed_without_photo"),
                 "history": p["history"] + [history(ctx, "photo_after", photo=rel)]}
            await ctx.store.put(TABLE, p)
            closing = False
    if closing:
        await set_context(ctx, pid, "closed")
        ctx.reply(closed_reply(cfg, p))
        notify_closed(ctx, p)
    else:
        ctx.reply(f"已补充 #{pid} 的整改后照片(共{len(p['photos_after'])}张)。")


def location_context(event, ctx: Context) -> dict | None:
    c = live_context(event, ctx)
    return {"context": c} if c and c["kind"] == "opened" else None


@router.on(LocationMessage, filter=location_context)
async def on_location(event: LocationMessage, ctx: Context, context: dict) -> None:
    pid = context["problem"]
    loc = {"lat": event.lat, "lng": event.lng, "label": event.label}
    async with _lock(ctx):
        p = ctx.store.get(TABLE, pid)
        p = {**p, "location": loc, "history": p["history"] + [history(ctx, "location", event.label, location=loc)]}
        await ctx.store.put(TABLE, p)
    ctx.reply(f"已记录 #{pid} 的位置:{event.label or f'{event.lat:.5f}, {event.lng:.5f}'}。")
