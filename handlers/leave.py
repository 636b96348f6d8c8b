"""Leave (请假/销假): a person on leave is not nudged and not counted missing until the date.

"请假到周五", "请假 11月30日", "请假3天", "销假"; admins, and grid leaders for their own grid,
can set it for someone else: "请假 李四 到周三", "销假 李四". The grid leader is told.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

from bot.config import Config, Person
from bot.context import Context
from bot.router import Router
from bot.events import TextMessage
from bot.attendance import zh_day
from bot.leave_records import leave_periods
from bot.replies import LEAVE_USAGE
from bot.workdays import is_workday

router = Router("leave")

MAX_DAYS_AHEAD = 180
KEEP_PERIODS = 20

USAGE = LEAVE_USAGE

_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6,
              "七": 7, "八": 8, "九": 9}
_WEEKDAY = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6, "末": 6,
            "1": 0, "2": 1, "3": 2, "4": 3, "5": 4, "6": 5, "7": 6}
_RELATIVE = {"今天": 0, "今日": 0, "明天": 1, "明日": 1, "后天": 2, "大后天": 3}

_CONNECTOR = re.compile(r"^(?:一直|直)?(?:到|至)\s*")
_TAIL = re.compile(r"\s*(?:为止|止|结束)?\s*[。.!!]*$")
_WEEKDAY_RX = re.compile(r"^(?:(?P<which>本|这|下下|下)个?)?(?:周|星期|礼拜)(?P<d>[一二三四五六日天末1-7])$")
_FULL_DATE = re.compile(r"^(?P<y>\d{4})\s*[年\-/.]\s*(?P<m>\d{1,2})\s*[月\-/.]\s*(?P<d>\d{1,2})\s*[日号]?$")
_MONTH_DAY = re.compile(r"^(?P<m>\d{1,2})\s*(?:月|[\-/.])\s*(?P<d>\d{1,2})\s*[日号]?$")
_DAY_ONLY = re.compile(r"^(?P<d>\d{1,2})\s*[日号]$")
_N_DAYS = re.compile(r"^(?P<n>\d{1,3}|[一二两三四五六七八九十]{1,3})\s*(?:个)?\s*(?:工作日|天)$")


class LeaveError(ValueError):
    """A message for the person, in Chinese."""


def _cn_number(s: str) -> int:
    if s.isdigit():
        return int(s)
    if "十" in s:
        tens, _, ones = s.partition("十")
        return (_CN_DIGITS[tens] if tens else 1) * 10 + (_CN_DIGITS[ones] if ones else 0)
    return _CN_DIGITS[s[0]] if len(s) == 1 else int("".join(str(_CN_DIGITS[c]) for c in s))


def _make_date(y: int, m: int, d: int) -> date:
    try:
        return date(y, m, d)
    except ValueError:
        raise LeaveError(f"日期“{m}月{d}日”不存在,请核对。") from None


def parse_until(text: str, today: date, cfg: Config, start: date | None = None) -> date:
    """The last day of leave named by `text` (connectors like 到/至 already allowed); a
    duration ("3天") counts workdays from `start` (default today)."""
    s = _TAIL.sub("", _CONNECTOR.sub("", text.strip()))
    if not s:
        raise LeaveError("请写明请假到哪一天。" + USAGE)
    if s in _RELATIVE:
        return today + timedelta(days=_RELATIVE[s])
    if m := _WEEKDAY_RX.match(s):
        target = _WEEKDAY[m["d"]]
        which = m["which"] or ""
        monday = today - timedelta(days=today.weekday())
        if which == "下下":
            return monday + timedelta(days=14 + target)
        if which == "下":
            return monday + timedelta(days=7 + target)
        if which:
            return monday + timedelta(days=target)
        # "到周五": the coming Friday, today included.
        return today + timedelta(days=(target - today.weekday()) % 7)
    if m := _FULL_DATE.match(s):
        return _make_date(int(m["y"]), int(m["m"]), int(m["d"]))
    if m := _MONTH_DAY.match(s):
        d = _make_date(today.year, int(m["m"]), int(m["d"]))
        # "1月3日" written in December means next year; a recent past date is a mistake.
        if (today - d).days > 180:
            d = _make_date(today.year + 1, d.month, d.day)
        return d
    if m := _DAY_ONLY.match(s):
        day = int(m["d"])
        if day >= today.day:
            return _make_date(today.year, today.month, day)
        # "3号" said on the 25th: the 3rd of next month.
        nm = date(today.year + (today.month == 12), today.month % 12 + 1, 1)
        return _make_date(nm.year, nm.month, day)
    if m := _N_DAYS.match(s):
        n = _cn_number(m["n"])
        if n < 1:
            raise LeaveError("请假天数至少1天。")
        # Leave is counted in workdays: "请假3天" on a Friday covers Fri, Mon and Tue.
        d, left = start or today, n
        for _ in range(MAX_DAYS_AHEAD * 2):
            if is_workday(d, cfg.calendar):
                left -= 1
                if left == 0:
                    return d
            d += timedelta(days=1)
        raise LeaveError(f"请假天数太多,最多可登记{MAX_DAYS_AHEAD}天内的请假。")
    raise LeaveError(f"没有看懂请假日期“{s}”。" + USAGE)


@dataclass
class LeaveRequest:
    target: Person | None  # None: the sender
    until: date | None  # None for 销假
    start: date | None = None  # None: from today


def _split_target(rest: str, cfg: Config) -> tuple[Person | None, str]:
    """A leading person name (or userid) in the text, and what follows it."""
    candidates = sorted(((p.name, p) for p in cfg.people), key=lambda t: -len(t[0]))
    candidates += sorted(((p.userid, p) for p in cfg.people), key=lambda t: -len(t[0]))
    for key, p in candidates:
        if key and rest.startswith(key):
            return p, rest[len(key):].strip(" ::,,")
    return None, rest


# Every way of naming leave we have met: 请假, 请病假, 请事假, 休年假, 休假, 调休… and 销假.
LEAVE_WORD = re.compile(r"(?:请|休)(?:病|事|年|婚|产|丧|陪产|育儿|探亲|公)?假|休假|调休|销假")
_FILLER = re.compile(r"^(?:我|本人)?(?:想|要|需要|打算|准备)?(?:申请)?")
_PARTICLES = re.compile(r"(?:一下|下|哈|吧|呢|啊|了|谢谢|麻烦了)?[\s。.!!~～]*$")
_SINGLE_DAY = re.compile(r"^(?:一天|1天|半天|一日|1日)$")
_RANGE = re.compile(r"^(?:从|自)?\s*(?P<a>.+?)\s*(?:到|至|~|～|—)\s*(?P<b>.+?)\s*$")
_FROM = re.compile(r"^(?:从|自)\s*|\s*(?:起|开始)$")


def _day(text: str, today: date, cfg: Config) -> date:
    """One day named on its own ("明天", "下周一", "12月8日"), not a duration."""
    if _N_DAYS.match(text.strip()):
        raise LeaveError(f"没有看懂请假日期“{text}”。" + USAGE)
    return parse_until(text, today, cfg)


def _span(before: str, after: str, today: date, cfg: Config) -> tuple[date, date]:
    """(first day, last day) from the words before and after the leave word."""
    if before:
        if m := _RANGE.match(before):  # "12月8日到12月10日请假", "周三到周五请假"
            start = _day(_FROM.sub("", m["a"]), today, cfg)
            return start, parse_until(m["b"], start, cfg)
        start = _day(_FROM.sub("", before), today, cfg)  # "明天请假…", "下周一请假…"
        if not after or _SINGLE_DAY.match(after):
            return start, start
        return start, parse_until(after, start, cfg, start=start)
    if _SINGLE_DAY.match(after):
        return today, today
    if m := _RANGE.match(after):  # "请假 12月8日到12月10日"
        if not _CONNECTOR.match(after):
            start = _day(_FROM.sub("", m["a"]), today, cfg)
            return start, parse_until(m["b"], start, cfg)
    return today, parse_until(after, today, cfg)


def parse_leave(text: str, today: date, cfg: Config) -> LeaveRequest:
    s = _PARTICLES.sub("", " ".join(text.split()))
    m = LEAVE_WORD.search(s)
    if not m:
        raise LeaveError(USAGE)
    verb = "销假" if m.group() == "销假" else "请假"
    before = _FILLER.sub("", s[:m.start()].strip(" ::,,")).strip(" ::,,")
    rest = s[m.end():].strip(" ::,,")
    if verb == "销假":
        named = rest or before
        if not named:
            return LeaveRequest(None, None)
        target, after = _split_target(named, cfg)
        if target is None or after:
            raise LeaveError("请发送“销假”,或为他人销假:“销假 李四”。")
        return LeaveRequest(target, None)
    if not rest and not before:
        raise LeaveError(USAGE)
    # "李四明天请假" / "请假 李四 到周三": a leader names the person first.
    target, before_after_name = _split_target(before, cfg) if before else (None, before)
    if target is not None:
        before = before_after_name
    elif rest:
        # A date first: a person could be named like a date word, but the sender's own leave
        # is by far the common case.
        try:
            start, until = _span(before, rest, today, cfg)
            return LeaveRequest(None, until, start)
        except LeaveError as own_error:
            target, after = _split_target(rest, cfg)
            if target is None:
                raise own_error
            if not after and not before:
                raise LeaveError(f"请写明{target.name}请假到哪一天,例如“请假 {target.name} 到周三”。") from None
            rest = after
    start, until = _span(before, rest, today, cfg)
    return LeaveRequest(target, until, start)


def _can_manage(setter: Person, target: Person, cfg: Config) -> str | None:
    """None if allowed, else the refusal."""
    if setter.userid == target.userid or setter.role == "admin":
        return None
    if setter.role == "grid_leader":
        if target.grid and target.grid == setter.grid:
            return None
        grid = cfg.grid(setter.grid)
        return f"您只能为本网格({grid.name if grid else setter.grid})的人员登记请假或销假。"
    return "只有网格长或管理员可以为他人登记请假或销假。"


def _periods(doc: dict | None) -> list[dict]:
    return [{"from": a.isoformat(), "until": b.isoformat()} for a, b in leave_periods(doc)]


def _leave_doc(target: Person, setter: Person, periods: list[dict], fallback_until: date, at: int) -> dict:
    periods = sorted(periods, key=lambda p: p["from"])[-KEEP_PERIODS:]
    current = periods[-1] if periods else None
    return {
        "id": target.userid, "userid": target.userid, "name": target.name, "grid": target.grid,
        "from": current["from"] if current else fallback_until.isoformat(),
        "until": current["until"] if current else fallback_until.isoformat(),
        "set_by": setter.userid, "set_by_name": setter.name, "at": at,
        "periods": periods,
    }


def _tell_leaders(ctx: Context, target: Person, text: str) -> None:
    if not target.grid:
        return
    skip = {ctx.person.userid, target.userid}
    for leader in ctx.config.grid_leaders(target.grid):
        if leader.userid not in skip:
            ctx.transport.send_text(leader.userid, text)


def _is_leave(event: TextMessage, ctx: Context) -> bool:
    # Short messages only: a long one naming leave in passing ("走访请假在家的老人3户") is a report.
    text = event.content or ""
    return len(text) <= 40 and LEAVE_WORD.search(text) is not None and "走访" not in text


@router.on(TextMessage, filter=_is_leave)
async def on_leave(event: TextMessage, ctx: Context) -> None:
    today = ctx.sent_on
    try:
        req = parse_leave(event.content, today, ctx.config)
    except LeaveError as e:
        ctx.reply(str(e))
        return
    setter = ctx.person
    target = req.target or setter
    refusal = _can_manage(setter, target, ctx.config)
    if refusal:
        ctx.reply(refusal)
        return
    for_other = target.userid != setter.userid
    old = ctx.store.get("leave", target.userid)
    periods = _periods(old)
    if req.until is None:
        await _end_leave(ctx, target, periods, today, for_other)
        return
    until, start = req.until, req.start or today
    if start < today or until < today:
        ctx.reply(f"{zh_day(min(start, until))}已经过去了,请假只能登记今天及以后的日期。")
        return
    if until < start:
        ctx.reply(f"请假结束日期{zh_day(until)}早于开始日期{zh_day(start)},请核对。")
        return
    if (until - today).days > MAX_DAYS_AHEAD:
        ctx.reply(f"请假结束日期{zh_day(until)}太远了,最多可登记{MAX_DAYS_AHEAD}天内的请假,请核对日期。")
        return
    kept = _without_span(periods, start, until, restate=start == today)
    kept.append({"from": start.isoformat(), "until": until.isoformat()})
    await ctx.store.put("leave", _leave_doc(target, setter, kept, until, int(ctx.clock.now().timestamp())))
    if start == today:
        span, during = f"至{zh_day(until)}", "期间"
    elif start == until:
        span, during = f"{zh_day(start)}一天", "当天"
    else:
        span, during = f"{zh_day(start)}至{zh_day(until)}", "期间"
    if for_other:
        ctx.reply(f"已为{target.name}登记请假{span},{during}不提醒打卡。")
        ctx.transport.send_text(target.userid, f"{setter.name}已为您登记请假{span},{during}不提醒打卡。"
                                               f"如提前返岗,请发送“销假”。")
    else:
        ctx.reply(f"已登记请假{span},{during}不提醒打卡。如提前返岗,请发送“销假”。")
    _tell_leaders(ctx, target, f"【请假】{target.name}请假{span},{during}不提醒打卡。")


def _without_span(periods: list[dict], start: date, until: date, *, restate: bool) -> list[dict]:
    """The periods left when [start, until] is booked. A leave from today restates the whole
    leave (whatever covered today onwards is replaced); a future one only takes its own days."""
    kept = []
    for p in periods:
        a, b = date.fromisoformat(p["from"]), date.fromisoformat(p["until"])
        if a < start:
            kept.append({"from": a.isoformat(), "until": min(b, start - timedelta(days=1)).isoformat()})
        if b > until and not restate:
            kept.append({"from": max(a, until + timedelta(days=1)).isoformat(), "until": b.isoformat()})
    return kept


async def _end_leave(ctx: Context, target: Person, periods: list[dict], today: date,
                     for_other: bool) -> None:
    active = [p for p in periods if p["until"] >= today.isoformat()]
    if not active:
        who = f"{target.name}当前" if for_other else "您当前"
        ctx.reply(f"{who}没有登记请假,无需销假。")
        return
    kept = []
    for p in periods:
        if p["until"] < today.isoformat():
            kept.append(p)
        elif p["from"] < today.isoformat():
            kept.append({"from": p["from"], "until": (today - timedelta(days=1)).isoformat()})
    await ctx.store.put("leave", _leave_doc(target, ctx.person, kept, today - timedelta(days=1),
                                                int(ctx.clock.now().timestamp())))
    if for_other:
        ctx.reply(f"已为{target.name}销假,今天起恢复打卡提醒。")
        ctx.transport.send_text(target.userid, f"{ctx.person.name}已为您销假,今天起恢复打卡提醒。")
    else:
        ctx.reply("已销假,今天起恢复打卡提醒。")
    _tell_leaders(ctx, target, f"【销假】{target.name}已销假,今天起恢复打卡提醒。")
