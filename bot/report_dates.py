"""The work date of a report: the date words it names, and which of them governs its counts.

A date word governs the counts after it up to the next date word (a count before the first one
takes the first, unless that one announces a plan). Past words set the work date: 昨天 −1,
前天 −2, 大前天 −3, 三天前 −3, 上周五, 周一 (the latest Monday), 11月20日, 11.20, 20号.
Future words make the counts they govern planned work, which is never booked: 明天, 后天,
下周(一), 两天后, 本周五 when that is still ahead. When the counts of one message fall under two
different dates (or a span such as 11月20日至22日), the message has no single work date.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass

from bot.numbers_zh import small_number

DAY_WORDS: dict[str, int] = {
    "今天": 0, "今日": 0, "今早": 0, "今晨": 0, "今晚": 0, "今儿": 0, "当天": 0, "当日": 0,
    "昨天": -1, "昨日": -1, "昨晚": -1, "昨夜": -1, "昨儿": -1, "昨早": -1,
    "前天": -2, "前日": -2, "前晚": -2, "大前天": -3,
}
# Words that put the work ahead of the message: what they govern is a plan, not work done.
PLAN_WORDS = ("明天", "明日", "明早", "明晚", "明儿", "后天", "大后天", "下周", "下星期", "下礼拜",
              "下个星期", "下个礼拜", "下个月", "下月")
# 目前日常, 此前日…: 前日/前天 glued to these is not "the day before yesterday"; nor is 后天 in 落后天.
NOT_BEFORE_QIAN = "目此之以提事当面空眼日跟向从"
WEEKDAYS: dict[str, int] = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6}
# A date without a year lies in the message's year (or month, for 20号) unless that puts it more
# than this many days after the message: then it is the year (month) before.
MAX_FUTURE_DAYS = 7
RANGE_LINKS = "至到~-—–"

_CN = "一二三四五六七八九十"
# Every character a date token can start with (the tokenizer jumps from one such character to
# the next instead of trying every pattern at every position).
DATE_FIRST_CHARS = "".join(sorted({w[0] for w in list(DAY_WORDS) + list(PLAN_WORDS)} | set("上本这下周星礼两" + _CN)))
_ALT = "|".join(re.escape(w) for w in sorted(list(DAY_WORDS) + list(PLAN_WORDS), key=len, reverse=True))


def date_pattern(unit_pattern: str) -> str:
    """The tokenizer's date and time alternatives (named groups), tried before quantities."""
    return (
        r"(?P<ymd>(?<!\d)(?P<y1>\d{4})\s*[-./年]\s*(?P<m1>\d{1,2})\s*[-./月]\s*(?P<d1>\d{1,2})(?!\d)\s*[日号]?)"
        rf"|(?P<md>(?<![\d{_CN}])(?P<m2>\d{{1,2}}|[{_CN}]{{1,2}})\s*月\s*"
        rf"(?:(?P<d2>\d{{1,2}}|[{_CN}]{{1,3}})\s*[日号]|(?P<d2b>\d{{1,2}})(?![\d.]|\s*(?:{unit_pattern}))))"
        rf"|(?P<mdnum>(?<![\d.])(?P<m3>\d{{1,2}})[./](?P<d3>\d{{1,2}})(?![\d.])"
        rf"(?!\s*[余多来几十百千万]?\s*个?[大小整满]?\s*(?:{unit_pattern}))[日号]?)"
        r"|(?P<year>(?<!\d)\d{4}\s*年度?)"
        rf"|(?P<ago>(?P<agon>\d{{1,2}}|[{_CN}两]{{1,3}})\s*天(?:之)?(?P<agodir>[前后]))"
        rf"|(?P<rel>{_ALT})"
        # Not 本周一共…, 周三次…: a weekday name glued to a word that starts with its numeral.
        rf"|(?P<wk>(?P<wkpre>上上|上|本|这|下)?个?(?:周|星期|礼拜)(?P<wkd>[一二三四五六日天])"
        rf"(?![共起同直般些下切律]|{unit_pattern}))"
        r"|(?P<time>(?<!\d)\d{1,2}:\d{2}(?::\d{2})?)"
        # 20号 / 20日 alone: a day of this month, unless it is a house number (幸福路3号, 3号楼).
        # It must open a clause or follow a word that introduces a date: "走访3号、5号楼" is not one.
        r"|(?P<dayno>(?<![^\s,;。:、(于在是报月的])(?P<dnd>\d{1,2})\s*[号日]"
        r"(?![楼门院栋单网线房室铺店口地路街巷车厅库仓岗池井桩杆箱位座幢期区园苑内前后以起左右\d]))"
    )


@dataclass(frozen=True)
class DateMark:
    pos: int
    end: int
    day: datetime.date | None  # None: a planned day (明天, 下周一), or an impossible date
    absolute: bool  # an explicit date such as 11月20日
    planned: bool
    opens_range: bool  # followed by 至/到/-: 11月20日至22日


def explicit_date(year: int | None, month: int, day: int, message_date: datetime.date) -> datetime.date | None:
    try:
        if year is not None:
            return datetime.date(year, month, day)
        found = datetime.date(message_date.year, month, day)
        if (found - message_date).days > MAX_FUTURE_DAYS:
            found = datetime.date(message_date.year - 1, month, day)
        return found
    except ValueError:  # 2月30日, 13.5
        return None


