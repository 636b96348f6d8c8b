"""The report tokenizer: one regex pass finds quantities (number + unit), dates, times, list
markers, separators and the things that look like numbers but are not counts; the helpers below
read a quantity's value and tell a count from an address, a dimension, an ordinal or an idiom.

Why one regex: a report is read on every message, and a single `finditer` over a short text
costs a few microseconds, where a character-by-character scanner in Python costs tens.
"""

from __future__ import annotations

import re
from typing import Mapping

from bot.numbers_zh import CN_DIGITS, CN_MULTIPLIERS, VAGUE_DIGITS, chinese_number, small_number
from bot.report_dates import DATE_FIRST_CHARS, date_pattern
from bot.report_vocab import UNIT_NOT_BEFORE

# After a number: "at least" (两百余张, 300多平方米, 三十来户, 十几户, 千把人); the number is kept.
APPROX = "余多来几把"
# Between number and unit: a measure word or an adjective that does not change what is counted
# (两个小时, 3大袋, 两大车, 5小袋, 3整车).
ADJECTIVES = "大小整满"
RANGE_LINKS = "-~～—–至到"

_CN_DIGITS = "".join(CN_DIGITS)
_CN_NUM = _CN_DIGITS + "".join(CN_MULTIPLIERS)
_CN_START = _CN_DIGITS + "十拾"
# A Chinese numeral never starts right after these: 统一张贴, 唯一, 逐一, 周一, 星期一…
_CN_NOT_AFTER = "统唯同逐之初周期礼拜每万千百" + _CN_NUM
_CN_SMALL = "一二三四五六七八九十"

# Fixed phrases made of a numeral and a unit that count nothing.
IDIOMS = ("三番五次", "三令五申", "一五一十", "千家万户", "一本正经", "一次性", "一条龙", "一条心",
          "一揽子", "一站式")
# 一起 is "together" unless an incident is named next to it (调解邻里纠纷一起, 调解了一起纠纷);
# 一块 is "together" before a verb (一块打扫), unlike 一块展板; 四处 is "everywhere" before a verb.
INCIDENT_NOUNS = ("纠纷", "矛盾", "事件", "案件", "事故", "警情", "投诉", "火情", "火灾", "违建",
                  "违章", "家庭", "邻里", "隐患", "问题", "信访", "争执", "冲突", "交通", "盗窃")
INCIDENT_BEFORE = INCIDENT_NOUNS + ("行为", "调解", "调处", "化解", "处置", "处理", "劝导",
                                    "纠正", "制止", "劝阻", "发生", "发现")
TOGETHER_VERBS = set("打清参去来做干开巡劳走帮搞捡到")
EVERYWHERE_VERBS = set("张贴乱散奔游走寻巡宣发打查看找逛跑飘堆扔流")
# Where a house number sits: 3栋2单元302户, 5号楼1501户 (a room, not 1501 households).
ADDRESS_BEFORE = ("单元", "楼", "栋", "幢", "座", "号")
DIMENSION_UNITS = {"米", "公里"}
DIMENSION_AFTER = re.compile(r"\s*(?:[长宽高深粗厚]|见方|[×xX*])")
DIMENSION_BEFORE = re.compile(r"(?:[长宽高深粗厚](?:度|约|为|达|有)*|[×xX*])\s*$")


def _alternation(words) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


def unit_pattern(units: Mapping[str, str]) -> str:
    forms = []
    for form in sorted(units, key=len, reverse=True):
        guard = UNIT_NOT_BEFORE.get(form)
        forms.append(re.escape(form) + (f"(?!{guard})" if guard else ""))
    return "|".join(forms)


# Every character a token can start with, besides digits: numerals, the first characters of
# date words, idioms and plan words, markers, brackets, signs and separators.
_FIRST = (DATE_FIRST_CHARS + _CN_NUM + VAGUE_DIGITS + "上半负-−(【计打预将" + "".join(w[0] for w in IDIOMS)
          + ",;。!?\n\r…|.、 \t:%")


