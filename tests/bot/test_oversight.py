"""Levels of oversight and the [review] / [ladder] config that names them (bot.oversight,
bot.problem_review, bot.config): who stands above a grid, who checks whose fix, and what an
admin is told when the ladder is written wrong."""

from __future__ import annotations

import pytest

from bot.config_loading import ConfigError, parse_config
from bot.oversight import first_people_from, level_of, people_at
from bot.problem_review import checkers_for

from tests.support.factories import BASE_CONFIG


def cfg(extra: str = ""):
    return parse_config(BASE_CONFIG + extra, name="config.toml", env={})


def ids(people) -> list[str]:
    return [p.userid for p in people]


def test_levels_over_a_grid():
    c = cfg()
    levels = {p.userid: level_of(c, p, "g1") for p in c.people}
    assert levels == {"zhangsan": "grid_leader", "lisi": None, "wangwu": None, "sunqi": None, "zhouba": None,
                      "zhoushuji": "community", "qian": "street", "admin": "admin"}
    assert level_of(c, c.person("zhoushuji"), "g2") is None  # 2号网格 is another community's
    assert ids(people_at(c, "community", "g2")) == []
    assert first_people_from(c, "community", "g2")[0] == "street"
    assert first_people_from(c, "grid_leader", "g1", exclude={"zhangsan"})[0] == "community"


@pytest.mark.parametrize("fixer, level, checkers", [
    ("lisi", "grid_leader", ["zhangsan"]),
    ("zhangsan", "community", ["zhoushuji"]),
    ("zhoushuji", "street", ["qian"]),
    ("qian", "admin", ["admin"]),  # the street leader's own fix: nobody else at the street level
])
def test_default_checkers_by_the_fixers_role(fixer, level, checkers):
    c = cfg()
    found_level, people = checkers_for(c, {"grid": "g1", "reporter": "lisi"}, c.person(fixer))
    assert (found_level, ids(people)) == (level, checkers)


def test_checkers_follow_the_config():
    c = cfg('\n[review]\nmember = "community"\nleader_opened = "street"\n')
    assert ids(checkers_for(c, {"grid": "g1", "reporter": "lisi"}, c.person("wangwu"))[1]) == ["zhoushuji"]
    # A problem a leader registered is checked at least at the street, whoever fixed it.
    assert ids(checkers_for(c, {"grid": "g1", "reporter": "zhoushuji"}, c.person("wangwu"))[1]) == ["qian"]
    assert checkers_for(cfg('\n[review]\nmember = "none"\n'), {"grid": "g1", "reporter": "lisi"},
                        c.person("wangwu")) == ("none", [])


def test_a_bad_level_or_a_ladder_out_of_order_names_line_and_field():
    text = BASE_CONFIG + '\n[review]\nmember = "secretary"\n'
    with pytest.raises(ConfigError) as e:
        parse_config(text, name="config.toml", env={})
    [msg] = [str(p) for p in e.value.problems]
    assert msg.startswith(f"config.toml:{len(text.splitlines())}: review.member:")
    text = BASE_CONFIG + ('\n[ladder]\nproblems = [\n  { after_hours = 24, notify = "community" },\n'
                          '  { after_hours = 0, notify = "grid_leader" },\n]\n')
    with pytest.raises(ConfigError) as e:
        parse_config(text, name="config.toml", env={})
    [msg] = [str(p) for p in e.value.problems]
    assert "ladder.problems" in msg and "after_hours 必须从小到大" in msg
