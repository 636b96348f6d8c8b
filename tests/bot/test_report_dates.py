"""The work date of a report: relative and explicit dates, plans, and messages with two dates."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from bot.report_parser import parse_report
from bot.taxonomy import DEFAULT_CATEGORIES

WED = date(2026, 11, 25)


def parsed(text: str, sent: date = WED):
    return parse_report(text, DEFAULT_CATEGORIES, sent)


@pytest.mark.parametrize("text, days", [
    ("补报 10天前 入户走访5户", 10),  # not yesterday: ten days back, as written
    ("三天前调解纠纷1起", 3),
    ("两天前入户走访独居老人4户", 2),
    ("大前天清理卫生死角2处", 3),
    ("昨晚夜查2小时", 1),
    ("补报 入户走访10户", 1),  # 补报 with no date: yesterday
    ("补报:前天清理卫生死角4处", 2),
])
def test_days_back(text, days):
    p = parsed(text)
    assert p.date_offset == -days and p.work_date == WED - timedelta(days=days) and not p.absolute_date


@pytest.mark.parametrize("sent, text, expected", [
    (WED, "上周五发放倡议书100份", date(2026, 11, 20)),
    (WED, "上周三入户走访7户", date(2026, 11, 18)),
    (WED, "周一巡查4次", date(2026, 11, 23)),
    (WED, "星期天义务劳动2小时", date(2026, 11, 22)),
    (date(2026, 11, 30), "上周五入户走访8户", date(2026, 11, 27)),  # sent on a Monday
    (date(2026, 11, 27), "周五巡查2次", date(2026, 11, 27)),  # today's weekday is today
])
def test_weekdays(sent, text, expected):
    assert parsed(text, sent).work_date == expected


@pytest.mark.parametrize("sent, text, expected", [
    (WED, "11月20日入户走访6户", date(2026, 11, 20)),
    (WED, "11.20 清理小广告8处", date(2026, 11, 20)),
    (WED, "11/23 拆除违建1处", date(2026, 11, 23)),
    (WED, "20号巡查3次", date(2026, 11, 20)),
    (WED, "补报23号:走访独居老人3户", date(2026, 11, 23)),
    (date(2026, 12, 2), "30号巡查3次", date(2026, 11, 30)),  # this month's 30th is weeks ahead
    (date(2027, 1, 2), "12月30日巡查4次", date(2026, 12, 30)),
    (WED, "11月24日(周二)巡查2次", date(2026, 11, 24)),
])
def test_explicit_dates(sent, text, expected):
    p = parsed(text, sent)
    assert p.work_date == expected and p.absolute_date and p.date_offset is None and p.dated
    assert len(p.items) == 1


@pytest.mark.parametrize("text", ["幸福路18号门前清扫垃圾3袋", "走访3号、5号楼住户10户", "3号网格入户走访15户",
                                  "走访5号楼302室住户2户"])
def test_house_and_grid_numbers_are_not_dates(text):
    p = parsed(text)
    assert p.date_offset == 0 and not p.dated


@pytest.mark.parametrize("text", ["昨天走访5户,今天走访3户", "11月20日巡查2次,11月22日巡查3次",
                                  "前天拆除违建1处,昨天清运垃圾2车", "12月1日至3日开展大扫除,清理垃圾20车"])
def test_two_work_dates_leave_no_single_date(text):
    p = parsed(text)
    assert p.mixed_dates and p.date_offset is None and p.items


@pytest.mark.parametrize("text, offset", [
    ("昨天下雨没出去,今天入户走访6户", 0),  # a date word that governs no count
    ("今天清理垃圾20车,昨天的已经报过了", 0),
    ("昨天(11月24日)巡查4次", None),  # the same day twice is one date
    ("周一至周五每天巡查2次", 0),  # a routine, not a day
])
def test_one_work_date_among_several_date_words(text, offset):
    p = parsed(text)
    assert not p.mixed_dates and p.date_offset == offset


@pytest.mark.parametrize("text", ["明天入户走访10户", "后天发放宣传资料300份", "下周一到周五每天巡查2次",
                                  "三天后开展消防演练2场", "本周五入户走访10户", "周五前完成走访20户"])
def test_future_words_make_plans(text):
    p = parsed(text)
    assert p.items == () and p.planned and p.planned_only and p.date_offset == 0
