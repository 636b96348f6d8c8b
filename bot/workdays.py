"""China's official workday calendar (with 调休 make-up days), config overrides and campaigns."""

from __future__ import annotations

from datetime import date

from loguru import logger

from bot.config import CalendarSection

_warned_years: set[int] = set()


def _official(d: date) -> bool:
    try:
        import chinese_calendar
        return chinese_calendar.is_workday(d)
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
