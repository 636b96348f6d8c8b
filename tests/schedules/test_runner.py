"""The scheduler: crontab weekdays, the shared error path, catching up missed runs."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest
from loguru import logger

from tests.support.factories import BASE_CONFIG, BotHarness, write_config

from tests.support.attendance_helpers import TZ, at, use_config
from bot.app import RUNTIME_KEY, create_app
from bot.clock import FakeClock
from bot.config_loading import load_config
from bot.crontab import cron_trigger
from bot.features import all_jobs
from bot.scheduler import catch_up, job_id, missed_runs, run_job, sync_schedules
from bot.store_choice import store_for

WED_0930 = at(2026, 11, 25, 9, 30)


# --- crontab: standard weekday numbering ------------------------------------------------------


@pytest.mark.parametrize("expr, expected", [
    ("0 9 * * 1", at(2026, 11, 30, 9, 0)),  # Monday
    ("0 9 * * mon", at(2026, 11, 30, 9, 0)),
    ("0 9 * * 0", at(2026, 11, 29, 9, 0)),  # Sunday
    ("0 9 * * 7", at(2026, 11, 29, 9, 0)),  # Sunday too
    ("0 9 * * 5", at(2026, 11, 27, 9, 0)),  # Friday
    ("30 8 * * 1-5", at(2026, 11, 26, 8, 30)),  # Thursday is next
])
def test_cron_weekday_is_standard_crontab(expr, expected):
    nxt = cron_trigger(expr, TZ).get_next_fire_time(None, WED_0930)
    assert nxt == expected
    assert nxt.strftime("%A") == expected.strftime("%A")


def test_monday_cron_fires_only_on_mondays():
    trig = cron_trigger("0 9 * * 1", TZ)
    t, seen = WED_0930, []
    for _ in range(6):
        t = trig.get_next_fire_time(None, t + timedelta(seconds=1))
        seen.append(t.weekday())
    assert seen == [0] * 6


def test_weekday_ranges_and_timezone():
    trig = cron_trigger("0 17 * * 6-7", TZ)
    assert trig.get_next_fire_time(None, WED_0930) == at(2026, 11, 28, 17, 0)
    # 17:00 in Shanghai is 09:00 UTC: the trigger follows the bot's timezone.
    assert trig.get_next_fire_time(None, WED_0930).utcoffset() == timedelta(hours=8)


# --- the shared error path ------------------------------------------------------------------


async def test_failing_job_is_reported_to_admins_and_others_keep_running(harness, monkeypatch):
    calls = []

    async def boom(bot, when):
        calls.append(when)
        raise ValueError("数据有误")

    monkeypatch.setitem(all_jobs(), "overdue_problems", boom)
    result = await run_job(harness.bot, "逾期问题通报", "overdue_problems", at=WED_0930)
    await harness.settle()
    assert result is None
    assert calls == [WED_0930]
    assert harness.last_reply("admin") == "【网格助手】定时任务“逾期问题通报”运行失败:ValueError。详情见日志。"
    assert harness.replies("zhangsan") == []
    run = harness.store.get("jobs", "run:逾期问题通报")
    assert run["ok"] is False and "数据有误" in run["result"]
    # The next job runs normally.
    assert "不是工作日" in await run_job(harness.bot, "下午打卡提醒", "checkin_nudge", at=at(2026, 11, 28, 17))


async def test_failing_job_inside_the_real_scheduler(harness, monkeypatch, tmp_path):
    async def boom(bot, when):
        raise RuntimeError("坏了")

    monkeypatch.setitem(all_jobs(), "overdue_problems", boom)
    use_config(harness, tmp_path, BASE_CONFIG + """
[[schedules]]
name = "逾期问题通报"
job = "overdue_problems"
cron = "0 10 * * *"

[[schedules]]
name = "周一网格通报"
job = "weekly_tally"
cron = "0 9 * * 1"
""")
    scheduler = harness.bot.scheduler
    sync_schedules(scheduler, harness.bot, harness.bot.config)
    now = datetime.now(TZ)
    scheduler.get_job(job_id("逾期问题通报")).modify(next_run_time=now)
    for _ in range(100):
        if harness.replies("admin"):
            break
        await asyncio.sleep(0.05)
    await harness.settle()
    assert "定时任务“逾期问题通报”运行失败:RuntimeError" in harness.last_reply("admin")
    assert scheduler.running
    # Still scheduled for its next time, and the other job runs fine through the scheduler.
    assert scheduler.get_job(job_id("逾期问题通报")).next_run_time > now
    scheduler.get_job(job_id("周一网格通报")).modify(next_run_time=datetime.now(TZ))
    for _ in range(100):
        if harness.pushes("g1"):
            break
        await asyncio.sleep(0.05)
    assert "周通报" in harness.pushes("g1")[0]["content"]


async def test_unknown_job_is_not_a_crash(harness):
    assert await run_job(harness.bot, "x", "no_such_job", at=WED_0930) is None


# --- misfires -------------------------------------------------------------------------------

SCHEDULES = """
[[schedules]]
name = "下午打卡提醒"
job = "checkin_nudge"
cron = "0 9 * * *"

