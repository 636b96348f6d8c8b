"""Standard 5-field crontab → APScheduler CronTrigger.

APScheduler's from_crontab numbers weekdays from Monday = 0, so "0 9 * * 1" would fire on
Tuesday. We expand the day-of-week field ourselves into day names, with 0 and 7 meaning Sunday.
"""

from __future__ import annotations

from datetime import tzinfo

from apscheduler.triggers.cron import CronTrigger

_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
_BY_NAME = {n: i for i, n in enumerate(_NAMES)}


class CronError(ValueError):
    pass


def _dow_number(tok: str) -> int:
    tok = tok.strip().lower()
    if tok in _BY_NAME:
        return _BY_NAME[tok]
    if not tok.isdigit() or not 0 <= int(tok) <= 7:
        raise CronError(f"星期字段只能是 0-7 或 mon-sun / day of week must be 0-7 or mon-sun, got {tok!r}")
    return int(tok) % 7


def _expand_dow(field: str) -> str:
    if field == "*":
        return "*"
    days: set[int] = set()
    for part in field.split(","):
        rng, _, step_s = part.partition("/")
        step = 1
        if step_s:
            if not step_s.isdigit() or int(step_s) == 0:
                raise CronError(f"无效的步长 / invalid step {step_s!r}")
            step = int(step_s)
        if rng == "*":
            lo, hi = 0, 6
        elif "-" in rng:
            a, b = rng.split("-", 1)
            lo, hi = _dow_number(a), _dow_number(b)
            if b.strip() == "7":
                hi = 7
            if hi < lo:
                raise CronError(f"无效的范围 / invalid range {rng!r}")
        else:
            lo = hi = _dow_number(rng)
            if step_s:
                hi = 6
        days.update(d % 7 for d in range(lo, hi + 1, step))
    # APScheduler wants Monday-first names; order does not matter for a list.
    return ",".join(_NAMES[d] for d in sorted(days))


def cron_trigger(expr: str, tz: tzinfo) -> CronTrigger:
    fields = expr.split()
    if len(fields) != 5:
        raise CronError(f"需要 5 个字段(分 时 日 月 星期)/ needs 5 fields (min hour day month dow), got {len(fields)}")
    minute, hour, day, month, dow = fields
    try:
        return CronTrigger(minute=minute, hour=hour, day=day, month=month,
                           day_of_week=_expand_dow(dow), timezone=tz)
    except CronError:
        raise
    except ValueError as e:
        raise CronError(str(e)) from e
