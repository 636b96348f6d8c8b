"""The Chinese wording of config errors, for the office admin who edits the TOML file.

bot.config_loading finds the problems (TOML syntax, the model's validation, cross-checks) and
places them at file:line; this module says what is wrong in plain words: which person, grid or
schedule (by id and name, not a 0-based index), what value is expected, and the nearest valid
name when a key or value looks like a typo. pydantic's and tomllib's English never reaches the
admin; secrets are never echoed.
"""

from __future__ import annotations

import difflib
import errno
import re
import types
from typing import Literal, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr

from bot.config import Config, show_value

# --- naming a field ----------------------------------------------------------------------

# Lists of tables are named by their own key, as the admin knows them: "人员 lisi(李四)".
_NAMED: dict[tuple, tuple[str, str, str | None]] = {
    ("people",): ("人员", "userid", "name"),
    ("grids",): ("网格", "id", "name"),
    ("communities",): ("社区", "id", "name"),
    ("categories",): ("类别", "id", "label"),
    ("schedules",): ("定时任务", "name", None),
    ("calendar", "campaigns"): ("迎检期间", "name", None),
}


def _item_label(kind: str, key: str, second: str | None, item: object, index: int) -> str:
    if not isinstance(item, dict) or not isinstance(item.get(key), str) or not item[key].strip():
        other = item.get(second or key) if isinstance(item, dict) else None
        # Without its id, the name still tells the admin which one: "第9个人员(赵六)".
        return f"第{index + 1}个{kind}({other})" if isinstance(other, str) and other.strip() else f"第{index + 1}个{kind}"
    if second is None:
        return f"{kind}\u201c{item[key]}\u201d"
    other = item.get(second)
    return f"{kind} {item[key]}({other})" if isinstance(other, str) and other else f"{kind} {item[key]}"


def _rest(parts: tuple) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f" 第{part + 1}项"
        else:
            out += ("." if out else "") + str(part)
    return out


def field_label(loc: tuple, data: object) -> str:
    """("people", 3, "grid") → "人员 lisi(李四)的 grid"; ("bot", "nmae") → "bot.nmae"."""
    for prefix, (kind, key, second) in _NAMED.items():
        n = len(prefix)
        if tuple(loc[:n]) == prefix and len(loc) > n and isinstance(loc[n], int):
            items = data
            for part in prefix:
                items = items.get(part) if isinstance(items, dict) else None
            item = items[loc[n]] if isinstance(items, list) and loc[n] < len(items) else None
            label = _item_label(kind, key, second, item, loc[n])
            rest = _rest(tuple(loc[n + 1:]))
            if not rest:
                return label
            # "人员 lisi 的 grid" but "人员 lisi(李四)的 grid": a space only after a bare id.
            return f"{label} 的 {rest}" if label[-1].isascii() and label[-1].isalnum() else f"{label}的 {rest}"
    return _rest(tuple(loc))


# --- the model at a path ----------------------------------------------------------------


def _unwrap(tp: object) -> object:
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def annotation_at(loc: tuple) -> object | None:
    tp: object = Config
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(part, int):
            if get_origin(tp) in (list, tuple) and get_args(tp):
                tp = get_args(tp)[0]
            else:
                return None
        elif isinstance(tp, type) and issubclass(tp, BaseModel) and part in tp.model_fields:
            tp = tp.model_fields[part].annotation
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
        else:
            return None
    return _unwrap(tp)


def known_keys(loc: tuple) -> list[str]:
    tp = annotation_at(loc)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [k for k in tp.model_fields if k != "source"]
    return []


def nearest(word: str, options: list[str]) -> str | None:
    found = difflib.get_close_matches(word, options, n=1, cutoff=0.7)
    if not found:
        lowered = {o.lower(): o for o in options}
        found = [lowered[word.lower()]] if word.lower() in lowered else []
    return found[0] if found else None


