"""One scheduler across several bot processes on one PostgreSQL database (the real test server):
each fire (schedule, fire time) runs once, whichever processes fire it, catch up on it or take it
over from a worker that died mid-run."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from bot import scheduler
from bot.app import RUNTIME_KEY, create_app
from bot.clock import FakeClock
from bot.config_loading import load_config
from bot.features import all_jobs
from bot.scheduler import job_id, take_over_stale
from bot.store_choice import store_for

from tests.bot.test_durability import free_port, wait_ready
from tests.support.attendance_helpers import TZ, at
from tests.support.factories import BotHarness, on_store, write_config

NUDGE = """
[[schedules]]
name = "上午打卡提醒"
job = "checkin_nudge"
cron = "0 9 * * *"
"""

REPO = Path(__file__).resolve().parents[2]

WEEKLY = """
[[schedules]]
name = "周一网格通报"
job = "weekly_tally"
cron = "0 9 * * 1"
"""


@pytest.fixture
def on_pg(pg_dsn, monkeypatch) -> str:
    # Whatever store this test run uses, these bots share one PostgreSQL database.
    monkeypatch.setenv("GRIDBOT_STORE_DSN", pg_dsn)
    return pg_dsn


def worker_config(tmp_path: Path, name: str, schedules: str) -> Path:
    folder = tmp_path / name  # a data folder each, as on separate machines; one database
    folder.mkdir()
    return write_config(folder, schedules, base=on_store("postgres"))


async def start_workers(aiohttp_client, tmp_path: Path, schedules: str, now: datetime, n: int = 3,
                        name: str = "w") -> list[BotHarness]:
    workers = []
    for i in range(n):
        app = create_app(load_config(worker_config(tmp_path, f"{name}{i}", schedules)), clock=FakeClock(TZ, now))
        client = await aiohttp_client(app)
        h = BotHarness(app, client, app[RUNTIME_KEY].clock)
        h.emulator.set_origin(str(client.make_url("")).rstrip("/"))
        workers.append(h)
    return workers


async def settle(workers: list[BotHarness]) -> None:
    for h in workers:
        await h.settle()


def pushes(workers: list[BotHarness], grid: str) -> list[str]:
    return [p["content"] for h in workers for p in h.pushes(grid)]


async def test_three_workers_firing_the_same_cron_run_it_once(aiohttp_client, tmp_path, on_pg):
    workers = await start_workers(aiohttp_client, tmp_path, NUDGE, at(2026, 11, 25, 9, 0))
    # 09:00: every worker's own APScheduler fires the schedule at the same moment.
    for h in workers:
        h.bot.scheduler.get_job(job_id("上午打卡提醒")).modify(next_run_time=datetime.now(TZ))
    for _ in range(200):
        await asyncio.sleep(0.05)
        await settle(workers)
        if all(h.bot.scheduler.get_job(job_id("上午打卡提醒")).next_run_time.date() > datetime.now(TZ).date()
               for h in workers) and pushes(workers, "g1"):
            break
    await asyncio.sleep(0.5)  # a second run, if any, would have pushed by now
    await settle(workers)
    sent = pushes(workers, "g1")
    assert len(sent) == 1 and "截至09:00" in sent[0]
    # The run is recorded once in the shared database, by the worker that ran it.
    ran = [h for h in workers if h.pushes("g1")]
    rows = ran[0].store._query("SELECT ok, finished_at IS NOT NULL AS done FROM job_fires")
    assert [(r["ok"], r["done"]) for r in rows] == [(True, True)]


async def test_three_workers_starting_after_an_outage_catch_up_a_weekly_job_once(aiohttp_client, tmp_path, on_pg):
    # Down over Monday 09:00; last week's bulletin went out. Three workers come back at 09:20.
    store = store_for(load_config(worker_config(tmp_path, "before", WEEKLY)))
    store.load()
    await store.start()
    await store.put("jobs", {"id": "run:周一网格通报", "last_run": at(2026, 11, 23, 9, 0).isoformat()})
    await store.close()

    workers = await start_workers(aiohttp_client, tmp_path, WEEKLY, at(2026, 11, 30, 9, 20))
    await settle(workers)
    sent = pushes(workers, "g1")
    assert len(sent) == 1 and "周通报" in sent[0]
    assert len(pushes(workers, "g2")) == 1
    # A fourth worker starting a minute later finds it done, by the record or by the claim.
    late = await start_workers(aiohttp_client, tmp_path, WEEKLY, at(2026, 11, 30, 9, 21), n=1, name="late")
    await settle(late)
    assert pushes(late, "g1") == []


async def test_a_worker_dying_mid_run_is_taken_over_once(aiohttp_client, tmp_path, on_pg, monkeypatch):
    monkeypatch.setattr(scheduler, "STALE_AFTER", 2.0)
    monkeypatch.setattr(scheduler, "HEARTBEAT_EVERY", 0.2)
    workers = await start_workers(aiohttp_client, tmp_path, NUDGE, at(2026, 11, 25, 9, 0))
    dying = workers[0]
    real = all_jobs()["checkin_nudge"]
    started, calls = asyncio.Event(), []

    async def hangs_in_the_first_worker(bot, when):
        calls.append((bot is dying.bot, when))
        if bot is dying.bot:
            started.set()
            await asyncio.Event().wait()  # stuck until the worker dies
        return await real(bot, when)

    monkeypatch.setitem(all_jobs(), "checkin_nudge", hangs_in_the_first_worker)
    run = asyncio.create_task(scheduler.run_scheduled(dying.bot, "上午打卡提醒", "checkin_nudge", "0 9 * * *"))
    await asyncio.wait_for(started.wait(), 10)

    # Alive: its heartbeat keeps the fire its own well past the limit.
    await asyncio.sleep(3.0)
    assert await take_over_stale(workers[1].bot) == []
    # Killed: no more heartbeats, no finish. After the limit the next sweep takes the fire over.
    run.cancel()
    await asyncio.sleep(2.5)
    taken = await asyncio.gather(*(take_over_stale(h.bot) for h in workers[1:]))
    await settle(workers)
    assert sorted(taken) == [[], ["上午打卡提醒"]]
    sent = pushes(workers, "g1")
    assert len(sent) == 1 and "截至09:00" in sent[0]
    assert calls == [(True, at(2026, 11, 25, 9, 0)), (False, at(2026, 11, 25, 9, 0))]
    # Finished now: neither a later sweep nor the scheduler firing it again runs it a third time.
    await asyncio.sleep(2.5)
    assert await take_over_stale(workers[2].bot) == []
    assert await scheduler.fire(workers[2].bot, "上午打卡提醒", "checkin_nudge", at(2026, 11, 25, 9, 0)) is None
    await settle(workers)
    assert len(pushes(workers, "g1")) == 1


async def test_a_worker_that_lost_its_claim_stops_its_run(aiohttp_client, tmp_path, on_pg, monkeypatch):
    # A worker stalled past the limit (the others saw it dead and took over) must not go on
    # running the same fire as well when it wakes.
    monkeypatch.setattr(scheduler, "STALE_AFTER", 0.5)
    monkeypatch.setattr(scheduler, "HEARTBEAT_EVERY", 0.2)
    a, b = await start_workers(aiohttp_client, tmp_path, NUDGE, at(2026, 11, 25, 9, 0), n=2)
    fire_at = at(2026, 11, 25, 9, 0)
    await b.store.claim_fire("上午打卡提醒", fire_at, "checkin_nudge", "b-stalled", 0.5)  # b claimed, then stalled
    await asyncio.sleep(0.8)
    reached = asyncio.Event()

    async def slow(bot, when):
        reached.set()
        await asyncio.sleep(30)
        return "不该到这里"

    monkeypatch.setitem(all_jobs(), "checkin_nudge", slow)
    run = asyncio.create_task(scheduler.fire(a.bot, "上午打卡提醒", "checkin_nudge", fire_at, run_at=fire_at))
    await asyncio.wait_for(reached.wait(), 5)
    # Now a stalls in turn and b takes the fire back (as another worker would).
    a_holder = scheduler.holder_of(a.bot)
    await a.store._open().arun(lambda c: c.execute(
        "UPDATE job_fires SET heartbeat = now() - interval '1 minute', holder = 'b' WHERE holder = $1", a_holder))
    assert await asyncio.wait_for(run, 5) is None  # a noticed at its next heartbeat and stopped


# --- real processes ---------------------------------------------------------------------------


def start_worker(config: Path, port: int, hang: str | None = None) -> subprocess.Popen:
    env = {**os.environ, "JOB_WORKER_HANG": hang or ""}
    return subprocess.Popen([sys.executable, "-m", "tests.support.job_worker", "run", "--config", str(config),
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            cwd=REPO, env={**env, "PYTHONPATH": str(REPO)})


async def robot_pushes(port: int, grid: str) -> list[str]:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://127.0.0.1:{port}/emulator/ui/feed") as r:
            events = (await r.json())["events"]
    return [e["content"] for e in events if e.get("kind") == "robot" and e.get("to") == grid]


async def test_a_real_worker_killed_mid_job_is_taken_over_by_one_of_the_others(tmp_path, on_pg):
    # A schedule due five minutes ago (real time: these are real processes) that none ran yet;
    # the bot has been in service for half an hour, so starting now owes it (the catch-up).
    now = datetime.now(TZ).replace(second=0, microsecond=0)
    due = now - timedelta(minutes=5)
    schedule = f'\n[[schedules]]\nname = "周一网格通报"\njob = "weekly_tally"\ncron = "{due.minute} {due.hour} * * *"\n'
    store = store_for(load_config(worker_config(tmp_path, "seed", schedule)))
    store.load()
    await store.start()
    await store.put("meta", {"id": "first_start", "at": (now - timedelta(minutes=30)).isoformat()})
    await store.close()

    marker = tmp_path / "started"
    port_a = free_port()
    a = start_worker(worker_config(tmp_path, "a", schedule), port_a, hang=f"weekly_tally={marker}")
    others: list[subprocess.Popen] = []
    try:
        for _ in range(300):
            if marker.exists() or a.poll() is not None:
                break
            await asyncio.sleep(0.1)
        assert marker.read_text() == due.isoformat()  # a claimed the fire and is running it
        a.kill()
        assert a.wait(10) == -signal.SIGKILL

        ports = [free_port(), free_port()]
        others = [start_worker(worker_config(tmp_path, f"b{i}", schedule), p) for i, p in enumerate(ports)]
        for p in ports:
            await wait_ready(p)
        rows: list = []
        for _ in range(300):
            rows = store._query("SELECT holder, takeovers, ok, finished_at FROM job_fires")
            if rows and rows[0]["finished_at"] is not None:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # time for a wrong second run to show
        assert [(r["takeovers"], r["ok"]) for r in rows] == [(1, True)]
        assert f":{a.pid}:" not in rows[0]["holder"]
        sent = [text for p in ports for text in await robot_pushes(p, "g1")]
        assert len(sent) == 1 and "周通报" in sent[0]
    finally:
        for p in [a, *others]:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(20)


# --- the database away at fire time -----------------------------------------------------------


async def test_a_claim_that_fails_for_a_moment_is_tried_again_and_the_job_runs(harness, monkeypatch):
    monkeypatch.setattr(scheduler, "HEARTBEAT_EVERY", 0.01)
    real, failures = harness.store.claim_fire, []

    async def flaky(*args):
        if len(failures) < 2:
            failures.append(args)
            raise ConnectionRefusedError("database restarting")
        return await real(*args)

    monkeypatch.setattr(harness.store, "claim_fire", flaky)
    outcome = await scheduler.fire(harness.bot, "上午打卡提醒", "checkin_nudge", at(2026, 11, 25, 9, 0))
    await harness.settle()
    assert outcome is not None and outcome.ok and len(failures) == 2
    assert len(harness.pushes("g1")) == 1
    assert harness.replies("admin") == []


async def test_a_claim_that_keeps_failing_is_told_to_the_admins(harness, monkeypatch):
    monkeypatch.setattr(scheduler, "HEARTBEAT_EVERY", 0.01)

    async def down(*args):
        raise ConnectionRefusedError("database down")

    monkeypatch.setattr(harness.store, "claim_fire", down)
    assert await scheduler.fire(harness.bot, "上午打卡提醒", "checkin_nudge", at(2026, 11, 25, 9, 0)) is None
    await harness.settle()
    assert harness.pushes("g1") == []
    assert harness.last_reply("admin") == \
        "【网格助手】定时任务“上午打卡提醒”本次没有运行,登记运行时出错:ConnectionRefusedError。详情见日志。"
