"""Checking a fix before a problem is closed (整改核查 → 销号): the lifecycle and its rules.

A problem's status:
  open           登记, 整改中: the grid is fixing it; a rejected fix comes back here
  pending_check  待核查: someone reported the fix with an after-photo; the checkers decide
  closed         已销号: a checker passed the fix (or no check is configured)
  withdrawn      已撤回 (bot.problem_ledger)

Who checks is configured per role of whoever fixed it ([review], bot.oversight's levels): by
default the grid leader checks members' fixes, the community checks grid leaders' fixes and
problems a leader registered. Nobody checks their own fix; with nobody else at a level, the next
level up checks. Anyone at or above that level over the grid may decide; the people at that
level get the before/after picture and a card to decide with one tap.

While a fix waits for its check the deadline's clock stands still: a rejection moves the deadline
on by the time the fix waited, so the rectifier never loses the checker's time. A fix counts as
on time when it was reported by the deadline, however long the check took.

The after-photo must be evidence (`judge_after_photo`): taken after the problem was registered
and within [review] photo_max_age_hours of being sent, not a copy of the problem's own photos
(the perceptual hashes check-ins use), and near the problem when both have a location.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.config import Config, Person
from bot.oversight import LEVEL_ZH, first_people_from, level_of, names, rank
from bot.photos.geo import distance_m, wgs84_to_gcj02
from bot.photos.hashing import PhotoFacts, hex64, match_distance
from bot.problem_ledger import PENDING, fmt_duration, fmt_time, grid_name, short

# A camera's clock a few minutes ahead is not a forged date (as for check-ins).
CLOCK_AHEAD = timedelta(minutes=10)
REJECT_REASONS = ("未整改到位", "照片看不清", "照片不是现场", "仍有残留", "需补充说明")


# --- who checks --------------------------------------------------------------------------

def required_level(cfg: Config, fixer: Person, p: dict) -> str:
    """The configured level for a fix by `fixer` ("none": no check)."""
    review = cfg.review
    level = getattr(review, fixer.role, "grid_leader")
    reporter = cfg.person(p.get("reporter") or "")
    if reporter is not None and reporter.role == "leader" and rank(review.leader_opened) > rank(level):
        level = review.leader_opened
    return level


def checkers_for(cfg: Config, p: dict, fixer: Person) -> tuple[str, list[Person]]:
    """(level, people) who check `fixer`'s fix of `p`: ("none", []) when no check is configured,
    ("", []) when nobody at all could check it."""
    level = required_level(cfg, fixer, p)
    if level == "none":
        return "none", []
    return first_people_from(cfg, level, p["grid"], exclude={fixer.userid})


def checker_words(level: str, people: list[Person]) -> str:
    """"网格长张三", "社区领导周书记、吴书记"."""
    return f"{LEVEL_ZH.get(level, '')}{names(people)}"


def decision_refusal(cfg: Config, person: Person, p: dict) -> str | None:
    """Why `person` may not pass or reject the fix `p` waits with, or None when they may."""
    pid = p["id"]
    pending = p.get("pending") or {}
    if person.userid == pending.get("by"):
        return f"#{pid} 是您本人提交的整改,不能由本人核查,请等待{pending.get('checker_words') or '核查人'}核查。"
    need = pending.get("level") or "grid_leader"
    if rank(level_of(cfg, person, p["grid"])) < rank(need):
        return f"#{pid} 的整改由{pending.get('checker_words') or LEVEL_ZH.get(need, need)}核查,您不能核查。"
    return None


def state_note(cfg: Config, p: dict) -> str | None:
    """Why a decision on `p` is moot (closed, withdrawn, no fix waiting), or None when one waits."""
    pid = p["id"]
    if p["status"] == "closed":
        return f"#{pid} 已于{fmt_time(cfg, p['closed_at'])}由{p.get('closed_by_name') or ''}销号,无需重复核查。"
    if p["status"] == "withdrawn":
        return f"#{pid} 已撤回,无需核查。"
    if p["status"] != PENDING:
        last = last_decision(p)
        if last and last["action"] == "check_rejected":
            return (f"#{pid} 的整改已于{fmt_time(cfg, last['at'])}由{last.get('by_name')}驳回"
                    f"(原因:{last.get('note') or '未写明'}),正在重新整改,暂无待核查的整改。")
        return f"#{pid} 尚未提交整改,暂无可核查的内容。整改完成后由整改人发送“整改 #{pid} 已清理”并附整改后照片。"
    return None


def last_decision(p: dict) -> dict | None:
    return next((h for h in reversed(p.get("history", [])) if h.get("action") in ("check_passed", "check_rejected")),
                None)


# --- the after-photo as evidence -----------------------------------------------------------

@dataclass
class AfterPhoto:
    refusal: str | None = None  # why it is no evidence; None when it is
    notes: list[str] = field(default_factory=list)  # what the checker is told about it
    exif_time: datetime | None = None
    gcj: tuple[float, float] | None = None  # where it was taken (GCJ-02), from its EXIF
    distance_m: float | None = None  # from the problem's location


def photo_record(facts: PhotoFacts) -> dict:
    """What the problem keeps of a photo to judge later ones by (hashes, time, place)."""
    gcj = wgs84_to_gcj02(*facts.gps) if facts.gps else None
    return {"hashes": [hex64(h) for h in facts.hashes],
            "exif_time": facts.exif_time.isoformat() if facts.exif_time else None,
            "gps": {"lat": gcj[0], "lng": gcj[1]} if gcj else None}


def _hashes(record: dict) -> list[int] | None:
    try:
        return [int(h, 16) for h in record.get("hashes") or []] or None
    except (TypeError, ValueError):
        return None


def judge_after_photo(cfg: Config, p: dict, facts: PhotoFacts, sent_at: datetime) -> AfterPhoto:
    out = AfterPhoto(exif_time=facts.exif_time)
    hm = "%H:%M"
    opened = datetime.fromtimestamp(p["opened_at"], sent_at.tzinfo)
    max_age = cfg.review.photo_max_age_hours
    t = facts.exif_time
    if t is None:
        out.notes.append("照片无拍摄时间信息")
    elif t < sent_at - timedelta(hours=max_age):
        out.refusal = (f"这张照片拍摄于{t.month}月{t.day}日 {t:{hm}},超过{max_age:g}小时,不能作为整改后照片。"
                       "请在现场重新拍摄后发送。")
        return out
    elif t < opened - CLOCK_AHEAD:
        out.refusal = (f"这张照片拍摄于{t.month}月{t.day}日 {t:{hm}},早于问题登记时间"
                       f"({opened.month}月{opened.day}日 {opened:{hm}}),不能证明已经整改。请在现场重新拍摄后发送。")
        return out
    elif t > sent_at + CLOCK_AHEAD:
        out.refusal = "这张照片的拍摄时间晚于发送时间,无法确认是现场拍摄。请在现场重新拍摄后发送。"
        return out
    else:
        out.notes.append(f"拍摄于{t.month}月{t.day}日 {t:{hm}}")
    distance = cfg.checkin.duplicate_distance
    for rel, record in (p.get("photo_records") or {}).items():
        stored = _hashes(record)
        if stored and match_distance(facts.hashes, stored, distance) is not None:
            which = "登记时的现场照片" if rel in p.get("photos_before", []) else "此前提交过的整改照片"
            out.refusal = f"这张照片与 #{p['id']} {which}相同,不能证明已经整改。请在整改后的现场重新拍摄。"
            return out
    if facts.gps:
        out.gcj = wgs84_to_gcj02(*facts.gps)
    loc = p.get("location")
    if out.gcj and loc:
        out.distance_m = distance_m(loc["lat"], loc["lng"], *out.gcj)
        limit = cfg.review.max_distance_m
        if out.distance_m > limit:
            out.refusal = (f"这张照片的拍摄位置距问题地点约{round(out.distance_m)}米(超过{limit:g}米),"
                           "请在问题现场拍摄后发送。")
            return out
        out.notes.append(f"距问题位置约{round(out.distance_m)}米")
    elif loc:
        out.notes.append("照片无定位信息")
    return out


# --- the documents -------------------------------------------------------------------------

def system_entry(action: str, at: float, note: str = "", **extra) -> dict:
    """A history line written by the bot itself (a job), not on anyone's message."""
    return {"action": action, "by": "", "by_name": "系统", "at": at, "note": note, **extra}


