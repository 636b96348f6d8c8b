"""The config's campaign-month parts: [scoring] weights, [monthly] policy, monthly targets, and
the monthly bulletin's schedule in the example; a mistake names its file, line and field."""

from pathlib import Path

import pytest

from bot.config_loading import ConfigError, load_config, parse_config

from tests.support.factories import BASE_CONFIG

REPO = Path(__file__).resolve().parents[2]


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as e:
        parse_config(text, name="config.toml", env={})
    return [str(p) for p in e.value.problems]


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


def test_the_example_sends_the_monthly_bulletin_and_documents_the_weights():
    cfg = load_config(REPO / "config.example.toml")
    [monthly] = [s for s in cfg.schedules if s.job == "monthly_bulletin"]
    assert monthly.cron == "0 9 1-10 * *"  # checked daily; sent on the first workday only
    assert cfg.scoring.model_dump() == {"checkin_day": 1, "report": 1, "problem_found": 2,
                                        "problem_closed_on_time": 3, "fix_rejected": -1, "overdue_day": -1,
                                        "bad_photo": -3, "wrong_count": -2}
    assert cfg.grid("g1").monthly_targets == {"visit": 200, "ads": 160}
    assert cfg.monthly.black_list_people is False


def test_a_monthly_target_for_an_unknown_category_names_its_line():
    text = BASE_CONFIG.replace("households = 400", "households = 400\nmonthly_targets = { vistt = 200 }")
    [msg] = problems_of(text)
    assert msg.startswith(f"config.toml:{line_of(text, 'vistt')}: 网格 g1(1号网格)的 monthly_targets.vistt:"
                          '类别 "vistt" 不存在,是否应为 visit?')


def test_scoring_and_monthly_values_are_checked():
    text = BASE_CONFIG + "\n[scoring]\nreport = 500\n\n[monthly]\ncoverage_category = \"homes\"\nred_list = -1\n"
    msgs = problems_of(text)
    assert any(m.startswith(f"config.toml:{line_of(text, 'report = 500')}: scoring.report:") for m in msgs)
    assert any(m.startswith(f"config.toml:{line_of(text, 'red_list')}: monthly.red_list:") for m in msgs)
    # A taxonomy without 入户走访 is fine as long as nobody names a coverage category for it.
    text = BASE_CONFIG + "\n[monthly]\ncoverage_category = \"homes\"\n"
    [msg] = problems_of(text)
    assert msg.startswith(f"config.toml:{line_of(text, 'homes')}: monthly.coverage_category:") and "不存在" in msg
