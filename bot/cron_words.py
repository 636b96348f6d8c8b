"""A crontab expression explained in Chinese: which of the five fields is wrong and why.

bot.crontab builds the trigger (and is the authority on what is valid); this only words the
refusal for the admin, since APScheduler's own message is English ("the last value (25) is
higher than the maximum value (23)").
"""

from __future__ import annotations

from datetime import timezone

from bot.crontab import CronError, cron_trigger


def cron_problem(expr: str) -> str | None:
    """None for a valid expression, else what is wrong with it."""
    try:
        cron_trigger(expr, timezone.utc)  # validity does not depend on the timezone
    except CronError:
        return cron_message(expr)
    return None


def _show(v: str) -> str:
    return f'"{v}"'


_CRON_FIELDS = [("分钟", 0, 59, ()), ("小时", 0, 23, ()), ("日", 1, 31, ()),
                ("月", 1, 12, ("jan", "feb", "mar", "apr", "may", "jun",
                               "jul", "aug", "sep", "oct", "nov", "dec")),
                ("星期", 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat"))]
CRON_FORMAT = "应为 5 段,用空格隔开:分 时 日 月 星期(0 或 7 为周日),如 \"30 8 * * 1-5\" 为周一至周五 8:30"


def _cron_field(text: str, name: str, lo: int, hi: int, names: tuple) -> str | None:
    for part in text.split(","):
        rng, slash, step = part.partition("/")
        if slash and not (step.isdigit() and int(step) > 0):
            return f"{name}的间隔 /{step} 应为正整数"
        if rng == "*":
            continue
        values = []
        for tok in rng.split("-", 1):
            if tok.lower() in names:
                values.append(names.index(tok.lower()) + lo)
            elif tok.isdigit():
                if not lo <= int(tok) <= hi:
                    return f"{name}应在 {lo}–{hi} 之间,这里是 {tok}"
                values.append(int(tok))
            else:
                return f"{name}里的 {_show(tok)} 无法识别,应为数字"
        if len(values) == 2 and values[0] > values[1]:
            return f"{name}的范围 {rng} 前大后小"
    return None


def cron_message(expr: str) -> str:
    head = f"cron 表达式 {_show(expr)} 有误"
    fields = expr.split()
    if len(fields) != 5:
        return f"{head}:{CRON_FORMAT},这里有 {len(fields)} 段"
    for (name, lo, hi, names), text in zip(_CRON_FIELDS, fields):
        why = _cron_field(text, name, lo, hi, names)
        if why:
            return f"{head}:{why}"
    return f"{head},无法识别;{CRON_FORMAT}"
