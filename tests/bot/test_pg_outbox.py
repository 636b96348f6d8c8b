"""The shared outbox on PostgreSQL (bot.pg_outbox): real `gridbot run` processes on one database
drain one table; WeCom is played by a stand-in in this process (tests/support/fake_wecom.py: real
HTTP, message/send's duplicate check, no regard for the Idempotency-Key), which counts what each
person and each group received and when."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from bot.config_loading import load_config
from bot.store_choice import store_for

from tests.bot.test_outbox_crash import post, wait_listening
from tests.support.attendance_helpers import TZ
from tests.support.factories import on_store, write_config
from tests.support.fake_wecom import FakeWecom, free_port

REPO = Path(__file__).resolve().parents[2]
ITEM = re.compile(r"· 小广告清理 (\d+)处")
PEOPLE = ["lisi", "wangwu", "zhouba", "zhangsan", "sunqi"]


@pytest.fixture
def on_pg(pg_dsn, monkeypatch) -> str:
    # Whatever store this test run uses, these workers share one PostgreSQL database.
    monkeypatch.setenv("GRIDBOT_STORE_DSN", pg_dsn)
    return pg_dsn


@pytest.fixture
async def wecom():
    fake = FakeWecom()
    await fake.up()
    yield fake
    await fake.down()


@pytest.fixture
def workers():
    """Starts `gridbot run` processes (tests/support/job_worker.py: leases of seconds); stops
    those still running at the end."""
    started: list[subprocess.Popen] = []

    def start(config: Path, port: int, **env: str) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-m", "tests.support.job_worker", "run", "--config", str(config),
                                 "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), **env})
        started.append(proc)
        return proc
    yield start
    for p in started:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()


def worker_config(tmp_path: Path, name: str, wecom: FakeWecom, extra: str = "") -> Path:
    """The test config in live mode against `wecom`, on PostgreSQL; a data folder per worker."""
    folder = tmp_path / name
    folder.mkdir()
    base = on_store("postgres").replace('mode = "emulator"', 'mode = "live"', 1)
    base = base.replace("[aibot]", f'api_base = "{wecom.url}"\n\n[aibot]', 1)
    base = base.replace("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=", f"{wecom.url}webhook/send?key=")
    more = "\n[reports]\nrepeat_minutes = 0\n\n[transport]\ntimeout_seconds = 1\nretry_max_seconds = 1\n" + extra
    return write_config(folder, more, base=base)


async def two_workers(tmp_path, wecom, workers, extra: str = "", **env: str) -> list[int]:
    ports = [free_port(), free_port()]
    procs = [workers(worker_config(tmp_path, name, wecom, extra), port, **env)
             for name, port in zip("ab", ports)]
    for port, proc in zip(ports, procs):
        await wait_listening(port, proc)
    return ports


async def until(cond, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def rows(dsn: str, sql: str) -> list:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


def quantities(wecom: FakeWecom, who: str) -> list[int]:
    return [int(m.group(1)) for t in wecom.texts(who) if (m := ITEM.search(t))]


async def test_a_persons_cap_holds_across_two_workers(tmp_path, on_pg, wecom, workers):
    """Twelve reports from one person, alternately to two workers, with WeCom's per-person cap
    lowered to 5 a minute: the person gets 5 replies in that minute, not 5 from each worker, and
    the others wait in the table (folded into a summary once the minute is over)."""
    ports = await two_workers(tmp_path, wecom, workers, JOB_WORKER_APP_PER_MINUTE="5")
    for i in range(1, 13):
        assert await post(ports[i % 2], "lisi", f"55{i:05d}", f"清理小广告{i}处") == 200
    await until(lambda: len(wecom.texts("lisi")) >= 5)
    await asyncio.sleep(4)  # time for a sixth to show, if the cap did not hold
    got = quantities(wecom, "lisi")
    assert len(wecom.texts("lisi")) == 5 and len(set(got)) == 5
    waiting = await rows(on_pg, "SELECT count(*) AS n FROM outbox WHERE state = 'queued' AND lane = 'app:lisi'")
    assert waiting[0]["n"] == 7


async def test_the_enterprise_cap_holds_across_two_workers(tmp_path, on_pg, wecom, workers):
    """[transport] api_per_minute = 12 for the enterprise, two workers answering ten people's
    reports: together they call WeCom at the shared pace (a first call, then one every 5.5 s; at
    most 12 in any minute), where each on its own pace would make twice the calls."""
    ports = await two_workers(tmp_path, wecom, workers, "api_per_minute = 12\napi_per_hour = 0\n")
    for i in range(1, 11):
        assert await post(ports[i % 2], PEOPLE[i % len(PEOPLE)], f"44{i:05d}", f"清理小广告{i}处") == 200
    await until(lambda: len(wecom.delivered) >= 1)
    await asyncio.sleep(12)
    # The database's buckets: one call at once, then 11 a minute: about 3 in these 12 s.
    assert 2 <= len(wecom.delivered) <= 4, len(wecom.delivered)
    sent = [q for who in PEOPLE for q in quantities(wecom, who)]
    assert len(sent) == len(set(sent))  # none twice


async def test_a_worker_killed_mid_send_its_messages_are_finished_by_the_other_once(tmp_path, on_pg, wecom, workers):
    """Worker a takes twenty reports; WeCom takes the first reply to each person but never
    answers, so a holds those five people's lanes, retrying. b runs beside it and sends nothing
    to them (a holds them). a is killed -9: once its lease runs out b takes the lanes over, sends
    the five in-flight replies again with the same request (WeCom's duplicate check drops them)
    and the fifteen behind them: each person reads each reply once, in order."""
    ports = [free_port(), free_port()]
    a = workers(worker_config(tmp_path, "a", wecom), ports[0])
    await wait_listening(ports[0], a)
    wecom.stall_next("message/send", 10_000)
    sent: dict[str, list[int]] = {p: [] for p in PEOPLE}
    for i in range(1, 21):
        who = PEOPLE[i % len(PEOPLE)]
        sent[who].append(i)
        assert await post(ports[0], who, f"33{i:05d}", f"清理小广告{i}处") == 200
    b = workers(worker_config(tmp_path, "b", wecom), ports[1])
    await wait_listening(ports[1], b)
    await until(lambda: len(wecom.delivered) >= 5)
    await asyncio.sleep(1.5)
    assert len(wecom.delivered) == 5  # b did not send to the lanes a holds
    a.kill()
    assert a.wait(10) == -signal.SIGKILL
    wecom.stalls.clear()

    await until(lambda: len(wecom.delivered) >= 20)
    await asyncio.sleep(1.5)  # time for a second copy to show
    for who, qty in sent.items():
        assert quantities(wecom, who) == qty, who
    assert len(wecom.delivered) == 20 and wecom.suppressed >= 5
    ended = await rows(on_pg, "SELECT state, holder FROM outbox")
    assert {r["state"] for r in ended} == {"sent"} and len(ended) == 20
    assert all(f":{b.pid}:" in r["holder"] for r in ended)


async def test_a_job_fire_taken_over_pushes_each_message_once(tmp_path, on_pg, wecom, workers):
    """Worker a runs the weekly bulletin: its pushes to both groups are kept in the outbox and
    reach the groups, but WeCom's answers never come; a dies -9 before the run is marked
    finished. b takes the fire over and runs the job again from the start: its pushes have the
    same keys (schedule, fire time, group, part), so none is added twice; a's two, whose answer
    never came, are not pushed again (a robot cannot drop a repeat): each group reads its
    bulletin once."""
    now = datetime.now(TZ).replace(second=0, microsecond=0)
    due = now - timedelta(minutes=5)
    schedule = f'\n[[schedules]]\nname = "周一网格通报"\njob = "weekly_tally"\ncron = "{due.minute} {due.hour} * * *"\n'
    seed = worker_config(tmp_path, "seed", wecom, schedule)
    store = store_for(load_config(seed))
    store.load()
    await store.start()
    await store.put("meta", {"id": "first_start", "at": (now - timedelta(minutes=30)).isoformat()})
    await store.close()

    marker = tmp_path / "ran"
    ports = [free_port(), free_port()]
    wecom.stall_next("webhook/send", 2)
    a = workers(worker_config(tmp_path, "a", wecom, schedule), ports[0],
                JOB_WORKER_HANG=f"weekly_tally={marker}", JOB_WORKER_HANG_AFTER="1")
    await until(lambda: marker.exists() or a.poll() is not None, 60)
    assert marker.read_text() == due.isoformat()
    await until(lambda: len(wecom.texts("k1")) == 1 and len(wecom.texts("k2")) == 1)
    a.kill()
    assert a.wait(10) == -signal.SIGKILL
    wecom.stalls.clear()

    b = workers(worker_config(tmp_path, "b", wecom, schedule), ports[1])
    await wait_listening(ports[1], b)
    fire: list = []

    async def finished() -> bool:
        fire[:] = await rows(on_pg, "SELECT takeovers, ok, finished_at FROM job_fires")
        return bool(fire) and fire[0]["finished_at"] is not None
    deadline = time.monotonic() + 40
    while not await finished():
        assert time.monotonic() < deadline, "the fire was not taken over"
        await asyncio.sleep(0.2)
    pushes: list = []

    async def ended() -> bool:
        pushes[:] = await rows(on_pg, "SELECT key, state FROM outbox WHERE lane LIKE 'robot:%'")
        return len(pushes) == 2 and all(r["state"] != "queued" for r in pushes)
    while not await ended():
        assert time.monotonic() < deadline + 20, "a's pushes were not taken over"
        await asyncio.sleep(0.2)
    await asyncio.sleep(1)  # time for a second bulletin to show
    assert [(r["takeovers"], r["ok"]) for r in fire] == [(1, True)]
    for key in ("k1", "k2"):
        [bulletin] = wecom.texts(key)
        assert "周通报" in bulletin
    assert all(r["key"].startswith("周一网格通报|") and r["state"] == "uncertain" for r in pushes)


async def test_a_reply_waiting_for_a_turn_goes_before_any_workers_pushes(on_pg, tmp_path):
    """The database's turns (outbox_slots, migration 0040) at 60 a minute: a reply that has to wait
    holds back the pushes of every worker until it had its turn, and takes the next one."""
    from bot.store_pg import PgStore
    store = PgStore(tmp_path, on_pg)
    store.load()
    db = store._open()

    def turn(reply: bool, now: float) -> float:
        [wait] = db.run(lambda c: c.fetchval("SELECT outbox_slots('{NULL}', '{\"\"}', '', $1, '{0}', $2, 60, 0, 1.0)",
                                             [reply], now))
        return wait
    try:
        t = 1_000_000.0
        assert turn(False, t) == 0  # worker a's push takes the one free turn
        reply_wait = turn(True, t + 0.1)  # worker b's reply must wait for the next
        assert 0 < reply_wait <= 1.1
        assert turn(False, t + 0.2) >= reply_wait - 0.1  # a's next push waits behind the reply
        assert turn(False, t + 0.1 + reply_wait) > 0  # even once a turn is free again …
        assert turn(True, t + 0.1 + reply_wait) == 0  # … it is the reply's
    finally:
        db.close()


async def test_rows_that_ended_a_week_ago_are_deleted_and_nothing_else(on_pg, tmp_path):
    """The table does not grow for ever: what ended more than KEEP_DAYS ago goes; what ended
    lately (the caps' history) and what still waits stay."""
    from bot.clock import FakeClock
    from bot.pg_drain import KEEP_DAYS, Drainer
    from bot.pg_outbox import PgOutbox
    from bot.store_pg import PgStore
    store = PgStore(tmp_path, on_pg)
    store.load()
    outbox = PgOutbox(store, FakeClock(TZ, datetime(2026, 11, 25, 9, 30, tzinfo=TZ)), reply_seconds=3600)
    now = time.time()
    old = now - KEEP_DAYS * 86400 - 60
    db = store._open()
    try:
        for n, (state, t1) in enumerate([("sent", old), ("uncertain", old), ("sent", now - 60), ("queued", None)]):
            db.run(lambda c: c.execute(
                "INSERT INTO outbox (id, lane, reply, created, until, msg, state, t1) "
                "VALUES ($1, 'app:lisi', false, $2, $3, '{}', $4, $5)", f"O{n}", old, now, state, t1))
        assert await Drainer(outbox, None).prune() == 2  # type: ignore[arg-type]
        left = db.run(lambda c: c.fetch("SELECT id FROM outbox ORDER BY id"))
        assert [r["id"] for r in left] == ["O2", "O3"]
    finally:
        db.close()
