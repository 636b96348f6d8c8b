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
CLOSE_ID_FIRST = re.compile(
    rf"^{_ID}(?:\s|{_COLON}|{_SEP})*(?P<verb>已整改|整改完成|已完成|已处理|已清理|已销号|销号)(?P<note>.*)$", re.S)
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

# A "整改 #P12 …" note closes the problem when it says the work is done; otherwise it is progress.
DONE_WORDS = ("已清理", "已整改", "已完成", "完成", "销号", "已处理", "已清除", "已拆除", "已修复", "已清运",
              "已解决", "办结", "已恢复", "已规范", "已劝离", "已取缔", "已清", "完毕", "已更换", "已维修",
              "已移除", "已搬离", "已整治", "已落实")
NOT_DONE = re.compile(r"未完成|没完成|尚未|还没|未处理|未整改|正在|进行中|计划|预计|明天|下周")
ALWAYS_CLOSE_VERBS = {"已整改", "整改完成", "已完成", "完成", "已处理", "销号", "已销号", "已清理"}

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
