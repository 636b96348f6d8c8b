"""China's official workday calendar (with 调休 make-up days), config overrides and campaigns."""

from __future__ import annotations

from datetime import date

from loguru import logger

from bot.config import CalendarSection

_warned_years: set[int] = set()
# Answers of the official calendar, by date: it validates each date against its tables, and the
# daily jobs ask a thousand grids' people about the same few weeks (a district's escalation
# spent a third of its time there). The Mon-Fri fallback is not kept: it warns once a year.
_official_days: dict[date, bool] = {}


def _official(d: date) -> bool:
    known = _official_days.get(d)
    if known is not None:
        return known
    try:
        import chinese_calendar
        known = _official_days[d] = chinese_calendar.is_workday(d)
        return known
    except (NotImplementedError, ImportError):
        if d.year not in _warned_years:
            _warned_years.add(d.year)
            logger.warning("法定节假日数据未覆盖 {} 年,按周一至周五计算 / no official calendar for {}, using Mon-Fri",
                           d.year, d.year)
        return d.weekday() < 5


def is_workday(d: date, cal: CalendarSection) -> bool:
    if any(c.start <= d <= c.end for c in cal.campaigns):
        return True
    if d in cal.extra_holidays:
        return False
    if d in cal.extra_workdays:
        return True
    return _official(d)
