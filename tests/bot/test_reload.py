"""Hot reload of the config file in the running bot: no restart, and a bad file is refused."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from tests.support.factories import BASE_CONFIG, write_config

from bot.cli import cmd_check_config
from bot.scheduler import run_job

TZ = ZoneInfo("Asia/Shanghai")
NOTICE_SECONDS = 5.0

SCHEDULES = """
[[schedules]]
name = "下午打卡提醒"
job = "checkin_nudge"
cron = "0 17 * * *"

[[schedules]]
name = "周一网格通报"
job = "weekly_tally"
cron = "0 9 * * 1"
"""

NEW_PERSON = """
[[people]]
userid = "zhaoliu"
name = "赵六"
role = "member"
grid = "g1"
"""


@pytest.fixture
def config_path(tmp_path):
    return write_config(tmp_path, SCHEDULES)


async def wait_for(cond, timeout: float = NOTICE_SECONDS) -> float:
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout} s")
        await asyncio.sleep(0.05)
    return time.monotonic() - start


def rewrite(path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def job_ids(harness) -> list[str]:
    return [j.id for j in harness.bot.scheduler.get_jobs()]


async def test_person_added_without_restart(harness, config_path):
    assert harness.bot.config.person("zhaoliu") is None
    await harness.text("zhaoliu", "帮助")
    assert "尚未登记" in harness.last_reply("zhaoliu")
    rewrite(config_path, BASE_CONFIG + SCHEDULES + NEW_PERSON)
    took = await wait_for(lambda: harness.bot.config.person("zhaoliu") is not None)
    assert took < NOTICE_SECONDS
    print(f"config change noticed and applied after {took:.2f} s")
    await harness.settle()
    assert harness.last_reply("admin").startswith("【网格助手】配置已更新:2个网格,9人,2个定时任务")

    await harness.text("zhaoliu", "帮助")
    assert "网格助手用法" in harness.last_reply("zhaoliu")
    harness.clear()
    await run_job(harness.bot, "下午打卡提醒", "checkin_nudge", at=datetime(2026, 11, 25, 17, 0, tzinfo=TZ))
    await harness.settle()
    assert harness.pushes("g1")[0]["mentioned"] == ["zhangsan", "lisi", "wangwu", "zhaoliu"]


async def test_cron_changed_job_rescheduled_without_duplicates(harness, config_path):
    scheduler = harness.bot.scheduler
    assert sorted(job_ids(harness)) == ["schedule:下午打卡提醒", "schedule:周一网格通报"]
    before = str(scheduler.get_job("schedule:下午打卡提醒").trigger)
    assert "hour='17'" in before

    changed = SCHEDULES.replace('cron = "0 17 * * *"', 'cron = "30 16 * * 1-5"')
    rewrite(config_path, BASE_CONFIG + changed)
    await wait_for(lambda: "hour='16'" in str(scheduler.get_job("schedule:下午打卡提醒").trigger))
    trig = scheduler.get_job("schedule:下午打卡提醒").trigger
    assert "minute='30'" in str(trig) and "day_of_week='mon,tue,wed,thu,fri'" in str(trig)
    ids = job_ids(harness)
    assert len(ids) == len(set(ids)) == 2
    assert harness.bot.config.schedules[0].cron == "30 16 * * 1-5"

    # A schedule renamed and one disabled: the old ids go, nothing is left twice.
    renamed = changed.replace("周一网格通报", "周通报") + """
[[schedules]]
name = "晚间告知网格长"
job = "escalation"
cron = "30 19 * * *"
enabled = false
"""
    rewrite(config_path, BASE_CONFIG + renamed)
    await wait_for(lambda: "schedule:周通报" in job_ids(harness))
    assert sorted(job_ids(harness)) == ["schedule:下午打卡提醒", "schedule:周通报"]


async def test_broken_file_refused_and_old_config_kept(harness, config_path, capsys):
    good = harness.bot.config
    broken = BASE_CONFIG + SCHEDULES.replace('cron = "0 9 * * 1"', 'cron = "0 9 * *"') + NEW_PERSON.replace(
        'role = "member"', 'role = "memeber"')
    rewrite(config_path, broken)
    await wait_for(lambda: any("配置文件修改有误" in r for r in harness.replies("admin")))
    await harness.settle()
    msg = harness.last_reply("admin")
    # The same error check-config prints, naming file, line and field.
    assert cmd_check_config(SimpleNamespace(path=str(config_path), config=None)) == 2
    printed = capsys.readouterr().err.strip()
    assert printed in msg
    assert msg.startswith("【网格助手】配置文件修改有误,未生效,仍按原配置运行。\n配置文件有 2 处错误,请按提示修改:\n")
    assert ('定时任务\u201c周一网格通报\u201d的 cron:cron 表达式 "0 9 * *" 有误:应为 5 段,用空格隔开' in msg)
    assert ('人员 zhaoliu(赵六)的 role:取值 "memeber" 无效,是否应为 member?'
            "可选:member(网格员)、grid_leader(网格长)、leader(领导)、admin(管理员)") in msg

    # Still running on the last good config.
    assert harness.bot.config is good
    assert harness.bot.config.person("zhaoliu") is None
    assert "hour='9'" in str(harness.bot.scheduler.get_job("schedule:周一网格通报").trigger)
    await harness.text("lisi", "帮助")
    assert "网格助手用法" in harness.last_reply("lisi")

    # Fixing the file applies it.
    rewrite(config_path, BASE_CONFIG + SCHEDULES + NEW_PERSON)
    await wait_for(lambda: harness.bot.config.person("zhaoliu") is not None)


async def test_toml_syntax_error_refused(harness, config_path):
    rewrite(config_path, BASE_CONFIG + SCHEDULES + "\n[[people]\nuserid = \n")
    await wait_for(lambda: any("缺少右方括号" in r for r in harness.replies("admin")))
    line = len((BASE_CONFIG + SCHEDULES).splitlines()) + 2
    assert harness.last_reply("admin").endswith(f"config.toml:{line}: 可重复的段应写成 [[段名]],缺少右方括号")
    assert len(harness.bot.config.people) == 8


async def test_touch_without_change_does_nothing(harness, config_path):
    rewrite(config_path, config_path.read_text(encoding="utf-8"))
    await asyncio.sleep(1.6)
    await harness.settle()
    assert harness.replies("admin") == []



async def test_a_file_applied_by_hand_is_not_applied_again_by_the_watcher(harness, config_path):
    """A change already acted on (apply_file, as a direct reload does) is not reported twice when
    the watcher's next poll sees the same file: admins get one notice."""
    from bot.config_watch import apply_file, watch_config
    watcher = asyncio.create_task(watch_config(harness.runtime, config_path, interval=0.01))
    await asyncio.sleep(0.05)  # the watcher has read the file as it was
    rewrite(config_path, BASE_CONFIG + SCHEDULES + "\n[[people]\nuserid = \n")
    assert not await apply_file(harness.runtime, config_path)
    await asyncio.sleep(0.5)  # several polls, past the settle pause
    watcher.cancel()
    await asyncio.gather(watcher, return_exceptions=True)
    await harness.settle()
    assert len([r for r in harness.replies("admin") if "未生效" in r]) == 1
