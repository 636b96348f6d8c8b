"""The problem ledger (问题台账): what the problem handlers and the jobs share about problems
found on patrol.

A problem is one document in the "problems" table (main shard), its whole story kept in its
"history". Which problem a follow-up photo or location belongs to is kept per sender in the
"problem_context" table, so it survives a restart.

The module is named for the ledger, not "problems", because handlers/problems.py holds the
routes and no two modules may share a name.
"""

from __future__ import annotations

import asyncio
import math
from datetime import datetime

from bot.clock import CLOCK_SLACK, zh_date
from bot.config import Config, Person

TABLE = "problems"
CONTEXT_TABLE = "problem_context"
# A problem is "open" (待整改: being fixed), "pending_check" (待核查: a fix was reported and waits
# for its check, bot.problem_review), "closed" (已销号) or "withdrawn" (已撤回: registered by
# mistake or twice; it leaves every list, count and reminder but keeps its history). Open and
# pending problems are both "not closed yet" (open_problems); only an open one can be overdue.
PENDING = "pending_check"
WITHDRAWN = "withdrawn"
NOT_CLOSED = ("open", PENDING)
STATUS_ZH = {"open": "待整改", PENDING: "待核查", "closed": "已销号", WITHDRAWN: "已撤回"}


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


def short(text: str | None, limit: int = 40) -> str:
    """A problem's text on one line of at most `limit` characters, the ellipsis included."""
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def problem_line(cfg: Config, p: dict, now_ts: float) -> str:
    line = f"#{p['id']} {short(p['text'])} · 期限{fmt_time(cfg, p['deadline'])}"
    if p.get("status") == PENDING:
        line += " · 待核查"
    elif is_overdue(p, now_ts):
        line += f" ⚠{overdue_label(p, now_ts)}"
    if p.get("recurs_of"):
        line += " · 反弹"
    return line


def closed_reply(cfg: Config, p: dict) -> str:
    start = p.get("reopened_at") or p["opened_at"]
    text = f"已销号 #{p['id']},用时{fmt_duration(p['closed_at'] - start)}"
    if p["closed_at"] > p["deadline"]:
        text += f"(超过整改期限{fmt_duration(p['closed_at'] - p['deadline'])})"
    return text + "。"


def duplicates_text(cfg: Config, found: list[dict], limit: int = 2) -> str:
    """The open problems a registration may repeat: "#P3(幸福路3号楼下堆放建筑垃圾,李四 11月24日 09:30登记)"."""
    text = "、".join(f"#{p['id']}({short(p['text'], 30)},{p['reporter_name']} {fmt_time(cfg, p['opened_at'])}登记)"
                    for p in found[:limit])
    return text + (f"等{len(found)}项" if len(found) > limit else "")


def recurrence_text(cfg: Config, earlier: list[dict]) -> str:
    """"该处30天内已有同类问题 #P3(11月2日登记,已销号),本次为第2次" for a recurrence (反弹)."""
    shown = "、".join(f"#{p['id']}({zh_date(datetime.fromtimestamp(p['opened_at'], cfg.tz))}登记,"
                     f"{STATUS_ZH.get(p['status'], p['status'])})" for p in earlier[-2:])
    more = f"等{len(earlier)}项" if len(earlier) > 2 else ""
    return f"该处{cfg.problems.recurrence_days}天内已有同类问题 {shown}{more},本次为第{len(earlier) + 1}次"


def detail_text(cfg: Config, p: dict, now_ts: float) -> str:
    """Everything about one problem, as "问题 #P12" shows it."""
    status = STATUS_ZH.get(p["status"], p["status"])
    lines = [f"#{p['id']}({grid_name(cfg, p['grid'])},{status})", p["text"],
             f"上报:{p['reporter_name']} {fmt_time(cfg, p['opened_at'])}",
             f"整改期限:{fmt_time(cfg, p['deadline'])}"]
    if p["status"] == "open" and is_overdue(p, now_ts):
        lines[-1] += f"(⚠{overdue_label(p, now_ts)})"
    if p.get("location"):
        loc = p["location"]
        lines.append(f"位置:{loc.get('label') or '%.5f, %.5f' % (loc['lat'], loc['lng'])}")
    lines.append(f"照片:现场{len(p.get('photos_before', []))}张,整改后{len(p.get('photos_after', []))}张")
    if p.get("recurs_of"):
        lines.append(f"反弹:该处{cfg.problems.recurrence_days}天内已有同类问题 "
                     + "、".join(f"#{pid}" for pid in p["recurs_of"]))
    if p["status"] == PENDING and p.get("pending"):
        pend = p["pending"]
        lines.append(f"整改:{pend['by_name']} {fmt_time(cfg, pend['at'])}提交,等待{pend.get('checker_words') or '核查'}核查")
    if p.get("rejections"):
        lines.append(f"整改被驳回{p['rejections']}次")
    if p["status"] == "closed" and p.get("closed_at"):
        if p.get("fixed_by") and p.get("fixed_by") != p.get("closed_by"):
            lines.append(f"整改:{p.get('fixed_by_name')} {fmt_time(cfg, p['fixed_at'])}")
        lines.append(f"销号:{p.get('closed_by_name') or p.get('closed_by')} {fmt_time(cfg, p['closed_at'])}"
                     + ("(未附整改后照片)" if p.get("closed_without_photo") else ""))
    if p["status"] == WITHDRAWN:
        lines.append(f"撤回:{p.get('withdrawn_by_name')} {fmt_time(cfg, p['withdrawn_at'])}"
                     + (f",原因:{p['withdrawn_reason']}" if p.get("withdrawn_reason") else ""))
    return "\n".join(lines)


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