[[schedules]]
name = "早间提醒"
job = "daily_reminder"
cron = "0 8 * * *"

[[schedules]]
name = "周一网格通报"
job = "weekly_tally"
cron = "0 9 * * 1"

[[schedules]]
name = "停用的"
job = "escalation"
cron = "0 9 * * *"
enabled = false
"""


async def put_last_run(bot, name, when):
    await bot.store.put("jobs", {"id": f"run:{name}", "job": "x", "last_run": when.isoformat(), "ok": True})


async def test_missed_runs_within_an_hour_run_once(harness, tmp_path):
    use_config(harness, tmp_path, BASE_CONFIG + SCHEDULES)
    bot = harness.bot
    # Last runs: yesterday for both daily jobs; the weekly one ran on Monday.
    await put_last_run(bot, "下午打卡提醒", at(2026, 11, 24, 9, 0))
    await put_last_run(bot, "早间提醒", at(2026, 11, 24, 8, 0))
    await put_last_run(bot, "周一网格通报", at(2026, 11, 23, 9, 0))
    logs: list[str] = []
    sink = logger.add(lambda m: logs.append(str(m)), level="INFO")
    try:
        due = missed_runs(bot, WED_0930)
    finally:
        logger.remove(sink)
    # 09:00 is 30 minutes late: run, as of 09:00. 08:00 is 90 minutes late: skipped and logged.
    assert due == [("下午打卡提醒", "checkin_nudge", at(2026, 11, 25, 9, 0))]
    assert any("早间提醒" in line and "skipped" in line for line in logs)

    harness.clear()
    assert await catch_up(bot, WED_0930) == ["下午打卡提醒"]
    await harness.settle()
    assert len(harness.pushes("g1")) == 1
    assert "截至09:00" in harness.pushes("g1")[0]["content"]
    # Recorded: starting again a few minutes later does not run it twice.
    assert missed_runs(bot, WED_0930 + timedelta(minutes=5)) == []


async def test_several_missed_fire_times_coalesce(harness, tmp_path):
    use_config(harness, tmp_path, BASE_CONFIG + """
[[schedules]]
name = "每十分钟"
job = "checkin_nudge"
cron = "*/10 * * * *"
""")
    await put_last_run(harness.bot, "每十分钟", at(2026, 11, 25, 7, 0))
    assert missed_runs(harness.bot, WED_0930) == [("每十分钟", "checkin_nudge", at(2026, 11, 25, 9, 20))]


async def test_never_run_schedule_catches_up_only_within_the_hour(harness, tmp_path):
    # The bot has been in service since Monday; these schedules were added to it later.
    await harness.store.put("meta", {"id": "first_start", "at": at(2026, 11, 23, 8, 0).isoformat()})
    use_config(harness, tmp_path, BASE_CONFIG + SCHEDULES)
    due = missed_runs(harness.bot, WED_0930)
    assert [d[0] for d in due] == ["下午打卡提醒"]


async def test_a_fresh_install_owes_no_runs(harness, tmp_path):
    # First started just now (the harness): nothing was missed, whatever the crons say.
    use_config(harness, tmp_path, BASE_CONFIG + SCHEDULES)
    assert missed_runs(harness.bot, WED_0930) == []


async def test_catch_up_at_startup(aiohttp_client, tmp_path):
    path = write_config(tmp_path, SCHEDULES)
    cfg = load_config(path)
    store = store_for(cfg)
    store.load()
    await store.start()
    await store.put("jobs", {"id": "run:下午打卡提醒", "last_run": at(2026, 11, 24, 9, 0).isoformat()})
    await store.close()

    app = create_app(cfg, clock=FakeClock(TZ, WED_0930))
    client = await aiohttp_client(app)
    h = BotHarness(app, client, app[RUNTIME_KEY].clock)
    h.emulator.set_origin(str(client.make_url("")).rstrip("/"))
    await h.settle()
    pushes = h.pushes("g1")
    assert len(pushes) == 1 and "截至09:00" in pushes[0]["content"]
    assert h.store.get("jobs", "run:下午打卡提醒")["last_run"] == at(2026, 11, 25, 9, 0).isoformat()
    # The disabled schedule is not in the scheduler; the others are, once each.
    ids = sorted(j.id for j in h.bot.scheduler.get_jobs())
    assert ids == sorted(job_id(n) for n in ("下午打卡提醒", "早间提醒", "周一网格通报"))