def submit_doc(p: dict, entry: dict, level: str, checkers: list[Person], evidence: AfterPhoto) -> dict:
    """`p` waiting for its check; `entry` is the "fix_submitted" history line (who, when, photo)."""
    n = sum(1 for h in p["history"] if h.get("action") == "fix_submitted") + 1
    pending = {"n": n, "by": entry["by"], "by_name": entry["by_name"], "at": entry["at"],
               "note": entry.get("note", ""), "photo": entry.get("photo"), "level": level,
               "checkers": [c.userid for c in checkers], "checker_words": checker_words(level, checkers),
               "notes": evidence.notes, "distance_m": evidence.distance_m}
    entry = {**entry, "n": n, "level": level, "checkers": pending["checkers"], "evidence": evidence.notes}
    return {**p, "status": PENDING, "pending": pending, "history": p["history"] + [entry]}


def pass_doc(p: dict, entry: dict) -> dict:
    """`p` closed by the checker of `entry` ("check_passed")."""
    pending = p["pending"]
    entry = {**entry, "n": pending["n"]}
    photo = pending.get("photo")
    return {**p, "status": "closed", "pending": None, "closed_at": entry["at"], "closed_by": entry["by"],
            "closed_by_name": entry["by_name"], "closed_note": pending.get("note") or p.get("closed_note"),
            "closed_without_photo": not photo, "fixed_by": pending["by"], "fixed_by_name": pending["by_name"],
            "fixed_at": pending["at"], "photos_after": p.get("photos_after", []) + ([photo] if photo else []),
            "history": p["history"] + [entry]}