def listing(options: list[str], limit: int = 12) -> str:
    shown = "、".join(options[:limit])
    return shown + (f" 等 {len(options)} 个" if len(options) > limit else "")


# --- pydantic's errors in Chinese ---------------------------------------------------------

GLOSSES = {
    "emulator": "内置模拟器", "live": "正式接入企业微信",
    "tinydb": "本机数据文件,默认", "postgres": "PostgreSQL 数据库",
    "member": "网格员", "grid_leader": "网格长", "leader": "领导", "admin": "管理员",
    "daily_reminder": "每日提醒", "checkin_nudge": "未打卡提醒", "escalation": "告知网格长",
    "weekly_tally": "周通报", "overdue_problems": "逾期问题通报", "weekly_digest": "领导周报", "monthly_bulletin": "月通报",
    "ladder": "逐级督办", "community": "社区领导", "street": "街道领导", "none": "不核查",
}
_SECRET_KEYS = {"secret", "token", "encoding_aes_key", "admin_token"}

_EXPECTED = [
    ("int_from_float", "应为整数,不能带小数"),
    ("int_", "应为整数"),
    ("float_", "应为数字(可以带小数)"),
    ("bool_", "应为 是/否,请写 true 或 false(不加引号)"),
    ("string_", "应为文本,两边要加英文引号 \"…\""),
    ("time_", "应为时间,格式如 \"08:30\""),
    ("date", "应为日期,格式如 2026-12-05(不加引号)"),
    ("list_", "应为列表,如 [\"a\", \"b\"]"),
    ("tuple_", "应为列表,如 [30.27, 120.15]"),
    ("dict_", "应为一组 名称 = 数值,如 { visit = 50 }"),
    ("path_", "应为文件夹路径,两边要加英文引号,如 \"data\""),
    ("model_", "应为一组设置:单独成段写成 [段名],或写成 { 名称 = 值 }"),
]


def _num(x: object) -> str:
    return str(int(x)) if isinstance(x, float) and x.is_integer() else str(x)


def _secret(loc: tuple) -> bool:
    return any(p in _SECRET_KEYS for p in loc if isinstance(p, str)) or annotation_at(loc) is SecretStr


def pydantic_message(err: dict) -> str:
    loc, t, ctx = tuple(err["loc"]), err["type"], err.get("ctx") or {}
    value = err.get("input")
    wrote = "" if _secret(loc) else f",写成了 {show_value(value)}"
    if t == "missing":
        if len(loc) == 1 and known_keys(loc):
            return f"缺少 [{loc[0]}] 这一段,必须填写"
        return "缺少这一项,必须填写"
    if t == "extra_forbidden":
        key, parent = str(loc[-1]), tuple(loc[:-1])
        options = known_keys(parent)
        near = nearest(key, options)
        if not parent:
            return f"未知的配置段 [{key}]," + (f"是否应为 [{near}]?" if near else f"可用的段:{listing(options)}")
        return "未知字段," + (f"是否应为 {near}?" if near else f"这里可以填写:{listing(options)}")
    if t == "literal_error":
        tp = annotation_at(loc)
        options = [str(o) for o in get_args(tp)] if get_origin(tp) is Literal else [ctx.get("expected", "")]
        choices = "、".join(f"{o}({GLOSSES[o]})" if o in GLOSSES else o for o in options)
        near = nearest(str(value), options) if isinstance(value, str) else None
        return f"取值 {show_value(value)} 无效," + (f"是否应为 {near}?" if near else "") + f"可选:{choices}"
    if t in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        words = {"greater_than": "应大于", "greater_than_equal": "不能小于",
                 "less_than": "应小于", "less_than_equal": "不能大于"}
        bound = next(iter(ctx.values()), "")
        return f"{words[t]} {_num(bound)}{wrote}"
    if t == "string_too_short":
        return "不能为空"
    if t == "too_short":
        return "不能为空" if ctx.get("min_length", 1) <= 1 else f"至少要填 {ctx['min_length']} 项"
    vertex = "polygon" in loc and isinstance(loc[-1], int)
    if t == "too_long" or (vertex and t.startswith(("tuple_", "list_"))):
        if vertex:
            return f"每个顶点应为两个数字 [纬度, 经度]{wrote}"
        return f"最多填 {ctx.get('max_length')} 项{wrote}"
    if t in ("value_error", "assertion_error"):
        return err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    for prefix, expected in _EXPECTED:
        if t.startswith(prefix):
            if "polygon" in loc and prefix in ("tuple_", "list_"):
                expected = "应为顶点列表,每个顶点是 [纬度, 经度],如 [[30.27, 120.15], [30.28, 120.16]]"
            return f"{expected}{wrote}"
    # A kind of error not worded here yet: say so in Chinese, keep pydantic's words for the admin.
    return f"取值无效{wrote}({err['msg']})"


