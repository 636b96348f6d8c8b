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
    assert msg == f'config.toml:{n}: 定时任务\u201cb\u201d的 cron:cron 表达式 "0 25 * * 1" 有误:小时应在 0–23 之间,这里是 25'


def test_cron_day_of_week_eight_is_refused():
    text = BASE_CONFIG + '\n[[schedules]]\nname = "a"\njob = "weekly_tally"\ncron = "0 9 * * 8"\n'
    [msg] = problems_of(text)
    assert msg == (f'config.toml:{line_of(text, "cron = ")}: 定时任务\u201ca\u201d的 cron:'
                   f'cron 表达式 "0 9 * * 8" 有误:星期应在 0–7 之间,这里是 8')


def test_unknown_grid_reference():
    text = BASE_CONFIG + '\n[[people]]\nuserid = "x"\nname = "某人"\nrole = "member"\ngrid = "g9"\n'
    [msg] = problems_of(text)
    n = line_of(text, 'grid = "g9"')
    assert msg == f'config.toml:{n}: 人员 x(某人)的 grid:网格 "g9" 不存在,已有的网格:g1(1号网格)、g2(2号网格)'


def test_duplicate_ids():
    text = BASE_CONFIG + '\n[[grids]]\nid = "g1"\nname = "重复网格"\n'
    [msg] = problems_of(text)
    first, again = line_of(text, 'name = "1号网格"') - 1, line_of(text, 'name = "重复网格"') - 1
    assert msg == f'config.toml:{again}: 网格 g1(重复网格)的 id:id "g1" 与第 {first} 行的网格重复,不能相同'


def test_wrong_type_and_unknown_key():
    text = BASE_CONFIG.replace("port = 0", 'port = "eighty"').replace('name = "1号网格"', 'name = "1号网格"\nhousholds = 3')
    assert problems_of(text) == [
        f'config.toml:{line_of(text, "port = ")}: server.port:应为整数,写成了 "eighty"',
        f"config.toml:{line_of(text, 'housholds')}: 网格 g1(1号网格)的 housholds:未知字段,是否应为 households?",
    ]


def test_toml_syntax_error_has_line():
    text = BASE_CONFIG + "\n[[people]\nuserid = 'x'\n"
    [msg] = problems_of(text)
    assert msg == f"config.toml:{len(BASE_CONFIG.splitlines()) + 2}: 可重复的段应写成 [[段名]],缺少右方括号"


def test_bad_aes_key():
    text = BASE_CONFIG.replace('encoding_aes_key = "', 'encoding_aes_key = "short')
    [msg] = problems_of(text)
    assert msg == (f"config.toml:{line_of(text, 'encoding_aes_key')}: wecom.encoding_aes_key:"
                   f"EncodingAESKey 应为 43 个字符,现在是 48 个,请从企业微信管理后台完整复制")


def test_member_without_grid():
    text = BASE_CONFIG + '\n[[people]]\nuserid = "x"\nname = "某人"\nrole = "member"\n'
    [msg] = problems_of(text)
    # No grid line to point at: the person's [[people]] line.
    assert msg == f'config.toml:{line_of(text, "[[people]]", 9)}: 人员 x(某人)的 grid:网格员必须填写所属网格,如 grid = "g1"'


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
    assert r.stderr == (
        "配置文件有 1 处错误,请按提示修改:\n"
        f'{bad}:{line_of(bad.read_text(), "job = ")}: 定时任务\u201ca\u201d的 job:取值 "nightly" 无效,可选:'
        "daily_reminder(每日提醒)、checkin_nudge(未打卡提醒)、escalation(告知网格长)、weekly_tally(周通报)、"
        "overdue_problems(逾期问题通报)、weekly_digest(领导周报)、monthly_bulletin(月通报)、ladder(逐级督办)\n")


def test_unwritable_data_dir_stops_the_bot_at_start_naming_the_field(tmp_path):
    (tmp_path / "not-a-dir").write_text("")
    text = BASE_CONFIG.replace('data_dir = "data"', 'data_dir = "not-a-dir/data"')
    cfg = tmp_path / "config.toml"
    cfg.write_text(text)
    r = subprocess.run([sys.executable, "-m", "bot.cli", "run", "--config", str(cfg), "--port", "0"],
                       capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.returncode == 2
    assert r.stderr == (f"网格助手没有启动:配置文件有 1 处错误,请按提示修改:\n"
                        f"{cfg}:{line_of(text, 'data_dir = ')}: bot.data_dir:数据目录 {tmp_path}/not-a-dir/data "
                        f"无法写入:路径中有一段是文件,不是文件夹。请检查路径、权限和磁盘空间\n")


def test_ai_bot_enabled_without_token_or_key_names_the_fields():
    text = BASE_CONFIG.replace('token = "aibottoken456"', 'token = ""').replace(
        'encoding_aes_key = "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut"', 'encoding_aes_key = "short"')
    token, key = problems_of(text)
    token_line, key_line = line_of(text, 'token = ""'), line_of(text, 'encoding_aes_key = "short')
    assert token == f"config.toml:{token_line}: aibot.token:启用智能机器人(enabled = true)时必须填写"
    assert key == (f"config.toml:{key_line}: aibot.encoding_aes_key:"
                   f"EncodingAESKey 应为 43 个字符,现在是 5 个,请从企业微信管理后台完整复制")


def test_two_grids_cannot_share_one_group_chat():
    text = BASE_CONFIG.replace('robot_webhook = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k2"',
                               'robot_webhook = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k2"\nchat_id = "wrg1"')
    [p] = problems_of(text)
    assert p == (f"config.toml:{line_of(text, 'chat_id', 2)}: 网格 g2(2号网格)的 chat_id:"
                 f"这个群已对应网格 g1(1号网格),一个群只能对应一个网格")


def test_ai_bot_secrets_from_environment():
    cfg = parse_config(BASE_CONFIG, env={"GRIDBOT_AIBOT_TOKEN": "env-aibot-token"})
    assert cfg.aibot.token.get_secret_value() == "env-aibot-token"
    assert "env-aibot-token" in cfg.secret_values()
