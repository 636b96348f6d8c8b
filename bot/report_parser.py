"""Free-text task report → counted items and a work date (DESIGN.md, "Report parsing rules").

Pure functions, no I/O. One pass of a single tokenizer regex finds quantities (number + unit),
separators, list markers, dates and times; the category of each quantity is then looked up in
the text around it, category by category in priority order.
"""

from __future__ import annotations

import datetime
import functools
import re
from dataclasses import dataclass
from typing import Sequence

from bot.numbers_zh import CN_DIGITS, CN_MULTIPLIERS, chinese_number, normalize, small_number
from bot.taxonomy import Category

# --- tables ------------------------------------------------------------------------

# Surface form → canonical unit. The tokenizer tries longer forms first (人次 before 人).
UNITS: dict[str, str] = {
    "个半小时": "小时", "个多小时": "小时", "个余小时": "小时", "个小时": "小时",
    "平方米": "平方米", "平米": "平方米", "平方": "平方米", "㎡": "平方米", "m²": "平方米",
    "人次": "人次", "小时": "小时", "公里": "公里",
    "处": "处", "个": "个", "块": "块", "户": "户", "家": "家", "份": "份", "张": "张",
    "条": "条", "册": "册", "本": "本", "人": "人", "名": "名", "辆": "辆", "车": "车",
    "袋": "袋", "吨": "吨", "米": "米", "次": "次", "场": "场", "起": "起", "件": "件",
    "栋": "栋", "株": "株", "棵": "棵",
}
# Units that the following text turns into an ordinary word: 3处理, 本周, 一次性, 一块儿, 3个月,
# and 3栋2单元 (an address, not three buildings).
UNIT_NOT_BEFORE: dict[str, str] = {
    "处": r"[理置]",
    "本": r"[周月年日次人社网小]",
    "次": r"性",
    "块": r"儿",
    "个": r"月",
    "栋": r"\d|[一二三四五六七八九十]+单元|楼下",
}
HALF_HOUR_UNITS = {"个半小时"}

# After a number: "at least" (两百余张, 300多平方米, 三十来户, 十几户); the number is kept.
APPROX_SUFFIXES = "余多来几"

# Relative day words → work date minus message date. 明天 is deliberately absent: a report is
# about work done, and "明天几点集合?" is chit-chat.
DAY_WORDS: dict[str, int] = {
    "今天": 0, "今日": 0, "今早": 0, "今晨": 0, "今晚": 0, "今儿": 0,
    "昨天": -1, "昨日": -1, "昨晚": -1, "昨夜": -1, "昨儿": -1,
    "前天": -2, "前日": -2, "前晚": -2, "大前天": -3,
}
# 目前日常, 此前日… : 前日/前天 glued to these is not "the day before yesterday".
NOT_BEFORE_QIAN = "目此之以提事当面空眼日跟向从"
WEEKDAYS: dict[str, int] = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6}
# An explicit date without a year lies in the message's year unless that puts it more than
# this many days after the message (then it is last year's: "12月30日" sent in January).
MAX_FUTURE_DAYS = 7

# A bare 一/四 + unit that is a word rather than a count: 一起 ("together") unless an incident
# is named right next to it (调解邻里纠纷一起, 调解一起邻里纠纷); 一块 ("together") before a
# verb (一块打扫), unlike 一块展板; 四处 ("everywhere") before a verb.
INCIDENT_NOUNS = ("纠纷", "矛盾", "事件", "案件", "事故", "警情", "投诉", "火情", "火灾", "违建",
                  "违章", "家庭", "邻里", "隐患", "问题", "信访", "争执", "冲突", "交通", "盗窃")
INCIDENT_BEFORE = INCIDENT_NOUNS + ("行为", "调解", "调处", "化解", "处置", "处理", "劝导",
                                    "纠正", "制止", "劝阻", "发生", "发现")
TOGETHER_VERBS = set("打清参去来做干开巡劳走帮搞捡到")
EVERYWHERE_VERBS = set("张贴乱散奔游走寻巡宣发打查看找逛跑飘堆扔流")

# --- tokenizer -----------------------------------------------------------------------


def _alternation(words) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


def _unit_pattern() -> str:
    forms = []
    for form in sorted(UNITS, key=len, reverse=True):
        guard = UNIT_NOT_BEFORE.get(form)
        forms.append(re.escape(form) + (f"(?!{guard})" if guard else ""))
    return "|".join(forms)