def grids_in_view(cfg: Config, person: Person) -> list[str]:
    """The grids whose open problems `person` is shown: a member's or grid leader's own grid;
    for leaders and admins those they oversee, with a grid of their own first."""
    if person.grid and person.role in ("member", "grid_leader"):
        return [person.grid]
    grids = [g.id for g in cfg.grids if in_scope(cfg, person, g.id)]
    if person.grid and person.grid not in grids:
        grids.insert(0, person.grid)
    return grids


def grid_name(cfg: Config, grid_id: str | None) -> str:
    g = cfg.grid(grid_id)
    return g.name if g else (grid_id or "未分配网格")


def leader_names(cfg: Config, grid_id: str) -> str:
    return "、".join(p.name for p in cfg.grid_leaders(grid_id))


def deadline_hours(cfg: Config, category: str | None) -> float:
    for cat in cfg.category_list:
        if cat.id == category and cat.deadline_hours:
            return cat.deadline_hours
    return cfg.problems.deadline_hours


# --- records -------------------------------------------------------------------------

def _num(pid: str) -> int:
    return int(pid[1:]) if pid[1:].isdigit() else 0


def open_problems(store, grid: str | None = None) -> list[dict]:
    """Problems not closed yet, being fixed or waiting for their check (of one grid, or all),
    earliest deadline first."""
    # The open ones are a few among a year's: per grid from the store's day index (every grid
    # asks, every morning), all of them through the index on status.
    if grid is not None and getattr(store, "days", None) is not None:
        store.ensure("main", TABLE)
        docs = iter(store.days.not_closed(grid))
    else:
        docs = (d for status in NOT_CLOSED for d in store.docs_by(TABLE, "status", status, ["main"]))
    # A problem always gets a deadline when opened; one without sorts last rather than failing.
    return sorted((p for p in docs if grid is None or p.get("grid") == grid),
                  key=lambda p: (p.get("deadline") or math.inf, _num(p["id"])))


def lookup(store, n: str) -> dict | None:
    """Problem #P<n>; `n` as typed, leading zeros allowed."""
    return store.get(TABLE, f"P{int(n)}")


def problem_lock(bot) -> asyncio.Lock:
    # One lock for all problem updates: two people may touch one problem at once, and each
    # update is read-modify-write of the whole document.
    return bot.locks["problems"]


def history_entry(person: Person, event, action: str, note: str = "", **extra) -> dict:
    """One line of a problem's history, written on behalf of `person` for `event`."""
    # The MsgId lets a replay after a crash see that this message was already applied.
    return {"action": action, "by": person.userid, "by_name": person.name,
            "at": event.create_time, "note": note, "msgid": event.key, **extra}


def new_problem(pid: str, person: Person, event, grid_id: str, text: str, category: str | None,
                hours: float) -> dict:
    """The document of problem `pid`, opened by `person` with `event`."""
    opened = event.create_time
    return {
        "id": pid, "msgid": event.key, "grid": grid_id, "reporter": person.userid,
        "reporter_name": person.name, "text": text, "category": category,
        "opened_at": opened, "deadline": opened + int(hours * 3600), "status": "open",
        "closed_at": None, "closed_by": None, "closed_by_name": None, "closed_note": None,
        "closed_without_photo": None, "photos_before": [], "photos_after": [], "location": None,
        "history": [history_entry(person, event, "opened", text)],
    }


def reopen_doc(p: dict, entry: dict, now: float, hours: float) -> dict:
    """The closed problem `p` open again from `now`; `entry` is the "reopened" history line."""
    # A new deadline starts a new escalation ladder.
    return {**p, "status": "open", "deadline": now + int(hours * 3600), "reopened_at": now, "ladder": None,
            "closed_at": None, "closed_by": None, "closed_by_name": None, "closed_note": None,
            "closed_without_photo": None, "photos_after": [], "fixed_by": None, "fixed_by_name": None,
            "fixed_at": None, "history": p["history"] + [entry]}


