"""The report parser against the shared examples and the rules of DESIGN.md."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from bot.numbers_zh import chinese_number
from bot.report_parser import (
    Item,
    ParsedReport,
    compile_categories,
    parse_report,
    to_json,
)
from bot.taxonomy import DEFAULT_CATEGORIES, Category

REPO = Path(__file__).resolve().parents[2]
# The shared examples (../shared/examples/reports.jsonl, when it is there) and the project's own,
# which holds a copy of the shared ones and a case or more for every rule of the second edition.
SHARED = REPO.parent / "shared" / "examples" / "reports.jsonl"
OURS = REPO / "tests" / "data" / "reports.jsonl"
SENT = date(2026, 11, 25)  # a Wednesday


def load_examples(path: Path = OURS) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def all_examples() -> list[dict]:
    seen, out = set(), []
    for path in (SHARED, OURS):
        if path.exists():
            for example in load_examples(path):
                if example["text"] not in seen:
                    seen.add(example["text"])
                    out.append(example)
    return out


def items(text: str, categories=DEFAULT_CATEGORIES, sent: date = SENT) -> list[tuple]:
    return [(i.category, i.quantity, i.unit) for i in parse_report(text, categories, sent).items]


def offset(text: str, sent: date = SENT) -> int | None:
    return parse_report(text, DEFAULT_CATEGORIES, sent).date_offset


# --- the examples ------------------------------------------------------------------------


@pytest.mark.parametrize("example", all_examples(), ids=lambda e: e["text"][:40])
def test_example_parses_exactly(example):
    parsed = parse_report(example["text"], DEFAULT_CATEGORIES, SENT)
    got = to_json(parsed)
    assert [[i["category"], i["quantity"], i["unit"]] for i in got["items"]] == example["items"]
    assert got["date_offset"] == example["date_offset"]
    # null: an explicit date, or (second edition) counts under two dates
    assert (parsed.absolute_date or parsed.mixed_dates) is (example["date_offset"] is None)


def test_examples_files_are_all_there():
    assert len(load_examples()) >= 250
    if SHARED.exists():
        assert len(load_examples(SHARED)) >= 44
        ours = {e["text"]: e for e in load_examples()}
        # The project's file keeps a copy of every shared example, with the same answer.
        assert all(ours.get(e["text"]) == e for e in load_examples(SHARED))


def test_example_quantities_keep_their_number_types():
    for example in all_examples():
        got = to_json(parse_report(example["text"], DEFAULT_CATEGORIES, SENT))["items"]
        assert [type(i["quantity"]) for i in got] == [type(q) for _, q, _ in example["items"]]


# --- numbers -----------------------------------------------------------------------------


@pytest.mark.parametrize("numeral, value", [
    ("零", 0), ("一", 1), ("两", 2), ("十", 10), ("十二", 12), ("二十", 20), ("二十五", 25),
    ("一百五十", 150), ("一百五", 150), ("两百", 200), ("三百二", 320), ("一百零五", 105),
    ("一千五", 1500), ("一千零五十", 1050), ("两千", 2000), ("两万", 20000), ("两万三", 23000),
    ("一万五千", 15000), ("一万零五百", 10500), ("十万", 100000), ("十二三", 12), ("两三百", 200),
    ("叁拾", 30),
])
def test_chinese_numerals(numeral, value):
    assert chinese_number(numeral) == value


@pytest.mark.parametrize("text, expected", [
    ("入户走访十二户", [("visit", 12, "户")]),
    ("发放宣传资料两千份", [("publicity", 2000, "份")]),
    ("发放宣传资料一千五份", [("publicity", 1500, "份")]),
    ("走访群众十户", [("visit", 10, "户")]),
    ("清理杂物三车", [("sanitation", 3, "车")]),
    ("清理小广告三十多处", [("ads", 30, "处")]),
    ("入户走访三十来户", [("visit", 30, "户")]),
    ("劝导十几人", [("persuasion", 10, "人")]),
    ("发放倡议书两万份", [("publicity", 20000, "份")]),
    ("百余人参加义务劳动", [("volunteer", 100, "人")]),
    ("清运垃圾一点五吨", [("sanitation", 1.5, "吨")]),
])
def test_chinese_numbers_in_reports(text, expected):
    assert items(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("清理小广告１５处", [("ads", 15, "处")]),
    ("清运垃圾２．５吨", [("sanitation", 2.5, "吨")]),
    ("清理卫生死角　５　处", [("sanitation", 5, "处")]),
    ("入户走访８户，发放宣传资料１００份", [("visit", 8, "户"), ("publicity", 100, "份")]),
])
def test_full_width_digits_punctuation_and_spaces(text, expected):
    assert items(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("巡查河道0.8公里", [("patrol", 0.8, "公里")]),
    ("共清理垃圾约3吨", [("sanitation", 3, "吨")]),
    ("发放宣传单1,500份", [("publicity", 1500, "份")]),
    ("发放宣传单1.5万份", [("publicity", 15000, "份")]),
    ("修剪绿化带300 多平方米", [("greening", 300, "平方米")]),
    ("清除乱贴乱画约两百平米", [("ads", 200, "平方米")]),
    ("修剪草坪绿化120㎡", [("greening", 120, "平方米")]),
    ("巡逻3小时", [("patrol", 3, "小时")]),
    ("巡逻2个小时", [("patrol", 2, "小时")]),
    ("夜间巡逻1个半小时", [("patrol", 1.5, "小时")]),
    ("巡逻半小时", [("patrol", 0.5, "小时")]),
    ("志愿服务25人次", [("volunteer", 25, "人次")]),
    ("清运垃圾3车次", [("sanitation", 3, "车")]),
])
def test_decimals_approximations_and_unit_forms(text, expected):
    assert items(text) == expected


def test_whole_numbers_are_ints_and_fractions_floats():
    got = parse_report("清运垃圾2.0吨,巡查河道0.8公里", DEFAULT_CATEGORIES, SENT).items
    assert got == (Item("sanitation", 2, "吨"), Item("patrol", 0.8, "公里"))
    assert type(got[0].quantity) is int and type(got[1].quantity) is float


# --- clauses, list markers and what is not a quantity ----------------------------------


@pytest.mark.parametrize("text", [
    "【第五网格】今日工作:1.入户走访20户 2.发放宣传资料150份 3.巡查1次",
    "今日工作:\n1、入户走访20户;\n2、发放宣传资料150份;\n3、巡查1次。",
    "(1)入户走访20户(2)发放宣传资料150份(3)巡查1次",
    "（1）入户走访20户（2）发放宣传资料150份（3）巡查1次",
    "①入户走访20户②发放宣传资料150份③巡查1次",
    "一、入户走访20户 二、发放宣传资料150份 三、巡查1次",
    "1)入户走访20户 2)发放宣传资料150份 3)巡查1次",
    "入户走访20户 发放宣传资料150份 巡查1次",
    "入户走访 20户 发放宣传资料 150 份 巡查 1 次",
    "入户走访20户2.发放宣传资料150份3.巡查1次",
])
def test_list_markers_and_separators(text):
    assert items(text) == [("visit", 20, "户"), ("publicity", 150, "份"), ("patrol", 1, "次")]


@pytest.mark.parametrize("text, expected", [
    ("3号网格:入户走访5户", [("visit", 5, "户")]),
    ("第五网格入户走访5户", [("visit", 5, "户")]),
    ("2号网格:入户走访15户,劝导车辆12辆", [("visit", 15, "户"), ("persuasion", 12, "辆")]),
    ("11月20日巡查3次", [("patrol", 3, "次")]),
    ("2026年11月20日巡查3次", [("patrol", 3, "次")]),
    ("11.20 巡查3次", [("patrol", 3, "次")]),
    ("17:30巡逻2小时", [("patrol", 2, "小时")]),
    ("17：30 巡逻2小时", [("patrol", 2, "小时")]),
    ("上午9时入户走访5户", [("visit", 5, "户")]),
    ("晚上8点开始巡逻,巡逻2小时", [("patrol", 2, "小时")]),
    ("第3次巡查,发现小广告4处", [("ads", 4, "处")]),
    ("幸福路3号门前清扫垃圾2袋", [("sanitation", 2, "袋")]),
    ("幸福小区3栋2单元楼道堆放杂物", []),
    ("清扫楼道3栋", [("sanitation", 3, "栋")]),
    ("走访80岁以上老人12户", [("visit", 12, "户")]),
    ("整改 #P12 已清理垃圾", []),
])
def test_grid_names_dates_times_addresses_are_not_quantities(text, expected):
    assert items(text) == expected


@pytest.mark.parametrize("text", ["和居民一起清理垃圾", "和志愿者一起,清扫楼道", "统一张贴海报",
                                  "和大家一块打扫楼道", "发现有人四处张贴小广告", "建立一户一档走访台账",
                                  "走进千家万户宣传", "本周一共巡查", "每周三次巡查"])
def test_words_made_of_numeral_and_unit_are_not_counts(text):
    assert items(text) == []


@pytest.mark.parametrize("text, expected", [
    ("调解邻里纠纷一起", [("mediation", 1, "起")]),
    ("调解一起邻里纠纷", [("mediation", 1, "起")]),
    ("劝导不文明行为一起", [("persuasion", 1, "起")]),
    ("和居民一起清理小广告12处", [("ads", 12, "处")]),
    ("本周一共巡查5次", [("patrol", 5, "次")]),
    ("更换一块展板", [("publicity", 1, "块")]),
])
def test_numeral_and_unit_that_are_counts(text, expected):
    assert items(text) == expected


# --- categories: before, after, heading ---------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("清理了15处小广告", [("ads", 15, "处")]),
    ("发放200份宣传资料", [("publicity", 200, "份")]),
    ("出动人员8人次开展志愿服务", [("volunteer", 8, "人次")]),
    ("出动人员8人次 开展志愿服务", [("volunteer", 8, "人次")]),
    ("组织15名志愿者开展义务劳动", [("volunteer", 15, "名")]),
    ("清理牛皮癣10处、涂鸦2处", [("ads", 10, "处"), ("ads", 2, "处")]),
    ("张贴海报20张、发放倡议书100份", [("publicity", 20, "张"), ("publicity", 100, "份")]),
    ("今天清理小广告15处,入户走访十二户", [("ads", 15, "处"), ("visit", 12, "户")]),
    ("清理小广告15处 入户走访12户", [("ads", 15, "处"), ("visit", 12, "户")]),
    ("清理小广告15处入户走访12户", [("ads", 15, "处"), ("visit", 12, "户")]),
    ("整治共享单车乱停放30辆", [("order", 30, "辆")]),
    ("劝导不文明行为5起", [("persuasion", 5, "起")]),
    ("入户走访、登记30户", [("visit", 30, "户")]),
    ("清理小广告、张贴海报20张", [("publicity", 20, "张")]),
    ("出动8人、清理小广告15处", [("ads", 15, "处")]),
    # No "same as the previous item" step: the 30平方米 names no category of its own.
    ("拆除违章搭建2处约30平方米", [("demolition", 2, "处")]),
])
def test_category_from_the_words_around_the_number(text, expected):
    assert items(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("安全隐患排查:发现问题2处", [("hazard", 2, "处")]),
    ("消防隐患排查:发现问题1处,已整改1处", [("hazard", 1, "处"), ("hazard", 1, "处")]),
    ("消防检查:\n1.检查商铺12家\n2.发现问题3处", [("hazard", 12, "家"), ("hazard", 3, "处")]),
    ("【安全隐患排查】发现问题2处", [("hazard", 2, "处")]),
    ("入户走访:发放宣传资料30份", [("publicity", 30, "份")]),  # the clause's own words win
    ("2号网格:发现问题2处", []),  # a heading that names no category gives none
])
def test_heading_before_a_colon(text, expected):
    assert items(text) == expected


def test_priority_order_decides_between_categories_in_one_stretch():
    assert items("巡查消防隐患5处") == [("hazard", 5, "处")]  # hazard before patrol
    assert items("清理楼道小广告10处") == [("ads", 10, "处")]  # ads before sanitation
    reordered = tuple(c for c in DEFAULT_CATEGORIES if c.id == "patrol") + tuple(
        c for c in DEFAULT_CATEGORIES if c.id != "patrol")
    assert items("巡查消防隐患5处", reordered) == [("patrol", 5, "处")]


def test_custom_category_added_by_an_admin_is_picked_up():
    charging = Category("charging", "飞线充电整治", ("飞线充电", "电动车充电"))
    categories = DEFAULT_CATEGORIES + (charging,)
    assert items("排查飞线充电5处", categories) == [("charging", 5, "处")]
    assert items("排查飞线充电5处") == []
    assert parse_report("排查飞线充电", categories, SENT).matched
    assert not parse_report("排查飞线充电", DEFAULT_CATEGORIES, SENT).matched
    # Placed first, a custom category outranks the defaults.
    first = (Category("fire", "消防专项", ("灭火器",)),) + DEFAULT_CATEGORIES
    assert items("检查灭火器20个", first) == [("fire", 20, "个")]


def test_full_width_keywords_are_normalised_too():
    odd = (Category("sorting", "垃圾分类", ("ＡＢ分类",)),)
    assert items("检查AB分类20户", odd) == [("sorting", 20, "户")]


# --- chit-chat and matched -----------------------------------------------------------


@pytest.mark.parametrize("text", ["收到", "明天几点集合?", "好的,3点到", "辛苦了,今天共20人参加", "", "  "])
def test_chit_chat_yields_nothing(text):
    parsed = parse_report(text, DEFAULT_CATEGORIES, SENT)
    assert parsed.items == () and parsed.matched is False and parsed.date_offset == 0


def test_a_keyword_without_a_number_is_still_a_report():
    parsed = parse_report("今天入户走访了独居老人", DEFAULT_CATEGORIES, SENT)
    assert parsed.matched and parsed.items == ()


def test_a_clause_without_a_number_adds_no_item():
    assert items("巡逻,入户走访3户") == [("visit", 3, "户")]


# --- work date ---------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("今天巡查4次", 0), ("今日巡查4次", 0), ("巡查4次", 0), ("昨天巡查4次", -1), ("昨日巡查4次", -1),
    ("昨晚巡逻2小时", -1), ("前天巡查4次", -2), ("前日巡查4次", -2), ("大前天巡查4次", -3),
    ("明天巡查4次", 0), ("目前日常巡查4次", 0),
    ("今天补报昨天的:入户走访5户", -1), ("昨天下雨,今天入户走访5户", 0),
    ("周一巡查4次", -2), ("上周五巡查4次", -5), ("每周一巡查4次", 0),
])
def test_relative_work_dates(text, expected):
    parsed = parse_report(text, DEFAULT_CATEGORIES, SENT)
    assert parsed.date_offset == expected and not parsed.absolute_date
    assert parsed.work_date == date.fromordinal(SENT.toordinal() + expected)


@pytest.mark.parametrize("text, sent, expected", [
    ("11月20日巡查4次", SENT, date(2026, 11, 20)),
    ("11月20号巡查4次", SENT, date(2026, 11, 20)),
    ("十一月二十日巡查4次", SENT, date(2026, 11, 20)),
    ("11月3日 清理小广告4处", SENT, date(2026, 11, 3)),
    ("2025年11月20日巡查4次", SENT, date(2025, 11, 20)),
    ("2026-11-20 巡查4次", SENT, date(2026, 11, 20)),
    ("11.20 巡查4次", SENT, date(2026, 11, 20)),
    ("昨天(11月23日)巡查4次", SENT, date(2026, 11, 23)),
    ("12月30日巡查4次", date(2027, 1, 2), date(2026, 12, 30)),  # year rollover in January
    ("11月27日巡查4次", SENT, date(2026, 11, 27)),  # a couple of days ahead stays this year
])
def test_absolute_work_dates(text, sent, expected):
    parsed = parse_report(text, DEFAULT_CATEGORIES, sent)
    assert parsed.absolute_date and parsed.date_offset is None
    assert parsed.work_date == expected
    assert len(parsed.items) == 1 and parsed.items[0].quantity == 4


def test_impossible_dates_are_ignored():
    parsed = parse_report("2月30日巡查4次", DEFAULT_CATEGORIES, SENT)
    assert not parsed.absolute_date and parsed.date_offset == 0
    assert parsed.items == (Item("patrol", 4, "次"),)


# --- API -----------------------------------------------------------------------------------


def test_to_json_shape():
    parsed = parse_report("昨天入户走访8户,发放宣传资料100份", DEFAULT_CATEGORIES, SENT)
    assert to_json(parsed) == {
        "items": [{"category": "visit", "quantity": 8, "unit": "户"},
                  {"category": "publicity", "quantity": 100, "unit": "份"}],
        "date_offset": -1,
    }


def test_parsed_report_field_order_is_stable():
    # reports.py rebuilds a ParsedReport positionally.
    parsed = ParsedReport((), SENT, False, True, -1)
    assert (parsed.work_date, parsed.absolute_date, parsed.matched, parsed.date_offset) == (SENT, False, True, -1)


def test_compiled_parser_is_cached_and_accepts_any_sequence():
    assert compile_categories(list(DEFAULT_CATEGORIES)) is compile_categories(tuple(DEFAULT_CATEGORIES))
    parser = compile_categories(DEFAULT_CATEGORIES)
    assert parser.parse("清理小广告12处", SENT) == parse_report("清理小广告12处", list(DEFAULT_CATEGORIES), SENT)


def test_parsing_is_repeatable():
    text = "【第五网格】今日工作:1.入户走访20户 2.发放宣传资料150份"
    assert parse_report(text, DEFAULT_CATEGORIES, SENT) == parse_report(text, DEFAULT_CATEGORIES, SENT)
