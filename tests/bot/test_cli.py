"""The `gridbot` command's own subcommands (init; the features add jobs and export)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bot.cli import main
from bot.config_loading import load_config

REPO = Path(__file__).resolve().parents[2]


def test_init_writes_the_commented_example_and_never_overwrites(tmp_path, capsys):
    target = tmp_path / "config.toml"
    assert main(["init", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == (REPO / "config.example.toml").read_text(encoding="utf-8")
    assert "# 网格助手 示例配置" in target.read_text(encoding="utf-8")
    assert load_config(target).grids  # a config that runs as it is
    assert "下一步" in capsys.readouterr().out
    target.write_text("# 管理员改过的配置\n", encoding="utf-8")
    assert main(["init", str(target)]) == 2
    assert target.read_text(encoding="utf-8") == "# 管理员改过的配置\n"
    assert "已存在,未覆盖" in capsys.readouterr().err


def test_the_example_config_ships_inside_the_package():
    # An installed gridbot (no checkout beside it) finds the example through the package.
    out = subprocess.run([sys.executable, "-c", "from importlib.resources import files; "
                          "print(files('bot').joinpath('config.example.toml').read_text()[:12])"],
                         capture_output=True, text=True, cwd="/", check=True)
    assert out.stdout.startswith("# 网格助手")


def test_help_lists_the_features_commands(capsys):
    try:
        main(["--help"])
    except SystemExit:
        pass
    out = capsys.readouterr().out
    for name in ("init", "run", "check-config", "stats", "parse", "jobs", "export"):
        assert name in out


def test_no_chinese_font_stops_check_config_and_run(tmp_path, monkeypatch, capsys):
    import bot.fonts
    config = REPO / "config.example.toml"
    assert main(["check-config", str(config)]) == 0
    monkeypatch.setattr(bot.fonts, "find_cjk_font", lambda: None)
    assert main(["check-config", str(config)]) == 2
    assert "没有找到中文字体" in capsys.readouterr().err
    data = tmp_path / "c.toml"
    data.write_text(config.read_text(encoding="utf-8"), encoding="utf-8")
    assert main(["run", "--config", str(data)]) == 2  # refuses before it listens
    assert "fonts-wqy-microhei" in capsys.readouterr().err
