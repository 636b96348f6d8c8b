"""Calendar months: names, bounds, workdays with holidays and campaign periods, and the records
of a month when an ISO week straddles two months."""

from __future__ import annotations

from datetime import date

import pytest

from bot.config import CalendarSection, Campaign
from bot.config_loading import parse_config
from bot.months import (month_bounds, month_label, month_workdays, months_of_year, parse_month, previous_month,
                        read_month)

from tests.support.factories import BASE_CONFIG
from tests.support.month_october import cfg, config_path, store  # noqa: F401  (shared fixtures)


def test_months_are_named_and_bounded():
    assert parse_month("2026-1") == "2026-01"
    assert month_bounds("2026-10") == (date(2026, 10, 1), date(2026, 10, 31))
    assert month_bounds("2028-02") == (date(2028, 2, 1), date(2028, 2, 29))  # a leap year
    assert month_bounds("2026-12") == (date(2026, 12, 1), date(2026, 12, 31))
    assert previous_month("2027-01") == "2026-12"
    assert months_of_year("2026-03") == ["2026-01", "2026-02", "2026-03"]
    assert month_label("2026-11") == "2026年11月"
    for bad in ("2026-13", "2026/11", "11月", ""):
        with pytest.raises(ValueError, match="月份的格式应为 YYYY-MM"):
            parse_month(bad)


def test_october_workdays_follow_national_day_and_its_make_up_saturday():
    """10-01..07 off, Saturday 10-10 worked: 8, 9, 10, 12–16, 19–23, 26–30 = 18 days; the campaign
    10-26..11-01 adds Saturday 10-31 (19), and November gains Sunday 11-01."""
    cfg = parse_config(BASE_CONFIG)
    days = month_workdays(cfg, "2026-10")
    assert len(days) == 18 and days[0] == date(2026, 10, 8) and date(2026, 10, 10) in days
    campaign = CalendarSection(campaigns=[Campaign(name="迎接省级复检", start=date(2026, 10, 26), end=date(2026, 11, 1))])
    with_campaign = cfg.model_copy(update={"calendar": campaign})
    assert len(month_workdays(with_campaign, "2026-10")) == 19
    assert month_workdays(with_campaign, "2026-11")[0] == date(2026, 11, 1)
    assert len(month_workdays(cfg, "2026-09")) == 22  # Mid-Autumn 9-25 off, Sunday 9-20 worked
    assert len(month_workdays(cfg, "2026-10", through=date(2026, 10, 12))) == 4


async def test_a_week_that_straddles_two_months_splits_between_them(cfg, store):
    # 2026-W44 runs Mon 10-26 .. Sun 11-01: a check-in on 11-01 belongs to November.
    from tests.support.month_october import checkin
    await store.put("checkins", checkin("C900", "lisi", date(2026, 11, 1)), shard="2026-W44")
    october, november = read_month(store, "2026-10"), read_month(store, "2026-11")
    assert "C900" not in {c["id"] for c in october.checkins}
    assert [c["id"] for c in november.checkins] == ["C900"]
    assert {r["id"] for r in october.reports} == {f"R{i}" for i in range(1, 11)}