_CN_DIGITS = "".join(CN_DIGITS)
_CN_NUM_CHARS = "".join(CN_DIGITS) + "".join(CN_MULTIPLIERS)
_CN_START_CHARS = "".join(CN_DIGITS) + "十拾"
_UNIT = _unit_pattern()
# A Chinese numeral never starts right after these: 第五 (ordinal), 统一张贴, 唯一, 逐一, 周一…
_CN_NOT_AFTER = "第统唯同逐之初周期礼每" + _CN_NUM_CHARS

_NUMBER = (
    rf"(?P<ar>(?<![\d.A-Za-z#_第])\d+(?:,\d{{3}})*(?:\.\d+)?)(?P<arm>[十百千万]*)"
    rf"|(?P<cn>(?<![{_CN_NOT_AFTER}])[{_CN_START_CHARS}][{_CN_NUM_CHARS}]*)(?:点(?P<cnf>[{_CN_DIGITS}]+))?"
    r"|(?P<bare>(?<![第])[百千万](?=[余多]))"  # 百余人, 千余份
    r"|(?P<half>半(?=个?小时))"
)
_CN_SMALL = "一二三四五六七八九十"

TOKEN = re.compile(
    # Dates and times first: their digits are never quantities.
    r"(?P<ymd>(?<!\d)(?P<y1>\d{4})\s*[-./年]\s*(?P<m1>\d{1,2})\s*[-./月]\s*(?P<d1>\d{1,2})(?!\d)\s*[日号]?)"
    rf"|(?P<md>(?<![\d{_CN_SMALL}])(?P<m2>\d{{1,2}}|[{_CN_SMALL}]{{1,2}})\s*月\s*"
    rf"(?P<d2>\d{{1,2}}|[{_CN_SMALL}]{{1,3}})\s*[日号])"
    rf"|(?P<mdnum>(?<![\d.])(?P<m3>\d{{1,2}})[./](?P<d3>\d{{1,2}})(?![\d.])"
    rf"(?!\s*[{APPROX_SUFFIXES}十百千万]?\s*(?:{_UNIT}))[日号]?)"
    rf"|(?P<rel>{_alternation(DAY_WORDS)})"
    # Not 本周一共…, 周三次…: a weekday name glued to a word that starts with its numeral.
    rf"|(?P<wk>(?P<wkpre>上|本|这)?(?:周|星期|礼拜)(?P<wkd>[一二三四五六日天])(?![共起同直般些下切律]|{_UNIT}))"
    r"|(?P<time>(?<!\d)\d{1,2}:\d{2}(?::\d{2})?)"
    # List markers: 1. 2、 3) (4) ① 一、 (一) — at the start of a line or after a separator only,
    # so that "入户走访20户2、…" is not cut after the 户.
    r"|(?P<marker>(?:(?<![\d.\u4e00-\u9fff])\d{1,2}[.、)](?!\d))"
    r"|(?:\(\d{1,2}\))|[\u2460-\u2473\u2474-\u2487]"
    rf"|(?:(?<![\u4e00-\u9fff])[{_CN_SMALL}]{{1,3}}、)|(?:\([{_CN_SMALL}]{{1,3}}\)))"
    r"|(?P<bracket>【(?P<btext>[^】\n]*)】)"
    rf"|(?P<qty>(?:{_NUMBER})[ \t]*(?:[{APPROX_SUFFIXES}][ \t]*)?(?P<unit>{_UNIT}))"
    r"|(?P<colon>:)"
    r"|(?P<hard>[,;。!?\n\r…|]|\.(?!\d)|(?<!\d)\.)"
    r"|(?P<soft>[、 \t]+)"
)


# --- quantities ------------------------------------------------------------------------


def _tidy(value: float) -> int | float:
    if value == int(value):
        return int(value)
    return round(value, 6)


def quantity_value(m: re.Match) -> int | float:
    if m["ar"] is not None:
        value: float = float(m["ar"].replace(",", ""))
        for ch in m["arm"]:
            value *= CN_MULTIPLIERS[ch]
    elif m["cn"] is not None:
        value = chinese_number(m["cn"])
        if m["cnf"]:  # 一点五吨
            value += float("0." + "".join(str(CN_DIGITS[c]) for c in m["cnf"]))
    elif m["bare"] is not None:
        value = CN_MULTIPLIERS[m["bare"]]
    else:
        value = 0.5
    if m["unit"] in HALF_HOUR_UNITS:
        value += 0.5
    return _tidy(value)