def close_unchecked_doc(p: dict, entry: dict) -> dict:
    """`p` closed on its fix alone: no check configured for that fixer, or nobody to check it."""
    photo = entry.get("photo")
    return {**p, "status": "closed", "pending": None, "closed_at": entry["at"], "closed_by": entry["by"],
            "closed_by_name": entry["by_name"], "closed_note": entry.get("note") or p.get("closed_note"),
            "closed_without_photo": not photo, "fixed_by": entry["by"], "fixed_by_name": entry["by_name"],
            "fixed_at": entry["at"], "photos_after": p.get("photos_after", []) + ([photo] if photo else []),
            "history": p["history"] + [{**entry, "action": "closed"}]}


def reject_doc(p: dict, entry: dict) -> dict:
    """`p` back to 整改中 with the reason in `entry` ("check_rejected"); the deadline moves on by
    the time the fix waited for its check."""
    pending = p["pending"]
    waited = max(0, entry["at"] - pending["at"])
    entry = {**entry, "n": pending["n"], "deadline_before": p["deadline"]}
    return {**p, "status": "open", "pending": None, "deadline": p["deadline"] + int(waited),
            "rejections": p.get("rejections", 0) + 1, "history": p["history"] + [entry]}


def is_late(p: dict) -> bool:
    """Was the accepted fix of a closed problem reported after the deadline?"""
    return (p.get("fixed_at") or p.get("closed_at") or 0) > p["deadline"]


# --- what people are told ---------------------------------------------------------------------