def day_of_month(day: int, message_date: datetime.date) -> datetime.date | None:
    """20号: this month's 20th, or last month's when this month's is more than a week ahead."""
    try:
        found = message_date.replace(day=day)
    except ValueError:
        found = None
    if found is None or (found - message_date).days > MAX_FUTURE_DAYS:
        last = message_date.replace(day=1) - datetime.timedelta(days=1)
        try:
            return last.replace(day=day)
        except ValueError:
            return None
    return found


def weekday_offset(m: re.Match, text: str, message_date: datetime.date) -> int | None:
    """Days from the message to the weekday named; None for a routine (每周一), the end of a
    span (周一至周五), or a plain weekday that opens a span."""
    start, end = m.start(), m.end()
    prefix = m["wkpre"]
    before, after = text[start - 1:start], text[end:end + 1]
    if before and (before == "每" or before in RANGE_LINKS):
        return None
    if after and after in RANGE_LINKS and prefix != "下":
        return None  # 周一至周五: a routine; 下周一到周五 stays a plan
    today = message_date.weekday()
    target = WEEKDAYS[m["wkd"]]
    if prefix == "上上":
        return target - today - 14
    if prefix == "上":
        return target - today - 7
    if prefix == "下":
        return target - today + 7
    if prefix:
        return target - today
    return -((today - target) % 7)


def date_mark(m: re.Match, text: str, message_date: datetime.date) -> DateMark | None:
    """The date a date token names, or None when it names none (每周一, 前日 in 目前日常)."""
    kind = m.lastgroup
    start, end = m.start(), m.end()
    absolute = False
    if kind == "rel":
        word = m.group()
        if word[0] in "前后" and start and text[start - 1] in NOT_BEFORE_QIAN + "落之以然":
            return None
        if word in DAY_WORDS:
            day: datetime.date | None = message_date + datetime.timedelta(days=DAY_WORDS[word])
        else:
            day = None
    elif kind == "ago":
        n = small_number(m["agon"].replace("两", "二"))
        day = message_date + datetime.timedelta(days=-n if m["agodir"] == "前" else n)
    elif kind == "wk":
        offset = weekday_offset(m, text, message_date)
        if offset is None:
            return None
        day = message_date + datetime.timedelta(days=offset)
        if text[end:end + 1] == "前" and m["wkpre"] != "上":
            day = None  # 周五前完成…: a deadline ahead
    else:
        absolute = True
        if kind == "ymd":
            day = explicit_date(int(m["y1"]), int(m["m1"]), int(m["d1"]), message_date)
        elif kind == "md":
            d = m["d2"] or m["d2b"]
            day = explicit_date(None, small_number(m["m2"]), small_number(d), message_date)
        elif kind == "mdnum":
            day = explicit_date(None, int(m["m3"]), int(m["d3"]), message_date)
        else:  # dayno
            day = day_of_month(int(m["dnd"]), message_date)
        if day is None:
            return None
    # A relative day ahead of the message is a plan; an explicit one stays a date (the reply
    # then says it cannot be reported yet, which also catches a mistyped date).
    planned = day is None or (not absolute and day > message_date)
    return DateMark(start, end, None if planned else day, absolute, planned,
                    bool(text[end:end + 1]) and text[end:end + 1] in RANGE_LINKS)


def governing(marks: list[DateMark], pos: int) -> DateMark | None:
    """The date word that governs a count at `pos`: the last one before it; for a count before
    every date word, the first one, unless that is a plan ("走访5户,明天继续")."""
    previous = None
    for mark in marks:
        if mark.pos >= pos:
            if previous is not None:
                return previous
            return None if mark.planned else mark
        previous = mark
    return previous


@dataclass(frozen=True)
class WorkDate:
    day: datetime.date
    absolute: bool
    dated: bool  # the text named it (a 补报 that names no date means yesterday)
    mixed: bool  # the counts fall under more than one date: no single work date
    planned_only: bool  # only plans: every date word looks ahead and nothing was done


def work_date(marks: list[DateMark], item_marks: list[DateMark | None], first_quantity: int | None,
              message_date: datetime.date) -> WorkDate:
    """`item_marks`: the governing mark of each counted item (None: no date named for it)."""
    if item_marks:
        days = {(mk.day if mk is not None else message_date) for mk in item_marks}
        ranged = any(mk is not None and (mk.opens_range or _closes_range(marks, mk)) for mk in item_marks)
        if len(days) > 1 or ranged:
            return WorkDate(message_date, False, True, True, False)
        mark = item_marks[0]
        if mark is None:
            return WorkDate(message_date, False, False, False, False)
        return WorkDate(mark.day, _named_explicitly(marks, mark), True, False, False)
    done = [mk for mk in marks if not mk.planned]
    if not done:
        return WorkDate(message_date, False, False, False, bool(marks))
    before = [mk for mk in done if first_quantity is None or mk.pos < first_quantity]
    mark = before[-1] if before else done[0]
    return WorkDate(mark.day, _named_explicitly(marks, mark), True, False, False)


def _named_explicitly(marks: list[DateMark], mark: DateMark) -> bool:
    """11月24日(周二), 昨天(11月24日): an explicit date beside a relative word for the same day
    makes the work date explicit."""
    return mark.absolute or any(mk.absolute and mk.day == mark.day for mk in marks)


def _closes_range(marks: list[DateMark], mark: DateMark) -> bool:
    i = marks.index(mark)
    return i > 0 and marks[i - 1].opens_range and mark.pos - marks[i - 1].end <= 2
