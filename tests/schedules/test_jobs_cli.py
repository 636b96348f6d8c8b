"""`gridbot jobs list` and `gridbot jobs run`, next to a running bot and its data."""

from __future__ import annotations

import asyncio
import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

from tests.support.factories import BASE_CONFIG, write_config

from tests.support.attendance_helpers import checkin
from bot.cli import main
from bot.store_choice import store_for

TZ = ZoneInfo("Asia/Shanghai")
SCHEDULES = """
[[schedules]]
name = "下午打卡提醒"
job = "checkin_nudge"
cron = "0 17 * * *"

[[schedules]]
name = "周一网格通报"
job = "weekly_tally"
cron = "0 9 * * 1"

[[schedules]]
name = "停用的提醒"
job = "daily_reminder"
cron = "30 8 * * 1-5"
enabled = false
"""


def test_jobs_list(tmp_path, capsys):
    path = write_config(tmp_path, SCHEDULES)
    assert main(["jobs", "list", "--config", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["名称", "/", "name", "任务", "/", "job", "cron", "下次运行", "/", "next", "run"]
    nudge = next(line for line in out if line.startswith("下午打卡提醒"))
    assert "checkin_nudge" in nudge and "0 17 * * *" in nudge
    assert re.search(r"\d{4}-\d{2}-\d{2} 17:00 周[一二三四五六日]", nudge)
    weekly = next(line for line in out if line.startswith("周一网格通报"))
    assert re.search(r"\d{4}-\d{2}-\d{2} 09:00 周一", weekly)
    assert "已停用" in next(line for line in out if line.startswith("停用的提醒"))


async def run_cli(*argv: str) -> int:
    # The command runs its own event loop, as it does from a shell next to the running bot.
    return await asyncio.to_thread(main, list(argv))


async def test_run_dry_run_reads_the_running_bots_data(harness, config_path, capsys):
    await checkin(harness.bot, "lisi", date(2026, 11, 25))
    code = await run_cli("jobs", "run", "checkin_nudge", "--at", "2026-11-25T17:00", "--dry-run",
                         "--config", str(config_path))
    out = capsys.readouterr().out
    assert code == 0
    assert "[robot → g1 · text] @zhangsan @wangwu" in out
    assert "【今日打卡提醒】截至17:00,尚未打卡:@张三 @王五,请于20:00前拍照打卡。" in out
    assert "[robot → g2 · text] @sunqi @zhouba" in out
    await harness.settle()
    assert harness.pushes() == []  # a dry run sends nothing


async def test_run_on_a_holiday_says_so_and_sends_nothing(harness, config_path, capsys):
    code = await run_cli("jobs", "run", "checkin_nudge", "--at", "2026-10-03T17:00", "--dry-run",
                         "--config", str(config_path))
    out = capsys.readouterr().out
    assert code == 0
    assert "10月3日(周六)不是工作日" in out
    assert "[robot" not in out


async def test_run_through_the_running_bots_emulator(harness, tmp_path, capsys):
    await checkin(harness.bot, "lisi", date(2026, 11, 25))
    await checkin(harness.bot, "wangwu", date(2026, 11, 25))
    # The same data folder, and the port the running bot listens on.
    cli_cfg = tmp_path / "cli.toml"
    cli_cfg.write_text(BASE_CONFIG.replace("port = 0", f"port = {harness.client.port}") + SCHEDULES,
                       encoding="utf-8")
    code = await run_cli("jobs", "run", "下午打卡提醒", "--at", "2026-11-25T17:00", "--config", str(cli_cfg))
    out = capsys.readouterr().out
    assert code == 0, out
    assert "已发送 2 条消息" in out
    g1 = harness.pushes("g1")
    assert len(g1) == 1 and g1[0]["mentioned"] == ["zhangsan"]
    assert harness.pushes("g2")[0]["mentioned"] == ["sunqi", "zhouba"]


async def test_run_when_the_bot_is_not_reachable(tmp_path, capsys, unused_tcp_port):
    path = write_config(tmp_path, SCHEDULES, base=BASE_CONFIG.replace("port = 0", f"port = {unused_tcp_port}"))
    code = await run_cli("jobs", "run", "周一网格通报", "--at", "2026-11-30T09:00", "--config", str(path))
    out = capsys.readouterr().out
    assert code == 1
    assert "未能发送" in out


def test_run_errors(tmp_path, capsys):
    path = write_config(tmp_path, SCHEDULES)
    assert main(["jobs", "run", "没有这个", "--config", str(path)]) == 2
    assert "没有名为“没有这个”的定时任务" in capsys.readouterr().err
    assert main(["jobs", "run", "下午打卡提醒", "--at", "昨天", "--config", str(path)]) == 2
    assert "ISO-8601" in capsys.readouterr().err
    # Emulator mode without a fixed port cannot reach a running bot.
    assert main(["jobs", "run", "下午打卡提醒", "--at", "2026-11-25T17:00", "--config", str(path)]) == 2
    assert "--dry-run" in capsys.readouterr().out


async def test_the_ladder_from_the_command_line_previews_only(harness, config_path, capsys):
    await harness.text("lisi", "问题:幸福路3号楼下堆放建筑垃圾")  # deadline 11月27日 09:30
    await harness.store.checkpoint()
    code = await run_cli("jobs", "run", "ladder", "--at", "2026-11-27T10:00", "--dry-run", "--config", str(config_path))
    out = capsys.readouterr().out
    assert code == 0 and "[app → zhangsan · text]" in out and "【逾期督办】" in out
    # Sending for real from beside the bot would send the step again when the bot runs it.
    from dataclasses import replace

    from schedules.supervise import ladder
    ro = store_for(harness.bot.config, readonly=True)
    ro.load()
    result = await ladder(replace(harness.bot, store=ro), datetime(2026, 11, 27, 10, tzinfo=TZ))
    assert result == "逐级督办需要记录已告知到哪一级,只能由运行中的机器人执行;可加 --dry-run 预览将发送的内容。"
    await harness.settle()
    assert not any(r.startswith("【逾期督办】") for r in harness.replies("zhangsan"))
    assert harness.store.get("problems", "P1").get("ladder") is None
