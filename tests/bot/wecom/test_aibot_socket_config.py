"""Choosing the AI bot's long connection in the config: what websocket mode needs (named by file,
line and field), its secrets from the environment and out of the logs, and `gridbot check-config`
telling which mode is configured and, with --online, whether its credentials work."""

from __future__ import annotations

import asyncio

import pytest

from bot.cli import main
from bot.config_loading import ConfigError, parse_config
from bot.emulator.aibot_gateway import GATEWAY_PATH
from bot.emulator.wecom_api import API_PREFIX

from tests.support.factories import AIBOT_ID, BASE_CONFIG, write_config

WS = '[aibot]\nenabled = true\nmode = "websocket"'


def problems_of(text: str, env: dict | None = None) -> list[str]:
    with pytest.raises(ConfigError) as e:
        parse_config(text, name="config.toml", env=env or {})
    return [str(p) for p in e.value.problems]


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


def test_websocket_mode_needs_a_bot_id_and_secret_named_by_line():
    text = BASE_CONFIG.replace("[aibot]\nenabled = true", WS).replace(f'bot_id = "{AIBOT_ID}"', 'bot_id = ""')
    secret, bot_id = problems_of(text)  # in the file's order: [aibot] comes before its bot_id line
    assert bot_id.startswith(f"config.toml:{line_of(text, 'bot_id = ')}: aibot.bot_id:长连接模式必填")
    assert secret.startswith(f"config.toml:{line_of(text, '[aibot]')}: aibot.secret:长连接模式必填")
    assert "GRIDBOT_AIBOT_SECRET" in secret


def test_websocket_mode_needs_no_token_or_key_and_takes_its_secrets_from_the_environment():
    text = BASE_CONFIG.replace("[aibot]\nenabled = true", WS).replace('token = "aibottoken456"', 'token = ""')
    cfg = parse_config(text, env={"GRIDBOT_AIBOT_SECRET": "env-ws-secret", "GRIDBOT_AIBOT_BOT_ID": "aibENV01"})
    assert cfg.aibot.mode == "websocket" and cfg.aibot.bot_id == "aibENV01"
    assert cfg.aibot.ws_url == "wss://openws.work.weixin.qq.com"
    assert "env-ws-secret" in cfg.secret_values()
    from bot.log import mask, register_secrets
    register_secrets(*cfg.secret_values())
    assert "env-ws-secret" not in mask("subscribe secret=env-ws-secret")


def test_a_gateway_address_must_be_a_websocket_one():
    text = BASE_CONFIG.replace("[aibot]\nenabled = true", WS + '\nsecret = "s"\nws_url = "https://openws.example"')
    [p] = problems_of(text)
    assert p.startswith(f"config.toml:{line_of(text, 'ws_url')}: aibot.ws_url:必须以 wss:// 或 ws:// 开头")


def test_check_config_says_which_mode(tmp_path, capsys):
    path = write_config(tmp_path)
    assert main(["check-config", str(path)]) == 0
    assert "回调模式" in capsys.readouterr().out
    path.write_text(path.read_text(encoding="utf-8").replace(
        "[aibot]\nenabled = true", WS + '\nsecret = "s3cret-value"'), encoding="utf-8")
    assert main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "长连接模式" in out and "内置模拟器的长连接网关" in out and "无需公网地址" in out
    path.write_text(path.read_text(encoding="utf-8").replace('mode = "emulator"', 'mode = "live"'), encoding="utf-8")
    assert main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "长连接模式(由本机连出到 wss://openws.work.weixin.qq.com" in out and "s3cret-value" not in out


async def test_check_config_online_tells_whether_the_credentials_work(harness, tmp_path, capsys):
    """A live config pointed at the emulator, which plays WeCom: the app's credentials and the
    long connection's subscribe are tried for real."""
    gateway = harness.emulator.gateway
    gateway.credentials = (AIBOT_ID, "the-real-secret")
    origin = harness.emulator.origin
    api = origin + API_PREFIX
    text = (BASE_CONFIG.replace('mode = "emulator"', f'mode = "live"\napi_base = "{api}"')
            .replace("https://qyapi.weixin.qq.com/cgi-bin/", api)
            .replace("[aibot]\nenabled = true",
                     f'{WS}\nsecret = "the-real-secret"\nws_url = "ws{origin.removeprefix("http")}{GATEWAY_PATH}"'))
    path = tmp_path / "live.toml"
    path.write_text(text, encoding="utf-8")
    assert await asyncio.to_thread(main, ["check-config", "--online", str(path)]) == 0
    out = capsys.readouterr().out
    assert "access token 获取成功" in out and "长连接订阅成功" in out and gateway.subscribes == 1
    path.write_text(text.replace("the-real-secret", "an-old-secret"), encoding="utf-8")
    assert await asyncio.to_thread(main, ["check-config", "--online", str(path)]) == 1
    out = capsys.readouterr().out
    assert "✗" in out and "Bot ID 或 Secret 不正确" in out and "an-old-secret" not in out


async def test_over_the_long_connection_an_unusable_app_is_a_warning_not_a_failure(harness, tmp_path, capsys):
    """No public address often means no trusted IP for the app either: check-config says what
    that costs, checks the group robots all the same, and passes."""
    gateway = harness.emulator.gateway
    gateway.credentials = (AIBOT_ID, "the-real-secret")
    origin = harness.emulator.origin
    api = origin + API_PREFIX
    text = (BASE_CONFIG.replace('mode = "emulator"', f'mode = "live"\napi_base = "{api}"')
            .replace('secret = "test-secret-value-42"', 'secret = "no-app-here"')
            .replace("https://qyapi.weixin.qq.com/cgi-bin/", api)
            .replace("[aibot]\nenabled = true",
                     f'{WS}\nsecret = "the-real-secret"\nws_url = "ws{origin.removeprefix("http")}{GATEWAY_PATH}"'))
    path = tmp_path / "live.toml"
    path.write_text(text, encoding="utf-8")
    assert await asyncio.to_thread(main, ["check-config", "--online", str(path)]) == 0
    out = capsys.readouterr().out
    assert "! Secret 不正确" in out and "领导周报的图表和 Excel 台账" in out
    assert "1号网格 群机器人可用" in out and "长连接订阅成功" in out and "✗" not in out