# --- TOML syntax ------------------------------------------------------------------------

# Full-width punctuation a Chinese input method types where TOML needs the ASCII character.
# (Escaped, so no editor or formatter can turn them into the ASCII characters they mimic.)
_WIDE = {
    "\u201c": ('"…"', "中文引号 \u201c…\u201d"), "\u201d": ('"…"', "中文引号 \u201c…\u201d"),
    "\u2018": ('"…"', "中文引号 \u2018…\u2019"), "\u2019": ('"…"', "中文引号 \u2018…\u2019"),
    "\uff02": ('"…"', "全角引号 \uff02…\uff02"), "\uff07": ('"…"', "全角引号 \uff07…\uff07"),
    "\uff0c": ("英文逗号 ,", "中文逗号 \uff0c"), "\uff1d": ("英文等号 =", "全角等号 \uff1d"),
    "\uff1a": ("英文冒号 :", "中文冒号 \uff1a"),
    "\uff3b": ("英文方括号 [ ]", "全角方括号 \uff3b \uff3d"), "\uff3d": ("英文方括号 [ ]", "全角方括号 \uff3b \uff3d"),
    "\uff5b": ("英文花括号 { }", "全角花括号 \uff5b \uff5d"), "\uff5d": ("英文花括号 { }", "全角花括号 \uff5b \uff5d"),
    "\u3000": ("半角空格", "全角空格"),
}
_QUOTES = "\u201c\u201d\u2018\u2019\uff02\uff07"
_CLOSING = {"\u201c": "\u201d", "\u2018": "\u2019", "\uff02": "\uff02", "\uff07": "\uff07"}


def wide_punctuation(text: str) -> dict[int, list[str]]:
    """Line number → full-width characters found outside TOML strings and comments.

    Inside a proper "…" string they are text (focus = "整治“背街小巷”" is fine), so this walks
    the strings the way TOML does. A curly-quoted "string" is skipped to its closing quote, so
    the commas inside it are not reported as well.
    """
    found: dict[int, list[str]] = {}
    line, i, n = 1, 0, len(text)
    state = None  # None, '"', "'", '"""' or "'''"
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            if state in ('"', "'"):
                state = None  # an unclosed one-line string: tomllib reports that line itself
            i += 1
            continue
        if state is None:
            if text.startswith(('"""', "'''"), i):
                state, i = text[i:i + 3], i + 3
            elif c in "\"'":
                state, i = c, i + 1
            elif c == "#":
                while i < n and text[i] != "\n":
                    i += 1
            elif c in _WIDE:
                chars = found.setdefault(line, [])
                if c not in chars:
                    chars.append(c)
                i += 1
                if c in _CLOSING:
                    end = text.find(_CLOSING[c], i)
                    eol = text.find("\n", i)
                    if end != -1 and (eol == -1 or end < eol):
                        if _CLOSING[c] not in chars:
                            chars.append(_CLOSING[c])
                        i = end + 1
            else:
                i += 1
        elif state in ('"', '"""') and c == "\\":
            # An escape; a backslash ending a line leaves the newline to be counted above.
            i += 1 if text.startswith("\n", i + 1) else 2
        elif text.startswith(state, i):
            i += len(state)
            state = None
        else:
            i += 1
    return found


