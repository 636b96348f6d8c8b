"""Config validation: a good file loads; every bad one names file, line and field."""

import subprocess
import sys
from pathlib import Path

import pytest

from bot.config_loading import ConfigError, load_config, locate_lines, parse_config

from tests.support.factories import BASE_CONFIG, write_config

REPO = Path(__file__).resolve().parents[2]


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as e:
        parse_config(text, name="config.toml", env={})
    return [str(p) for p in e.value.problems]


def line_of(text: str, needle: str, nth: int = 1) -> int:
    seen = 0
    for n, line in enumerate(text.splitlines(), 1):
        if needle in line:
            seen += 1
            if seen == nth:
                return n
    raise AssertionError(needle)


def test_example_config_is_valid():
    cfg = load_config(REPO / "config.example.toml")
    assert len(cfg.grids) == 5
    assert len({g.community for g in cfg.grids}) == 2
    assert len(cfg.people) >= 20
    assert [c.id for c in cfg.category_list][:3] == ["ads", "demolition", "hazard"]
    assert {s.job for s in cfg.schedules} >= {"daily_reminder", "checkin_nudge", "weekly_tally", "weekly_digest"}


def test_data_dir_resolves_against_config_folder(tmp_path):
    cfg = load_config(write_config(tmp_path))
    assert cfg.data_path == tmp_path / "data"


def test_invalid_cron_names_line_and_field():
    text = BASE_CONFIG + '\n[[schedules]]\nname = "a"\njob = "weekly_tally"\ncron = "0 9 * * 1"\n' \
        '\n[[schedules]]\nname = "b"\njob = "weekly_tally"\ncron = "0 25 * * 1"\n'
    [msg] = problems_of(text)
    n = line_of(text, "0 25 * * 1")
    assert msg.startswith(f"config.toml:{n}: schedules[1].cron:")
    assert "cron" in msg


def test_cron_day_of_week_eight_is_refused():
    text = BASE_CONFIG + '\n[[schedules]]\nname = "a"\njob = "weekly_tally"\ncron = "0 9 * * 8"\n'
    [msg] = problems_of(text)
    assert "schedules[0].cron" in msg


def test_unknown_grid_reference():
    text = BASE_CONFIG + '\n[[people]]\nuserid = "x"\nname = "某人"\nrole = "member"\ngrid = "g9"\n'
    [msg] = problems_of(text)
    n = line_of(text, 'grid = "g9"')
    assert msg.startswith(f"config.toml:{n}: people[8].grid:")
    assert "g9" in msg and "网格不存在" in msg


def test_duplicate_ids():
    text = BASE_CONFIG + '\n[[grids]]\nid = "g1"\nname = "重复网格"\n'
    [msg] = problems_of(text)
    assert "grids[2].id" in msg and "重复" in msg


def test_wrong_type_and_unknown_key():
    text = BASE_CONFIG.replace("port = 0", 'port = "eighty"').replace('name = "1号网格"', 'name = "1号网格"\nhousholds = 3')
    msgs = problems_of(text)
    assert any(m.startswith(f"config.toml:{line_of(text, 'port = ')}: server.port: 类型错误") for m in msgs)
    assert any("grids[0].housholds" in m and "未知字段" in m for m in msgs)


def test_toml_syntax_error_has_line():
    text = BASE_CONFIG + "\n[[people]\nuserid = 'x'\n"
    [msg] = problems_of(text)
    assert msg.startswith(f"config.toml:{len(BASE_CONFIG.splitlines()) + 2}:")
    assert "TOML" in msg


def test_bad_aes_key():
    text = BASE_CONFIG.replace('encoding_aes_key = "', 'encoding_aes_key = "short')
    msgs = problems_of(text)
    assert any("wecom.encoding_aes_key" in m and "43" in m for m in msgs)


def test_member_without_grid():
    text = BASE_CONFIG + '\n[[people]]\nuserid = "x"\nname = "某人"\nrole = "member"\n'
    [msg] = problems_of(text)
    assert "people[8].grid" in msg


def test_secrets_from_environment_override_file():
    cfg = parse_config(BASE_CONFIG, env={"GRIDBOT_WECOM_SECRET": "from-env-secret"})
    assert cfg.wecom.secret.get_secret_value() == "from-env-secret"
    assert "from-env-secret" not in repr(cfg)


def test_locate_lines_nested_arrays():
    text = "[a]\nx = 1\n[[b]]\ny = 2\n[[b]]\ny = 3\n[b.c]\nz = 4\n"
    lines = locate_lines(text)
    assert lines[("a", "x")] == 2
    assert lines[("b", 1, "y")] == 6
    assert lines[("b", 1, "c", "z")] == 8


def run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], capture_output=True, text=True, cwd=REPO)


def test_check_config_command_exit_codes(tmp_path):
    ok = run_cli("check-config", str(REPO / "config.example.toml"))
    assert ok.returncode == 0, ok.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text(BASE_CONFIG + '\n[[schedules]]\nname = "a"\njob = "nightly"\ncron = "0 9 * * 1"\n')
    r = run_cli("check-config", str(bad))
    assert r.returncode == 2
    assert f"{bad}:{line_of(bad.read_text(), 'job = ')}: schedules[0].job:" in r.stderr


def test_unwritable_data_dir_stops_the_bot_at_start_naming_the_field(tmp_path):
    (tmp_path / "not-a-dir").write_text("")
    text = BASE_CONFIG.replace('data_dir = "data"', 'data_dir = "not-a-dir/data"')
    cfg = tmp_path / "config.toml"
    cfg.write_text(text)
    r = subprocess.run([sys.executable, "-m", "bot.cli", "run", "--config", str(cfg), "--port", "0"],
                       capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.returncode == 2
    assert f"{cfg}:{line_of(text, 'data_dir = ')}: bot.data_dir: 数据目录无法写入" in r.stderr
    assert "Traceback" not in r.stderr


def test_ai_bot_enabled_without_token_or_key_names_the_fields():
    text = BASE_CONFIG.replace('token = "aibottoken456"', 'token = ""').replace(
        'encoding_aes_key = "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut"', 'encoding_aes_key = "short"')
    token, key = problems_of(text)
    token_line, key_line = line_of(text, 'token = ""'), line_of(text, 'encoding_aes_key = "short')
    assert token.startswith(f"config.toml:{token_line}: aibot.token")
    assert key.startswith(f"config.toml:{key_line}: aibot.encoding_aes_key")
    assert "43" in key


def test_two_grids_cannot_share_one_group_chat():
    text = BASE_CONFIG.replace('robot_webhook = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k2"',
                               'robot_webhook = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k2"\nchat_id = "wrg1"')
    [p] = problems_of(text)
    assert p.startswith(f"config.toml:{line_of(text, 'chat_id', 2)}: grids[1].chat_id")


def test_ai_bot_secrets_from_environment():
    cfg = parse_config(BASE_CONFIG, env={"GRIDBOT_AIBOT_TOKEN": "env-aibot-token"})
    assert cfg.aibot.token.get_secret_value() == "env-aibot-token"
    assert "env-aibot-token" in cfg.secret_values()