def is_word_not_count(text: str, m: re.Match) -> bool:
    """一起/一块/四处/一户一档: a numeral and a unit that together form an ordinary word."""
    cn, unit = m["cn"], m["unit"]
    end = m.end()
    following = text[end:end + 1]
    if cn == "四":
        return unit == "处" and following in EVERYWHERE_VERBS
    if cn != "一":
        return False
    start = m.start("cn")
    if following == "一" or (start >= 2 and text[start - 2] == "一" and text[start - 1] in UNITS):
        return True  # 一户一档, 一家一户
    if unit == "起":
        return not (text.endswith(INCIDENT_BEFORE, 0, start) or text.startswith(INCIDENT_NOUNS, end))
    return unit == "块" and following in TOGETHER_VERBS


# --- dates -----------------------------------------------------------------------------


def explicit_date(year: int | None, month: int, day: int,
                  message_date: datetime.date) -> datetime.date | None:
    try:
        if year is not None:
            return datetime.date(year, month, day)
        found = datetime.date(message_date.year, month, day)
        if (found - message_date).days > MAX_FUTURE_DAYS:
            found = datetime.date(message_date.year - 1, month, day)
        return found
    except ValueError:  # 2月30日, 13.5
        return None


def token_date(m: re.Match, message_date: datetime.date) -> datetime.date | None:
    kind = m.lastgroup
    if kind == "ymd":
        return explicit_date(int(m["y1"]), int(m["m1"]), int(m["d1"]), message_date)
    if kind == "md":
        return explicit_date(None, small_number(m["m2"]), small_number(m["d2"]), message_date)
    return explicit_date(None, int(m["m3"]), int(m["d3"]), message_date)


def weekday_offset(m: re.Match, text: str, message_date: datetime.date) -> int | None:
    start, end = m.start(), m.end()
    following = text[end:end + 1]
    if (start and text[start - 1] == "每") or following in ("至", "到", "-", "~"):
        return None  # 每周一, 周一至周五: a routine, not a day
    today = message_date.weekday()
    target = WEEKDAYS[m["wkd"]]
    prefix = m["wkpre"]
    if prefix == "上":
        return target - today - 7
    if prefix:
        return target - today
    return -((today - target) % 7)


def _pick(candidates: list[tuple[int, object]], first_quantity: int | None):
    """The date word nearest before the first quantity, else the first one at all."""
    if first_quantity is not None:
        before = [v for pos, v in candidates if pos < first_quantity]
        if before:
            return before[-1]
    return candidates[0][1]


# --- results -------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    category: str  # category id
    quantity: int | float  # int when whole
    unit: str


@dataclass(frozen=True)
class ParsedReport:
    items: tuple[Item, ...]
    work_date: datetime.date
    absolute_date: bool  # the text named an explicit date like 11月20日
    matched: bool  # some category keyword occurs in the text (a report even without numbers)
    date_offset: int | None  # work_date - message_date in days; None when absolute_date


def to_json(parsed: ParsedReport) -> dict:
    return {
        "items": [{"category": i.category, "quantity": i.quantity, "unit": i.unit} for i in parsed.items],
        "date_offset": parsed.date_offset,
    }


# --- parser --------------------------------------------------------------------------


