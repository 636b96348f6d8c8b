"""How people write about problems: "问题:…" opens one; "整改 #P12 已清理" closes it;
"转 #P12 2号网格" reassigns, "重开 #P12 原因" reopens, "撤回 #P12 原因" withdraws; "问题" / "我的问题"
lists the open ones.

Patterns run on the text as typed (full-width punctuation included) so that what is stored
reads exactly as the person wrote it.
"""

from __future__ import annotations

import re

from bot.config import Config
from bot.numbers_zh import chinese_number, normalize
from bot.report_parser import parse_report
from bot.taxonomy import Category

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
# "#P12 已疏通": an id first, then a note that says it is done (filtered in parse_close).
CLOSE_ID_FIRST = re.compile(rf"^{_ID}(?:\s|{_COLON}|{_SEP})*(?P<verb>整改\s*{_COLON}?)?(?P<note>.*)$", re.S)
REASSIGN = re.compile(rf"^(?:转派|转交|改派|转)\s*{_ID}\s*(?:到|至|给)?\s*(?P<target>.*)$", re.S)
REOPEN = re.compile(rf"^(?:重开|重新打开|重启)\s*{_ID}{_TAIL}", re.S)
# "撤回 #P12 重复登记", "撤回问题 #P12", "#P12 撤回", "问题 #P12 撤回". A bare "撤回" or "撤回 #R12" is
# about reports and never matches here: the id must be a P id.
_WITHDRAW_VERB = "(?:撤回|撤销)(?:问题)?"
WITHDRAW_VERB_FIRST = re.compile(rf"^{_WITHDRAW_VERB}\s*{_COLON}?\s*{_ID}{_TAIL}", re.S)
WITHDRAW_ID_FIRST = re.compile(rf"^(?:问题\s*)?{_ID}(?:\s|{_COLON}|{_SEP})*{_WITHDRAW_VERB}{_TAIL}", re.S)
# Sentence-final particles are tone, not a reason ("撤回 #P4 吧").
_PARTICLES = re.compile(r"[吧啊呀哈啦嘛]+$")
_TRIM = " \t,\uff0c\u3002.!\uff01;\uff1b"

# A "整改 #P12 …" note reports the fix done when it says so in any of the ways people do: a
# rectification verb marked finished ("已疏通", "均已拆除", "清理完毕", "整改到位", "移走了"), or a
# word that is done by itself ("搞定", "办结"). Anything else is progress ("已联系物业,明天清运").
FIX_VERBS = ("清理", "清除", "清运", "清扫", "打扫", "清洗", "清掉", "清空", "疏通", "拆除", "拆掉", "撤除",
             "规范", "整改", "整治", "处理", "处置", "完成", "移走", "移除", "移开", "搬走", "搬离", "挪走",
             "劝离", "取缔", "修复", "修好", "维修", "修缮", "更换", "换掉", "恢复", "解决", "覆盖", "铲除",
             "填平", "封堵", "加固", "粉刷", "归位", "收走", "回收", "消除", "补齐", "补装", "安装",
             "落实", "办结", "劝导", "摆放整齐", "摆齐")
_VERB = "(?:" + "|".join(sorted(FIX_VERBS, key=len, reverse=True)) + ")"
DONE = re.compile(
    rf"(?:已经?|均已|都已|全部|全都|已全部)\s*{_VERB}"  # 已疏通, 均已拆除
    rf"|{_VERB}(?:完毕|完成|完了|好了|干净|到位|结束|彻底)"  # 清理完毕, 整改到位
    rf"|{_VERB}了(?=$|[\s,,。.!!;;])"  # 移走了
    r"|搞定|办结|完毕|弄好了|处理好了")
NOT_DONE = re.compile(r"未完成|没完成|尚未|还没|未处理|未整改|未清理|没清理|正在|进行中|计划|预计|明天|后天|下周"
                      r"|一半|部分|仍有|还有|准备|即将|安排")
ALWAYS_CLOSE_VERBS = {"已整改", "整改完成", "已完成", "完成", "已处理", "销号", "已销号", "已清理"}


def says_done(note: str) -> bool:
    """Does a note on a problem say the fix is done ("已疏通"), not only under way ("正在清运")?"""
    return bool(DONE.search(note)) and not NOT_DONE.search(note)


ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\ufeff]")


def clean(text: str) -> str:
    # Zero-width characters sneak in from copy-paste and would defeat the anchors.
    return ZERO_WIDTH.sub("", text).strip()


# --- opening -------------------------------------------------------------------------

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
    m = OPEN_PREFIX.match(clean(text))
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


def detect_category(cfg: Config, text: str) -> Category | None:
    for cat in cfg.category_list:
        if any(k and k in text for k in cat.keywords):
            return cat
    return None


