"""Admin-extensible vocabulary: extra units and synonyms from the config, Traditional keywords,
the parser found again per loaded config, and check-config's warnings about keywords."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import pytest

from bot.cli import cmd_check_config
from bot.config_loading import ConfigError, load_config
from bot.report_parser import compile_categories, parse_report
from bot.report_text import prepare, to_simplified
from bot.report_vocab import DEFAULT_VOCABULARY, build_vocabulary, vocabulary_warnings
from bot.taxonomy import DEFAULT_CATEGORIES, Category

from tests.support.factories import write_config

SENT = date(2026, 11, 25)
REPO = Path(__file__).resolve().parents[2]


def items(text: str, vocab) -> list[tuple]:
    return [(i.category, i.quantity, i.unit) for i in parse_report(text, vocab, SENT).items]


# --- Traditional input ------------------------------------------------------------------


def test_simplified_text_and_keywords_pass_the_converter_unchanged():
    texts = [json.loads(line)["text"] for line in (REPO / "tests" / "data" / "reports.jsonl")
             .read_text(encoding="utf-8").splitlines() if line.strip()]
    simplified = [t for t in texts if to_simplified(t) == t]
    assert len(simplified) > 240  # all but the Traditional examples
    for cat in DEFAULT_CATEGORIES:
        assert all(to_simplified(k) == k for k in cat.keywords) and to_simplified(cat.label) == cat.label


def test_traditional_text_is_read_in_simplified_form_and_units_come_out_simplified():
    p = prepare("清理小廣告15處,入戶走訪十二戶,發放宣傳資料兩百份")
    assert p.text == "清理小广告15处,入户走访十二户,发放宣传资料两百份"
    assert items("清運垃圾3車約2噸,張貼海報5張", DEFAULT_CATEGORIES) == [("sanitation", 3, "车"),
                                                                   ("publicity", 5, "张")]


def test_an_admins_traditional_keyword_still_matches():
    vocab = build_vocabulary(DEFAULT_CATEGORIES + (Category("charging", "飛線充電整治", ("飛線充電",)),))
    assert items("排查飞线充电5处", vocab) == [("charging", 5, "处")]
    assert items("排查飛線充電5處", vocab) == [("charging", 5, "处")]


# --- extra units and synonyms --------------------------------------------------------------


def test_extra_units_count_only_when_an_admin_adds_them():
    assert items("慰问老党员6位", DEFAULT_VOCABULARY) == []
    assert items("清运渣土5方", DEFAULT_VOCABULARY) == []
    vocab = build_vocabulary(DEFAULT_CATEGORIES, ["位", "方"])
    assert items("慰问老党员6位", vocab) == [("visit", 6, "位")]
    assert items("清运渣土5方", vocab) == [("sanitation", 5, "方")]
    assert items("从多方面做好宣传3次", vocab) == [("publicity", 3, "次")]  # 方面 is no unit


def test_a_unit_synonym_counts_in_its_standard_unit_and_a_word_synonym_in_its_category():
    vocab = build_vocabulary(DEFAULT_CATEGORIES, {"方": "方"}, {"立方": "方", "人头": "人", "牛皮藓": "牛皮癣"})
    assert items("清运渣土5立方", vocab) == [("sanitation", 5, "方")]
    assert items("义务劳动12人头", vocab) == [("volunteer", 12, "人")]
    assert items("清理牛皮藓8处", vocab) == [("ads", 8, "处")]
    assert items("清理牛皮藓8处", DEFAULT_VOCABULARY) == []


def test_the_config_builds_one_vocabulary_per_loaded_file(tmp_path):
    cfg = load_config(write_config(tmp_path, '\n[parsing]\nextra_units = ["位"]\nsynonyms = { "立方" = "方" }\n'))
    vocab = cfg.report_vocabulary
    assert vocab is cfg.report_vocabulary and compile_categories(vocab) is compile_categories(vocab)
    assert vocab.units["位"] == "位" and "方" not in vocab.units
    assert items("慰问老党员6位", vocab) == [("visit", 6, "位")]
    again = load_config(write_config(tmp_path))  # the file edited back: a new config, a new parser
    assert again.report_vocabulary is not vocab
    assert items("慰问老党员6位", again.report_vocabulary) == []


@pytest.mark.parametrize("section, field", [
    ('extra_units = [""]', "parsing.extra_units"),
    ('extra_units = ["3位"]', "parsing.extra_units"),
    ('synonyms = { "立方" = "" }', "parsing.synonyms"),
])
def test_a_bad_vocabulary_is_refused_with_its_line(tmp_path, section, field):
    path = write_config(tmp_path, f"\n[parsing]\n{section}\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    text = str(e.value)
    assert field in text and f"config.toml:{len(path.read_text().splitlines())}" in text


# --- check-config warnings -------------------------------------------------------------------


def test_the_default_taxonomy_has_nothing_to_warn_about():
    assert vocabulary_warnings(DEFAULT_VOCABULARY) == []


def test_a_keyword_that_an_earlier_category_always_takes_is_warned_about():
    sorting = Category("sorting", "垃圾分类", ("垃圾分类", "分类投放"))
    warnings = vocabulary_warnings(build_vocabulary(DEFAULT_CATEGORIES + (sorting,)))
    assert len(warnings) == 1
    assert "“垃圾分类”包含“环境卫生”的关键词“垃圾”" in warnings[0] and "移到“环境卫生”前面" in warnings[0]
    # And it is true: the report goes to sanitation.
    assert items("督导垃圾分类20户", build_vocabulary(DEFAULT_CATEGORIES + (sorting,)))[0][0] == "sanitation"
    # Placed first, the longer keyword wins and nothing is warned about.
    first = build_vocabulary((sorting,) + DEFAULT_CATEGORIES)
    assert vocabulary_warnings(first) == [] and items("督导垃圾分类20户", first)[0][0] == "sorting"


def test_a_keyword_in_two_categories_and_a_synonym_that_changes_nothing_are_warned_about():
    twice = Category("night", "夜间巡逻", ("巡逻",))
    vocab = build_vocabulary(DEFAULT_CATEGORIES + (twice,), (), {"哈哈": "嘿嘿"})
    warnings = vocabulary_warnings(vocab)
    assert any("“巡逻”同时属于“巡查巡逻”和“夜间巡逻”" in w for w in warnings)
    assert any("同义词“哈哈”" in w for w in warnings)


CATEGORIES = """
[[categories]]
id = "sanitation"
label = "环境卫生"
keywords = ["垃圾", "清扫"]

[[categories]]
id = "sorting"
label = "垃圾分类"
keywords = ["垃圾分类"]
"""


def test_check_config_prints_the_warning_and_still_passes(tmp_path, capsys):
    path = write_config(tmp_path, CATEGORIES)
    assert cmd_check_config(SimpleNamespace(path=str(path), config=None)) == 0
    out = capsys.readouterr().out
    assert "配置正确" in out
    [line] = [line for line in out.splitlines() if line.startswith("提醒 / warning:")]
    assert str(path) in line and "“垃圾分类”的关键词“垃圾分类”包含“环境卫生”的关键词“垃圾”" in line