def picture_texts(cfg: Config, p: dict, after_at: float, fixer: str) -> tuple[str, str, str, str]:
    """(title, before caption, after caption, footer) of the before/after picture."""
    before = next((h for h in p["history"] if h.get("action") == "photo_before"), None)
    before_caption = (f"{fmt_time(cfg, before['at'])} {before.get('by_name', '')}" if before
                      else f"登记于{fmt_time(cfg, p['opened_at'])},未附现场照片")
    pend = p.get("pending") or {}
    apart = [f"登记至整改间隔{fmt_duration(after_at - p['opened_at'])}"]
    if pend.get("distance_m") is not None:
        apart.insert(0, f"整改后照片距问题位置约{round(pend['distance_m'])}米")
    apart += [n for n in pend.get("notes") or [] if not n.startswith("距问题位置")]
    return (f"#{p['id']} {short(p['text'], 30)}", before_caption, f"{fmt_time(cfg, after_at)} {fixer}",
            " · ".join(apart))


def evidence_line(notes: list[str]) -> str:
    return "照片:" + " · ".join(notes) if notes else ""


def check_request_text(cfg: Config, p: dict) -> str:
    """The checkers' notice in text (what the card says, for when a card cannot be shown)."""
    pend = p["pending"]
    lines = [f"【待核查】#{p['id']} {grid_name(cfg, p['grid'])}:{short(p['text'], 60)}",
             f"{pend['by_name']}于{fmt_time(cfg, pend['at'])}提交整改" + (f":{pend['note']}" if pend.get("note") else "。")]
    if pend.get("notes"):
        lines.append(evidence_line(pend["notes"]))
    lines.append(f"核查无误请回复“核查 #{p['id']} 通过”;不合格请回复“驳回 #{p['id']} 原因”。")
    return "\n".join(lines)


def passed_reply(cfg: Config, p: dict) -> str:
    start = p.get("reopened_at") or p["opened_at"]
    text = f"#{p['id']} 核查通过,已销号,用时{fmt_duration(p['closed_at'] - start)}"
    if is_late(p):
        text += f"(超过整改期限{fmt_duration(p['fixed_at'] - p['deadline'])})"
    return text + "。"


def rejected_reply(cfg: Config, p: dict, reason: str) -> str:
    return (f"已驳回 #{p['id']}(原因:{reason}),已告知{last_fixer(p)}重新整改,"
            f"整改期限为{fmt_time(cfg, p['deadline'])}。")


def rejected_notice(cfg: Config, p: dict, checker: Person, reason: str) -> str:
    return (f"【整改被驳回】#{p['id']} {short(p['text'], 60)}\n{checker.name}驳回:{reason}。\n"
            f"请重新整改后发送“整改 #{p['id']} 已清理”并附整改后照片,整改期限 {fmt_time(cfg, p['deadline'])}。")


def last_fixer(p: dict) -> str:
    h = next((h for h in reversed(p["history"]) if h.get("action") == "fix_submitted"), None)
    return h.get("by_name", "") if h else ""


def passed_notices(cfg: Config, p: dict, checker: Person) -> list[tuple[str, str]]:
    """(userid, text) for the rectifier, the reporter and the grid's leaders once a fix passed."""
    out: list[tuple[str, str]] = []
    told = {checker.userid}
    fixer = p.get("fixed_by")
    if fixer and fixer not in told and cfg.person(fixer):
        out.append((fixer, f"您提交的 #{p['id']} 整改已由{checker.name}核查通过,已销号。"))
        told.add(fixer)
    reporter = p.get("reporter")
    if reporter and reporter not in told and cfg.person(reporter):
        out.append((reporter, f"您上报的问题 #{p['id']} 已整改完毕,经{checker.name}核查后销号。"))
        told.add(reporter)
    for leader in cfg.grid_leaders(p["grid"]):
        if leader.userid not in told:
            out.append((leader.userid, f"【已销号】#{p['id']} {grid_name(cfg, p['grid'])}:{short(p['text'], 60)}\n"
                                       f"由{p.get('fixed_by_name')}整改,{checker.name}核查通过。"))
            told.add(leader.userid)
    return out