# --- closing and reopening -------------------------------------------------------------

def parse_close(text: str) -> dict | None:
    text = clean(text)
    m = CLOSE_VERB_FIRST.match(text) or CLOSE_ID_FIRST.match(text)
    if not m:
        return None
    verb, note = m.group("verb") or "", m.group("note").strip(" \t:\uff1a,\uff0c。")
    if m.re is CLOSE_ID_FIRST:
        if not says_done(note):
            return None  # "#P12 照片看不清" is no fix; other routes (or none) take it
        return {"n": m.group("n"), "note": note, "done": True}
    if verb == "进展":
        done = False
    elif verb in ALWAYS_CLOSE_VERBS:
        done = not NOT_DONE.search(note)
    else:  # 整改 + note: done when the note says so (an empty note means the fix itself)
        done = not note or says_done(note)
    return {"n": m.group("n"), "note": note, "done": done}


# --- checking a fix (核查) --------------------------------------------------------------

_CHECK = "(?:核查|审核|验收|复核|核验)"
_END = r"[\s。.!！]*$"
_PASS = "(?:通过|合格|同意销号)"
PASS_FORMS = (
    re.compile(rf"^(?:{_CHECK}?通过|同意销号)\s*{_COLON}?\s*{_ID}{_END}"),  # 通过 #P12, 核查通过 #P12
    re.compile(rf"^{_CHECK}\s*{_COLON}?\s*{_ID}(?:\s|{_COLON}|{_SEP})*{_PASS}{_END}"),  # 核查 #P12 通过
    re.compile(rf"^{_ID}(?:\s|{_COLON}|{_SEP})*{_CHECK}?{_PASS}{_END}"),  # #P12 核查通过
)
# "销号 #P12" passes a fix that waits for its check; on a problem still being fixed it is a fix.
CLOSE_WORDS = (re.compile(rf"^(?:已销号|销号)\s*{_COLON}?\s*{_ID}{_END}"),
               re.compile(rf"^{_ID}\s*(?:已销号|销号){_END}"))
_REJECT = "(?:驳回|退回|打回|不通过|不合格)"
REJECT_VERB_FIRST = re.compile(rf"^(?:{_CHECK}?{_REJECT})\s*{_COLON}?\s*{_ID}{_TAIL}", re.S)
REJECT_CHECK_FIRST = re.compile(rf"^{_CHECK}\s*{_ID}(?:\s|{_COLON}|{_SEP})*{_REJECT}{_TAIL}", re.S)
REJECT_ID_FIRST = re.compile(rf"^{_ID}(?:\s|{_COLON}|{_SEP})*{_CHECK}?{_REJECT}{_TAIL}", re.S)


def parse_decision(text: str) -> dict | None:
    """A checker's decision on a fix: {"n", "verdict": "pass" | "reject", "reason", "close_word"}.

    "核查 #P12 通过", "#P12 通过", "通过 #P12" pass; "驳回 #P12 照片看不清", "#P12 不通过 仍有垃圾",
    "核查 #P12 不合格 …" reject with the reason that follows. "销号 #P12" is marked `close_word`: a
    pass only while the problem waits for its check.
    """
    text = clean(text)
    for rx in (REJECT_VERB_FIRST, REJECT_CHECK_FIRST, REJECT_ID_FIRST):
        m = rx.match(text)
        if m:
            reason = _PARTICLES.sub("", reopen_reason(m.group("note")).strip(_TRIM)).strip(_TRIM)
            return {"n": m.group("n"), "verdict": "reject", "reason": reason, "close_word": False}
    for rx in PASS_FORMS:
        if m := rx.match(text):
            return {"n": m.group("n"), "verdict": "pass", "reason": "", "close_word": False}
    for rx in CLOSE_WORDS:
        if m := rx.match(text):
            return {"n": m.group("n"), "verdict": "pass", "reason": "", "close_word": True}
    return None


def reopen_reason(note: str) -> str:
    """The reason given after "重开 #P12", without a leading "原因:"."""
    return re.sub(rf"^原因\s*{_COLON}?\s*", "", note.strip())


def parse_withdraw(text: str) -> dict | None:
    """{"n", "reason"} when `text` withdraws a problem ("撤回 #P12 重复登记" → reason "重复登记")."""
    text = clean(text)
    m = WITHDRAW_VERB_FIRST.match(text) or WITHDRAW_ID_FIRST.match(text)
    if not m:
        return None
    reason = _PARTICLES.sub("", reopen_reason(m.group("note")).strip(_TRIM)).strip(_TRIM)
    return {"n": m.group("n"), "reason": reason}


# --- grids named in a text --------------------------------------------------------------

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