# --- withdrawal (撤回) -------------------------------------------------------------------

# After one of these, even the reporter's own, the problem has been worked on as a problem.
_HANDLING = ("reassigned", "closed", "reopened", "fix_submitted", "check_rejected")


def acted_on(p: dict) -> bool:
    """Has anyone acted on `p`? Anything someone other than the reporter added (a progress note, a
    close request, an after-photo), or any reassignment, close or reopening."""
    return any(h.get("by") != p["reporter"] or h.get("action") in _HANDLING for h in p["history"][1:])


def withdrawn_note(cfg: Config, p: dict) -> str:
    reason = p.get("withdrawn_reason")
    return (f"#{p['id']} 已于{fmt_time(cfg, p['withdrawn_at'])}由{p.get('withdrawn_by_name')}撤回"
            + (f"(原因:{reason})" if reason else ""))


def withdraw_refusal(cfg: Config, person: Person, p: dict) -> str | None:
    """Why `person` may not withdraw `p`, or None when they may.

    The grid leader of the problem's grid may withdraw any open problem there, an admin any open
    problem; the reporter their own, until anyone has acted on it.
    """
    pid = p["id"]
    if p["status"] == WITHDRAWN:
        return withdrawn_note(cfg, p) + ",无需重复撤回。"
    if p["status"] == PENDING:
        return f"#{pid} 已提交整改,正在等待核查,不能撤回。"
    if p["status"] != "open":
        return f"#{pid} 已销号,不能撤回。"
    if person.role == "admin" or (person.role == "grid_leader" and person.grid == p["grid"]):
        return None
    if person.userid != p["reporter"]:
        return f"#{pid} 由{p['reporter_name']}登记,只有登记人或本网格网格长可以撤回。"
    if acted_on(p):
        return f"#{pid} 已有人处理,不能撤回,请联系网格长{leader_names(cfg, p['grid'])}。"
    return None


def withdraw_doc(p: dict, person: Person, event, reason: str) -> dict:
    """The open problem `p` withdrawn by `person` with `event`; its history stays."""
    return {**p, "status": WITHDRAWN, "withdrawn_at": event.create_time, "withdrawn_by": person.userid,
            "withdrawn_by_name": person.name, "withdrawn_reason": reason,
            "history": p["history"] + [history_entry(person, event, "withdrawn", reason)]}


def withdrawal_messages(cfg: Config, person: Person, p: dict) -> tuple[str, list[tuple[str, str]]]:
    """The reply to `person`, who just withdrew `p`, and (userid, text) for everyone else to tell:
    the grid's leaders, who were told of it when it was registered, and its reporter."""
    pid, reason = p["id"], p.get("withdrawn_reason")
    why = f",原因:{reason}" if reason else ""
    leaders = [u for u in cfg.grid_leaders(p["grid"]) if u.userid != person.userid]
    reporter = cfg.person(p["reporter"])
    if reporter is None or reporter.userid == person.userid or reporter in leaders:
        reporter = None
    notice = f"【问题撤回】#{pid} {grid_name(cfg, p['grid'])}:{short(p['text'], 60)}\n{person.name}撤回{why}。"
    notices = [(u.userid, notice) for u in leaders]
    if reporter:
        notices.append((reporter.userid, f"您登记的问题 #{pid} 已由{person.name}撤回{why}。如问题仍存在,请重新登记。"))
    told = ([f"网格长{'、'.join(u.name for u in leaders)}"] if leaders else []) + (
        [f"登记人{reporter.name}"] if reporter else [])
    reply = (f"已撤回 #{pid}({short(p['text'], 30)}){why}。该问题不再列入待整改问题和统计"
             + (f",已告知{'和'.join(told)}。" if told else "。"))
    return reply, notices


# --- which problem a follow-up message belongs to --------------------------------------

async def set_context(store, userid: str, pid: str, kind: str, at: float) -> None:
    await store.put(CONTEXT_TABLE, {"id": userid, "problem": pid, "kind": kind, "at": at})


async def drop_context(store, userid: str, pid: str, at: float) -> None:
    """`userid`'s next photo no longer belongs to `pid` (it is a check-in again)."""
    doc = store.get(CONTEXT_TABLE, userid)
    if doc and doc.get("problem") == pid:
        await store.put(CONTEXT_TABLE, {"id": userid, "problem": None, "kind": None, "at": at})


def live_context(cfg: Config, store, sender: str, at: float) -> dict | None:
    """The sender's problem context when it is recent enough to claim a message sent `at`."""
    doc = store.get(CONTEXT_TABLE, sender)
    if not doc or not doc.get("kind") or not doc.get("problem"):
        return None
    age = at - doc["at"]
    if age < -CLOCK_SLACK or age > cfg.problems.photo_minutes * 60:
        return None
    if store.get(TABLE, doc["problem"]) is None:
        return None
    return doc