class Tokenizer:
    """`scan(text)` yields what `pattern.finditer(text)` would, but jumps straight to the next
    character a token can start with: with some twenty alternatives, most of them guarded by a
    lookbehind, trying each at every character of a Chinese sentence costs three times as much."""

    def __init__(self, units: Mapping[str, str]):
        self.pattern = build_pattern(units)
        chars = "".join(sorted(set(_FIRST)))
        self._next = re.compile(r"[\d\u2460-\u2487" + re.escape(chars) + "]").search

    def scan(self, text: str):
        find, match = self._next, self.pattern.match
        pos = 0
        while (hit := find(text, pos)) is not None:
            start = hit.start()
            m = match(text, start)
            if m is None:
                pos = start + 1
                continue
            yield m
            pos = m.end() if m.end() > start else start + 1


def build_pattern(units: Mapping[str, str]) -> re.Pattern:
    unit = unit_pattern(units)
    number = (
        rf"(?P<ar>(?<![\d.A-Za-z#_])\d+(?:,\d{{3}})*(?:\.\d+)?)(?P<arm>[十百千万]*)"
        rf"|(?P<cn>(?<![{_CN_NOT_AFTER}])(?:[{VAGUE_DIGITS}](?=[十百千万])|百(?=十)|[{_CN_START}])[{_CN_NUM}]*)"
        rf"(?:点(?P<cnf>[{_CN_DIGITS}]+))?"
        rf"|(?P<bare>上[百千万]|(?<![{_CN_NUM}])[百千万](?=[{APPROX}]))"  # 上百份, 百余人, 千把人
        r"|(?P<half>半(?=个?(?:小时|钟头)))"
    )
    return re.compile(
        date_pattern(unit)
        + r"|(?P<phone>(?<![\d.])(?:0\d{2,3}-\d{7,8}|\d{7,})(?![\d.]))"
        + rf"|(?P<pct>\d+(?:\.\d+)?\s*%|百分之[{_CN_NUM}点]+)"
        + rf"|(?P<idiom>{_alternation(IDIOMS)}|一[户人家处栋件村楼]一[\u4e00-\u9fff])"
        # List markers: 1. 2、 3) (4) ① 一、 (一), at the start of a line or after a separator, so
        # that "入户走访20户2、…" is not cut after the 户; "1、200份" is marker 1 and 200 copies.
        + r"|(?P<marker>(?:(?<![\d.、\u4e00-\u9fff])\d{1,2}(?:[.)](?!\d)|、))"
        r"|(?:\(\d{1,2}\))|[\u2460-\u2473\u2474-\u2487]"
        rf"|(?:(?<![\u4e00-\u9fff])[{_CN_SMALL}]{{1,3}}、)|(?:\([{_CN_SMALL}]{{1,3}}\)))"
        + r"|(?P<bracket>【(?P<btext>[^】\n]*)】)"
        + r"|(?P<planv>(?<![按照原成的超订])(?:计划|打算|预计|将要)(?![了内外表书生任好中的]))"
        + rf"|(?P<qty>(?P<neg>[-−]|负(?=[\d{_CN_SMALL}两]))?(?:{number})"
        rf"(?:[ \t]*(?P<rlink>[{RANGE_LINKS}])[ \t]*(?:\d+(?:\.\d+)?|[{_CN_NUM}]+)"
        # 3、4处: two neighbouring digits are a range too; "2、30处" is marker 2 and 30处.
        rf"|(?P<pause>、)(?P<r2>\d+|[{_CN_DIGITS}])(?![\d{_CN_NUM}]))?"
        rf"[ \t]*(?P<approx>[{APPROX}])?[ \t]*(?P<ge>个)?(?:[余多])?(?P<hf>半)?[{ADJECTIVES}]?"
        rf"[ \t]*(?P<unit>{unit}))"
        + r"|(?P<num>(?<![\d.])\d+(?:\.\d+)?)"
        + r"|(?P<colon>:)"
        + r"|(?P<hard>[,;。!?\n\r…|]|\.(?!\d)|(?<!\d)\.)"
        + r"|(?P<soft>[、 \t]+)"
    )


def _tidy(value: float) -> int | float:
    if value == int(value):
        return int(value)
    return round(value, 6)


