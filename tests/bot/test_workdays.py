"""China's workday calendar: 调休, config overrides, campaigns, and the fallback."""

from __future__ import annotations

from datetime import date

import pytest
from loguru import logger

from bot import workdays
from bot.config import CalendarSection, Campaign
from bot.workdays import is_workday

PLAIN = CalendarSection()


@pytest.mark.parametrize("day, expected", [
    (date(2026, 11, 25), True),  # an ordinary Wednesday
    (date(2026, 11, 29), False),  # an ordinary Sunday
    (date(2026, 10, 1), False),  # National Day
    (date(2026, 10, 3), False),  # National Day holiday, a Saturday
    (date(2026, 10, 7), False),  # last day of the holiday, a Wednesday
    (date(2026, 10, 10), True),  # make-up workday (调休), a Saturday
    (date(2026, 9, 20), True),  # make-up workday, a Sunday
    (date(2026, 2, 17), False),  # Spring Festival
])
def test_official_calendar(day, expected):
    assert is_workday(day, PLAIN) is expected


def test_config_overrides():
    cal = CalendarSection(extra_workdays=[date(2026, 11, 29)], extra_holidays=[date(2026, 11, 25)])
    assert is_workday(date(2026, 11, 29), cal) is True
    assert is_workday(date(2026, 11, 25), cal) is False
    assert is_workday(date(2026, 11, 26), cal) is True


def test_campaign_makes_every_day_a_workday():
    cal = CalendarSection(campaigns=[Campaign(name="迎接省级复检", start=date(2026, 10, 1), end=date(2026, 10, 4))],
                          extra_holidays=[date(2026, 10, 2)])
    assert all(is_workday(date(2026, 10, d), cal) for d in (1, 2, 3, 4))
    assert is_workday(date(2026, 10, 5), cal) is False


def test_fallback_mon_fri_with_one_warning(monkeypatch):
    monkeypatch.setattr(workdays, "_warned_years", set())
    logs: list[str] = []
    sink = logger.add(lambda m: logs.append(str(m)), level="WARNING")
    try:
        # 2099 is beyond any calendar data: Monday to Friday.
        week = [is_workday(date(2099, 3, d), PLAIN) for d in range(2, 9)]  # Mon 2 .. Sun 8
        assert week == [True, True, True, True, True, False, False]
        cal = CalendarSection(extra_holidays=[date(2099, 3, 2)], extra_workdays=[date(2099, 3, 7)])
        assert is_workday(date(2099, 3, 2), cal) is False
        assert is_workday(date(2099, 3, 7), cal) is True
    finally:
        logger.remove(sink)
    assert len([line for line in logs if "2099" in line]) == 1


def test_the_official_calendar_is_asked_once_a_date(monkeypatch):
    # The daily jobs ask about the same few weeks for every person of a thousand grids.
    import chinese_calendar
    asked: list[date] = []
    real = chinese_calendar.is_workday
    monkeypatch.setattr(chinese_calendar, "is_workday", lambda d: asked.append(d) or real(d))
    monkeypatch.setattr(workdays, "_official_days", {})
    days = [date(2026, 10, d) for d in range(1, 15)]
    first = [is_workday(d, PLAIN) for d in days]
    assert all([is_workday(d, PLAIN) for d in days] == first for _ in range(50))
    assert sorted(asked) == days
    assert first[:7] == [False] * 7 and first[7:9] == [True, True]  # 国庆 holidays, then work