def wide_message(chars: list[str]) -> str:
    parts: list[str] = []
    for c in chars:
        right, wrong = _WIDE[c]
        if c in _QUOTES:
            part = f"请使用英文半角引号 {right},不要用{wrong}"
        else:
            part = f"请把{wrong} 改成{right}"
        if part not in parts:
            parts.append(part)
    return ";".join(parts)


_TOML_ZH = [
    ("Illegal character '\\n'", "引号没有成对:文本两边都要有英文引号,且不能换行"),
    ("Expected '=' after a key", "这一行应写成 名称 = 值(可能缺少等号,或名称里有空格、中文)"),
    ("Expected newline or end of document", "值后面多了内容:一行只写一项,文本要整个用英文引号括起来"),
    ("Invalid value", "值的写法不对,文本要加英文引号,如 name = \"张三\";数字、true/false、日期不加引号"),
    ("Invalid statement", "这一行无法识别,应写成 名称 = 值,或 [段名]"),
    ("Unterminated string", "引号没有成对:文本两边都要有英文引号"),
    ("Unclosed array", "列表的方括号 [ ] 没有闭合(可能在这一行之前),或列表各项之间缺少英文逗号"),
    ("Unclosed inline table", "花括号 { } 没有闭合,或其中各项之间缺少英文逗号"),
    ("Expected ']' at the end of a table", "段名应写成 [段名],缺少右方括号"),
    ("Expected ']]' at the end of an array", "可重复的段应写成 [[段名]],缺少右方括号"),
    ("Cannot overwrite a value", "同一个名称写了两次,每一项只能填写一次"),
    ("Cannot mutate immutable namespace", "这一段与前面同名的写法冲突"),
    ("Cannot redefine namespace", "这一段与前面同名的写法冲突"),
    ("Duplicate inline table key", "花括号 { } 里同一个名称写了两次"),
    ("Invalid initial character for a key", "名称只能用英文字母、数字、下划线和短横线"),
    ("Invalid date or datetime", "日期或时间的写法不对,日期如 2026-12-05,时间如 \"08:30\""),
    ("Found invalid character", "有不允许的字符"),
    ("Illegal character", "有不允许的字符(如制表符以外的控制字符)"),
    ("Unescaped '\\' in a string", "文本里的反斜杠 \\ 要写成两个 \\\\,或改用单引号 '…'"),
    ("Invalid hex value", "文本里的转义写法不对"),
    ("Escaped character", "文本里的转义写法不对"),
    ("Expected", "缺少应有的符号"),
]
_DECLARED_TWICE = re.compile(r"Cannot declare \((.*)\) twice")


def toml_message(error: str) -> str:
    m = _DECLARED_TWICE.match(error)
    if m:
        name = ".".join(p.strip().strip("'\"") for p in m.group(1).split(",") if p.strip())
        return (f"[{name}] 这一段前面已经写过,同一段只能出现一次"
                f"(可重复的段要用两层方括号,如 [[people]])")
    for english, chinese in _TOML_ZH:
        if error.startswith(english):
            return chinese
    return "这一行的写法不符合 TOML 格式"


# --- files --------------------------------------------------------------------------------

_OS_ZH = {
    errno.ENOENT: "找不到该文件或文件夹",
    errno.EACCES: "没有权限",
    errno.EPERM: "没有权限",
    errno.EISDIR: "这是一个文件夹,不是文件",
    errno.ENOTDIR: "路径中有一段是文件,不是文件夹",
    errno.ENOSPC: "磁盘空间已满",
    errno.EROFS: "磁盘是只读的",
}


def os_error_zh(e: OSError) -> str:
    return _OS_ZH.get(e.errno, f"系统错误:{e.strerror or e}")
