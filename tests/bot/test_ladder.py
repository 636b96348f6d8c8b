"""Workday hours, the ladder's clock (bot.ladder.WorkHours): rest days do not count, make-up
workdays and campaign days do."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.config import CalendarSection, Campaign
from bot.ladder import WorkHours

TZ = ZoneInfo("Asia/Shanghai")


def ts(*args) -> float:
    return datetime(*args, tzinfo=TZ).timestamp()


def hours(cal: CalendarSection, a: tuple, b: tuple) -> float:
    return WorkHours(cal, TZ).between(ts(*a), ts(*b)) / 3600


@pytest.mark.parametrize("a, b, expected", [
    ((2026, 11, 25, 9, 30), (2026, 11, 25, 10, 0), 0.5),  # within a workday
    ((2026, 11, 27, 9, 30), (2026, 11, 30, 9, 30), 24.0),  # Friday to Monday: the weekend is skipped
    ((2026, 11, 28, 10, 0), (2026, 11, 29, 22, 0), 0.0),  # all of it on the weekend
    ((2026, 9, 30, 10, 0), (2026, 10, 8, 10, 0), 24.0),  # across the National Day holiday
    ((2026, 10, 9, 10, 0), (2026, 10, 10, 10, 0), 24.0),  # Saturday 10-10 is a make-up workday (调休)
    ((2026, 11, 30, 9, 0), (2026, 11, 27, 9, 0), 0.0),  # backwards: nothing
])
def test_workday_hours(a, b, expected):
    assert hours(CalendarSection(), a, b) == expected


def test_campaign_days_count_and_extra_holidays_do_not():
    cal = CalendarSection(campaigns=[Campaign(name="迎检", start=date(2026, 11, 28), end=date(2026, 11, 29))],
                          extra_holidays=[date(2026, 11, 30)])
    assert hours(cal, (2026, 11, 27, 9, 30), (2026, 11, 28, 9, 30)) == 24.0
    assert hours(cal, (2026, 11, 29, 12, 0), (2026, 12, 1, 12, 0)) == 24.0  # Sunday noon, Monday off


def test_one_clock_answers_any_span_asked_in_any_order():
    clock = WorkHours(CalendarSection(), TZ)
    start = ts(2026, 1, 5, 9, 0)  # a Monday
    assert clock.between(start, start + 3600) == 3600
    # A year later, then back: the table widens instead of answering wrong.
    a_year = clock.between(start, ts(2027, 1, 4, 9, 0)) / 3600
    assert 240 * 24 <= a_year <= 255 * 24
    assert clock.between(ts(2025, 12, 29, 9, 0), start) / 3600 == 24 * 4  # 12-29…01-02 less New Year's Day
    assert clock.between(start, start + timedelta(days=7).total_seconds()) / 3600 == 120