def quantity_value(m: re.Match, arabic: str | None = None) -> int | float:
    """The count a quantity token names; a range keeps its lower end, "at least" words are
    dropped. `arabic` replaces the Arabic digits (a list marker glued in front was cut off)."""
    value = _number(m, arabic if arabic is not None else m["ar"])
    if m["pause"] and arabic is None:
        second = small_number(m["r2"].replace("两", "二"))
        if second != value + 1:
            value = second  # "2、30处": the 2 was a list marker
    if m["hf"]:  # 一个半小时
        value += 0.5
    return _tidy(value)


def _number(m: re.Match, ar: str | None) -> float:
    if ar is not None:
        value: float = float(ar.replace(",", ""))
        for ch in m["arm"]:
            value *= CN_MULTIPLIERS[ch]
        return value
    if m["cn"] is not None:
        value = chinese_number(m["cn"])
        if m["cnf"]:  # 一点五吨
            value += float("0." + "".join(str(CN_DIGITS[c]) for c in m["cnf"]))
        return value
    if m["bare"] is not None:
        return CN_MULTIPLIERS[m["bare"][-1]]
    return 0.5


def glued_marker(text: str, m: re.Match, measured: bool, marker_position: bool) -> str | None:
    """The digits after a list marker glued to a number ("2.200份" → "200"), or None.

    Counted things come whole, so a decimal point before a counted unit at the start of an item
    is a list marker; before a measured unit (2.5吨) only when the digits could not be a decimal
    as written (2.200吨: three decimals ending in a zero, which no one types)."""
    ar = m["ar"]
    if ar is None or "." not in ar or not marker_position or m["rlink"] or m["arm"]:
        return None
    whole, _, fraction = ar.partition(".")
    if len(whole) > 2 or "," in ar or whole.startswith("0"):
        return None
    if measured and not (len(fraction) >= 3 and fraction.endswith("0")):
        return None
    return fraction


def is_idiom(text: str, m: re.Match) -> bool:
    """一起/一块/四处/一户户/一家一户: a numeral and a unit that together form an ordinary word."""
    cn, unit = m["cn"], m["unit"]
    if cn is None or m["ar"] is not None:
        return False
    end = m.end()
    following = text[end:end + 1]
    if cn == "四":
        return unit == "处" and following in EVERYWHERE_VERBS
    if cn != "一":
        return False
    start = m.start("cn")
    if following == unit[-1:] or following == "一":
        return True  # 一户户, 一处处, 一户一档
    if start >= 2 and text[start - 2] == "一" and text[start - 1] not in _CN_NUM:
        return True  # 一家一户
    if unit == "起":
        return not (text.endswith(INCIDENT_BEFORE, 0, start) or text.startswith(INCIDENT_NOUNS, end))
    if unit == "块":
        return following in TOGETHER_VERBS
    return False


def is_address(text: str, m: re.Match, canonical_unit: str) -> bool:
    """302户 right after 3栋2单元 is a flat; after 5号楼 a three-digit number is one too."""
    if canonical_unit != "户":
        return False
    start = m.start()
    if text.endswith("单元", 0, start):
        return True
    digits = m["ar"] or ""
    return len(digits) >= 3 and text.endswith(ADDRESS_BEFORE, 0, start)


def is_dimension(text: str, m: re.Match, canonical_unit: str) -> bool:
    """10米长的横幅, 长约15米, 3米×2米: a size, not an amount of work."""
    if canonical_unit not in DIMENSION_UNITS:
        return False
    start = m.start()
    return (DIMENSION_AFTER.match(text, m.end()) is not None
            or DIMENSION_BEFORE.search(text, max(0, start - 4), start) is not None)


def bare_number_reason(text: str, m: re.Match) -> str:
    """Why a number with no unit after it is not a count (for `parse --explain`)."""
    end = m.end()
    nxt = text[end:end + 2]
    if not nxt:
        return "no_unit"
    if text[m.start() - 1:m.start()] == "第":
        return "ordinal"
    if nxt[:1] in ".、)":
        return "marker"
    if nxt == "分钟":
        return "no_unit"
    if nxt[:1] in "点时分秒" or nxt == "小时":
        return "time"
    if nxt[:1] in "号栋楼层室" or nxt == "单元":
        return "address"
    if nxt[:1] in "岁":
        return "age"
    if nxt[:1] in "元块角":
        return "money"
    return "no_unit"
