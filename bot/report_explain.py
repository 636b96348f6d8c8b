"""`gridbot parse` for admins, in Chinese: a readable table of what a message counts, and with
--explain every number found and why it became an item (which keyword, before or after it, or
the heading) or why not (an address, an ordinal, a quote, no category, not a unit…)."""

from __future__ import annotations

import datetime
import unicodedata
from typing import Callable

from bot.report_parser import Finding, ParsedReport

SKIP_ZH = {
    "quote": "在引号里,引用的话不计",
    "quote_block": "引用的消息,其中的数字和关键词都不计",
    "negative": "负数不计",
    "zero": "数量为零不计",
    "ordinal": "序数(第几次、第几批),不是数量",
    "idiom": "固定说法(如“一起”“一户一档”“一次性”),不是数量",
    "address": "门牌地址(楼号、单元、房号),不是数量",
    "dimension": "尺寸(长、宽、高),不是工作量",
    "marker": "列表序号",
    "time": "时间",
    "year": "年份",
    "phone": "电话号码或编号",
    "pct": "百分比",
    "age": "年龄",
    "money": "金额",
    "not_a_day": "不是某一天(如“每周一”“周一至周五”),不影响工作日期",
    "no_category": "前后和标题里都没有类别关键词,不计(可在配置里给类别添加关键词)",
}
HOW_ZH = {
    "before": "数字前面有关键词“{word}”",
    "after": "数字前面没有关键词,后面有“{word}”",
    "heading": "前后都没有关键词,按标题“{word}”",
}


def width(s: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)


def pad(s: str, n: int) -> str:
    return s + " " * max(0, n - width(s))


def _qty(value) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def date_line(parsed: ParsedReport, sent: datetime.date) -> str:
    day = f"{parsed.work_date.month}月{parsed.work_date.day}日"
    if parsed.mixed_dates:
        return "工作日期:无法确定(数量分属不同日期;机器人会请发送人按日期分开上报,不记录)"
    if parsed.planned_only:
        return "工作日期:无(只有计划中的工作;机器人会回复“完成后再上报”,不记录)"
    if parsed.absolute_date:
        return f"工作日期:{day}(文中写明的日期)"
    if parsed.dated:
        days = (sent - parsed.work_date).days
        return f"工作日期:{day}(文中的日期,比发送日早{days}天)" if days else f"工作日期:{day}(今天)"
    return f"工作日期:{day}(未写日期,按发送当天;以“补报”开头时按前一天)"


def _reason(f: Finding, text: str, label: Callable[[str], str]) -> str:
    if f.outcome == "date":
        if f.reason == "plan":
            return "表示将来的时间:它后面的数量是计划中的工作,不计入"
        day = datetime.date.fromisoformat(f.word)
        return f"日期 → {day.month}月{day.day}日"
    if f.outcome in ("item", "planned"):
        why = HOW_ZH[f.reason].format(word=f.word)
        what = f"{label(f.category)} {_qty(f.quantity)}{f.unit}"
        if f.outcome == "planned":
            return f"计划中的工作({what}),不计入 —— {why}"
        return f"计入 {what} —— {why}"
    if f.reason == "no_unit":
        following = text[f.end:f.end + 2].strip() or "(无)"
        return f"后面的“{following}”不是计量单位,不计(需要时可在配置 [parsing] extra_units 里添加)"
    return SKIP_ZH.get(f.reason, f.reason)


def explain_lines(text: str, parsed: ParsedReport, sent: datetime.date, label: Callable[[str], str]) -> list[str]:
    """What `gridbot parse --explain` prints for one message (parse it with explain=True)."""
    lines = [f"原文:{text}"]
    if parsed.text and parsed.text != text:
        lines.append(f"规范化后:{parsed.text}(繁体转简体、全角转半角、同义词替换)")
    lines.append(date_line(parsed, sent))
    if parsed.findings:
        shown = [f"“{f.text.strip()}”" if f.reason != "quote_block" else "“" + _short(f.text) + "”"
                 for f in parsed.findings]
        wide = min(max(width(s) for s in shown), 16)
        lines.append("逐个说明:")
        for f, s in zip(parsed.findings, shown):
            lines.append(f"  {pad(s, wide)}  {_reason(f, parsed.text, label)}")
    else:
        lines.append("没有找到数字或日期。")
    lines.append("结果:" + (", ".join(f"{label(i.category)} {_qty(i.quantity)}{i.unit}" for i in parsed.items)
                          or ("没有计数的工作项" + ("(文中有类别关键词,仍算一条工作记录)" if parsed.matched
                                                   and not parsed.planned_only and not parsed.mixed_dates else ""))))
    return lines


def _short(s: str, n: int = 14) -> str:
    s = " ".join(s.split())
    return s if len(s) <= n else s[:n] + "…"


def table_lines(text: str, parsed: ParsedReport, sent: datetime.date, label: Callable[[str], str]) -> list[str]:
    """The readable table plain `gridbot parse` prints for one message."""
    lines = [text.replace("\n", " ⏎ "), "  " + date_line(parsed, sent)]
    if parsed.items:
        rows = [("类别", "数量", "单位")] + [(label(i.category), _qty(i.quantity), i.unit) for i in parsed.items]
        w0 = max(width(r[0]) for r in rows)
        w1 = max(width(r[1]) for r in rows)
        for name, qty, unit in rows:
            lines.append(f"  {pad(name, w0)}  {' ' * (w1 - width(qty))}{qty}  {unit}")
    else:
        lines.append("  没有计数的工作项" + ("(文中有类别关键词,仍算一条工作记录)" if parsed.matched
                                              and not parsed.planned_only and not parsed.mixed_dates else ""))
    if parsed.planned:
        lines.append("  计划中,不计入:" + "、".join(f"{label(i.category)} {_qty(i.quantity)}{i.unit}"
                                                   for i in parsed.planned))
    return lines