class Parser:
    """The report parser for one category list (priority order = list order)."""

    def __init__(self, categories: Sequence[Category]):
        self.categories = tuple(categories)
        self._patterns: list[tuple[str, re.Pattern]] = []
        all_words: set[str] = set()
        for cat in self.categories:
            words = {normalize(w).strip() for w in cat.keywords} - {""}
            if words:
                self._patterns.append((cat.id, re.compile(_alternation(words))))
                all_words |= words
        self._any = re.compile(_alternation(all_words)) if all_words else None

    def category_in(self, text: str, start: int, end: int) -> str | None:
        if start >= end:
            return None
        for cid, pattern in self._patterns:
            if pattern.search(text, start, end):
                return cid
        return None

    def parse(self, text: str, message_date: datetime.date) -> ParsedReport:
        text = normalize(text)
        matched = self._any is not None and self._any.search(text) is not None
        items: list[Item] = []
        absolute: list[tuple[int, datetime.date]] = []
        relative: list[tuple[int, int]] = []
        first_quantity: int | None = None
        heading: str | None = None
        clause_start = 0
        quantities: list[tuple[int, int, int | float, str]] = []  # number start, end, value, unit
        softs: list[tuple[int, int]] = []

        for m in TOKEN.finditer(text):
            kind = m.lastgroup
            if kind == "qty":
                if is_word_not_count(text, m):
                    continue
                start = m.start()
                if first_quantity is None:
                    first_quantity = start
                quantities.append((start, m.end(), quantity_value(m), UNITS[m["unit"]]))
            elif kind == "soft":
                softs.append(m.span())
            elif kind in ("hard", "colon", "marker", "bracket"):
                if matched and quantities:
                    self._resolve(text, clause_start, m.start(), quantities, softs, heading, items)
                if kind == "colon":
                    heading = self.category_in(text, clause_start, m.start())
                elif kind == "bracket":
                    heading = self.category_in(text, m.start("btext"), m.end("btext"))
                clause_start = m.end()
                quantities, softs = [], []
            elif kind == "rel":
                if m.group()[0] == "前" and m.start() and text[m.start() - 1] in NOT_BEFORE_QIAN:
                    continue
                relative.append((m.start(), DAY_WORDS[m.group()]))
            elif kind == "wk":
                offset = weekday_offset(m, text, message_date)
                if offset is not None:
                    relative.append((m.start(), offset))
            elif kind in ("ymd", "md", "mdnum"):
                found = token_date(m, message_date)
                if found is not None:
                    absolute.append((m.start(), found))
        if matched and quantities:
            self._resolve(text, clause_start, len(text), quantities, softs, heading, items)

        if absolute:
            work_date = _pick(absolute, first_quantity)
            return ParsedReport(tuple(items), work_date, True, matched, None)
        offset = _pick(relative, first_quantity) if relative else 0
        return ParsedReport(tuple(items), message_date + datetime.timedelta(days=offset),
                            False, matched, offset)

    def _resolve(self, text, clause_start, clause_end, quantities, softs, heading, items) -> None:
        """Give each quantity of one clause its category, or drop it when nothing names one.

        Within a clause, 、 and spaces separate items more weakly than ，or ；. So the words
        just before a number are read first back to the nearest 、/space ("清理小广告、张贴海报20张"
        is publicity), then the words after it, then back to the previous quantity or the clause
        start ("入户走访、登记30户" is a visit); failing all that, the heading, and last the
        category of the clause's previous quantity.
        """
        last = len(quantities) - 1
        previous: str | None = None
        for i, (q_start, q_end, value, unit) in enumerate(quantities):
            bound = quantities[i - 1][1] if i else clause_start
            near = bound
            for s_start, s_end in softs:
                if s_start >= bound and s_end <= q_start and text[s_end:q_start].strip():
                    near = s_end
            cid = self.category_in(text, near, q_start)
            if cid is None:
                # The words after it: up to the next quantity, but a 、/space before that next
                # quantity starts the next item's words ("出动8人、清理小广告15处").
                after_end = clause_end
                if i < last:
                    after_end = quantities[i + 1][0]
                    for s_start, _ in softs:
                        if q_end <= s_start < after_end:
                            after_end = s_start
                            break
                cid = self.category_in(text, q_end, after_end)
            if cid is None and near != bound:
                cid = self.category_in(text, bound, q_start)
            if cid is None:
                cid = heading
            if cid is None:
                # A second measure of the same work: "拆除违建2处约30平方米", "清运垃圾2车约3吨".
                cid = previous
            if cid is not None:
                items.append(Item(cid, value, unit))
            previous = cid


@functools.lru_cache(maxsize=32)
def _compiled(categories: tuple[Category, ...]) -> Parser:
    return Parser(categories)


_last: tuple[Sequence[Category], Parser] | None = None


def compile_categories(categories: Sequence[Category]) -> Parser:
    """The (cached) parser for a category list. The config hands out the same list object until
    it is reloaded, so that object is checked first: hashing every category costs more than a
    short report's parse."""
    global _last
    if _last is not None and _last[0] is categories:
        return _last[1]
    parser = _compiled(tuple(categories))
    _last = (categories, parser)
    return parser


def parse_report(text: str, categories: Sequence[Category], message_date: datetime.date) -> ParsedReport:
    return compile_categories(categories).parse(text, message_date)
