"""Stateless callback workers on one PostgreSQL database (bot.pg_inbox): three real `gridbot run`
processes behind a round-robin proxy, one killed with -9 under load; and, in one process, two
workers meeting on one sender, on a resend, on a dead worker's messages and on an overtaking fix."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg
import pytest

from bot import pg_inbox
from bot.app import RUNTIME_KEY, create_app
from bot.clock import FakeClock
from bot.config_loading import load_config

from tests.bot.test_durability import free_port, signed_message
from tests.support.factories import TEST_STORE, BotHarness, on_store, write_config
from tests.support.rr_proxy import RoundRobin
from tests.bot.test_outbox_crash import wait_listening
from tests.support.workers import SENDERS, WecomRecorder, start_worker, worker_config

pytestmark = pytest.mark.skipif(TEST_STORE != "postgres", reason="several workers share a PostgreSQL database")

FIRST = 4  # reports each sender sends with one worker behind the proxy, then as many with three
SECOND = 12  # then with three, one of them killed a third of the way through
# (20 replies a person in well under a minute: below the per-person cap, bot.outgoing)
KILL_AT = 0.33
HANDLED_WITHIN = 60.0  # seconds for every acknowledged message to be handled after the load
ANSWERED_WITHIN = 45.0  # … and answered: a dead worker's lanes are taken after pg_drain's lease


# --- three processes behind a proxy ----------------------------------------------------------

async def send_reports(proxy: str, numbers: range, acked: dict, backend_of: dict, on_ack=None,
                       stop=lambda who: False) -> float:
    """Each sender sends "清理小广告{n}处" for n in `numbers`, one after the other as a phone does
    (the next once the last is acknowledged), all senders at once, until stop(sender); a message
    not acknowledged is sent again with the same MsgId, as WeCom does. Returns the seconds it took."""
    async def one_sender(s: aiohttp.ClientSession, who: str) -> None:
        for n in numbers:
            if stop(who):
                return
            msgid = f"9{SENDERS.index(who):02d}{n:04d}"
            q, body = signed_message(who, msgid, f"清理小广告{n}处")
            for _ in range(50):
                try:
                    async with s.post(f"{proxy}/wecom/callback?{q}", data=body) as r:
                        await r.read()
                        if r.status == 200:
                            acked[msgid] = (who, n)
                            backend_of[msgid] = r.headers.get("X-Worker", "")
                            if on_ack is not None:
                                on_ack()
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)
            else:
                raise AssertionError(f"{msgid} never acknowledged")

    started = time.monotonic()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as s:
        await asyncio.gather(*(one_sender(s, who) for who in SENDERS))
    return time.monotonic() - started


async def reports_in(dsn: str) -> list[dict]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT doc::text FROM docs WHERE tbl = 'reports'")
    finally:
        await conn.close()
    return [json.loads(r[0]) for r in rows]


async def until_handled(dsn: str, acked: dict, timeout: float = HANDLED_WITHIN) -> float:
    """Seconds until every acknowledged message has a record (or the timeout passed)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if set(acked) <= {r["msgid"] for r in await reports_in(dsn)}:
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def run_city(folder: Path, dsn: str) -> dict:
    recorder = WecomRecorder()
    api = await recorder.start()
    ports = [free_port() for _ in range(3)]
    backends = [f"http://127.0.0.1:{p}" for p in ports]
    procs = [start_worker(worker_config(folder / f"w{i}", api), p) for i, p in enumerate(ports)]
    proxies: list[RoundRobin] = []
    acked: dict[str, tuple[str, int]] = {}
    backend_of: dict[str, str] = {}
    out: dict = {"recorder": recorder, "acked": acked, "backend_of": backend_of, "killed": backends[1]}
    try:
        await asyncio.gather(*(wait_listening(port, proc) for port, proc in zip(ports, procs)))
        # The same load through one worker, then through three (none killed yet): acknowledged
        # per second, and handled per second (until the last one is recorded).
        rates = []
        for n, numbers in ((1, range(1, FIRST + 1)), (3, range(FIRST + 1, 2 * FIRST + 1))):
            proxy = RoundRobin(backends[:n])
            proxies.append(proxy)
            seconds = await send_reports(await proxy.start(), numbers, acked, backend_of)
            handled = seconds + await until_handled(dsn, acked)
            rates.append((len(SENDERS) * FIRST / seconds, len(SENDERS) * FIRST / handled))
        out["rates"] = rates

        three = RoundRobin(backends)
        proxies.append(three)
        url = await three.start()
        total = len(SENDERS) * SECOND
        kill_after = int(total * KILL_AT)
        sent_now = [0]
        killed_at: list[float] = []

        def maybe_kill() -> None:
            sent_now[0] += 1
            if sent_now[0] == kill_after:
                procs[1].send_signal(signal.SIGKILL)
                killed_at.append(time.monotonic())
        # A quarter of the senders send nothing more after the kill: what the killed worker had in
        # flight of theirs is left to the other workers' sweep, no later message of theirs brings it.
        quiet = set(SENDERS[::4])
        await send_reports(url, range(2 * FIRST + 1, 2 * FIRST + SECOND + 1), acked, backend_of, maybe_kill,
                           stop=lambda who: bool(killed_at) and who in quiet)
        await until_handled(dsn, acked)
        out["handled_after_kill"] = time.monotonic() - killed_at[0]
        await asyncio.sleep(2 * pg_inbox.SWEEP_EVERY + 1)  # a second handling, if any, would show by now
        out["reports"] = await reports_in(dsn)
        # The killed worker's replies still queued in the outbox table go out once its lanes' lease
        # runs out (bot.pg_drain); a reply it never kept is told by a notice instead.
        started = time.monotonic()
        while time.monotonic() - started < ANSWERED_WITHIN and _unanswered(out["reports"], recorder):
            await asyncio.sleep(0.2)
        await asyncio.sleep(1)  # a second answer, if any, would show by now
        conn = await asyncpg.connect(dsn)
        try:
            out["outbox"] = [dict(r) for r in await conn.fetch(
                "SELECT o.seq, o.lane, o.cause, o.state, o.tried, o.holder, l.holder AS lane_holder, "
                "l.lease_until, o.msg::text AS msg FROM outbox o LEFT JOIN outbox_lanes l USING (lane) "
                "")]
            out["done"] = {r[0] for r in await conn.fetch("SELECT id FROM messages WHERE tbl = 'inbox_done'")}
        finally:
            await conn.close()
        out["answered_by"] = {b: sum(1 for v in backend_of.values() if v == b) for b in backends}
        (ack1, done1), (ack3, done3) = rates
        print(f"\n{len(SENDERS)} senders through the proxy, messages/s acknowledged (handled): one worker "
              f"{ack1:.0f} ({done1:.0f}), three workers {ack3:.0f} ({done3:.0f}); one of three killed at "
              f"{kill_after}/{total}: every acknowledged message handled {out['handled_after_kill']:.1f} s "
              f"after the kill; acknowledged by each worker: {list(out['answered_by'].values())}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except Exception:
                p.kill()
        for proxy in proxies:
            await proxy.close()
        await recorder.close()
    return out


@pytest.fixture(scope="module")
def city(pg_server, tmp_path_factory):
    dsn = pg_server.new_schema()
    folder = tmp_path_factory.mktemp("city")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRIDBOT_STORE_DSN", dsn)
        out = asyncio.run(run_city(folder, dsn))
    logs = {p.parent.name: p.read_text(encoding="utf-8") for p in folder.glob("w*/worker.log")}
    swept = {name: sum(int(n) for n in re.findall(r"took over (\d+) open message", text)) for name, text in logs.items()}
    print(f"taken over by the sweep (w1 was killed): {swept}")
    return out


def test_every_acknowledged_message_is_handled_once_in_each_senders_order(city):
    acked, reports = city["acked"], city["reports"]
    per_msgid = Counter(r["msgid"] for r in reports)
    assert set(per_msgid) == set(acked), "a message acknowledged and never handled, or one never sent"
    assert [k for k, n in per_msgid.items() if n > 1] == [], "a message handled twice"
    # In each sender's order: the R numbers (one sequence for every worker) follow the send order.
    by_sender: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    for r in reports:
        quantity = r["items"][0]["quantity"]
        by_sender[r["userid"]].append((int(r["id"][1:]), quantity, r["sent_at"]))
    for who, recs in by_sender.items():
        recs.sort()
        sent = max(n for sender, n in acked.values() if sender == who)
        assert [q for _, q, _ in recs] == list(range(1, sent + 1)), f"{who}: {recs}"
        assert [t for _, _, t in recs] == sorted(t for _, _, t in recs)
    # The killed worker had its share of the load, and the others took the rest.
    assert all(n > 0 for n in city["answered_by"].values()), city["answered_by"]


def _report_replies(recorder: WecomRecorder) -> Counter:
    return Counter(m.group(1) for _, text in recorder.sent if (m := re.match(r"已记录 #(R\d+)", text)))


def test_no_reply_is_sent_twice_among_the_surviving_workers(city):
    replies = _report_replies(city["recorder"])
    assert [rid for rid, n in replies.items() if n > 1] == []
    # Only the messages in flight on the killed worker may miss their reply (their record was
    # written, the reply not sent): at most one per sender, as a sender's messages go one at a time.
    missing = {r["id"] for r in city["reports"]} - set(replies)
    assert len(missing) <= len(SENDERS), sorted(missing)


def _answers(reports: list[dict], recorder: WecomRecorder) -> dict[str, int]:
    """How many answers each record's message got: its reply ("已记录 #R…"), or the notice that its
    reply was lost (replies.REPLY_LOST, quoting the message) when the worker died in between."""
    by_text = {(r["userid"], f"清理小广告{r['items'][0]['quantity']}处"): r["id"] for r in reports}
    count = {r["id"]: 0 for r in reports}
    for who, text in recorder.sent:
        if m := re.match(r"已记录 #(R\d+)", text):
            count[m.group(1)] = count.get(m.group(1), 0) + 1
        elif text.startswith("【补发回复】") and (m := re.search(r"“(清理小广告\d+处)”", text)):
            rid = by_text.get((who, m.group(1)), f"? {who} {m.group(1)}")
            count[rid] = count.get(rid, 0) + 1
    return count


def _unanswered(reports: list[dict], recorder: WecomRecorder) -> bool:
    return any(n == 0 for n in _answers(reports, recorder).values())


def test_every_message_answered_once_across_kill(city):
    """Every record's message answered exactly once, the ones in flight on the killed worker too:
    its replies kept in the outbox table are sent by another worker, and a reply it never kept
    is made up for by the lost-reply notice; nothing twice."""
    answers = _answers(city["reports"], city["recorder"])
    wrong = {r["id"]: (r["userid"], r["msgid"], answers[r["id"]]) for r in city["reports"] if answers[r["id"]] != 1}
    assert answers == {r["id"]: 1 for r in city["reports"]}, (
        wrong, [(m, m in city["done"]) for _, m, _ in wrong.values()],
        [(r["seq"], r["cause"], r["state"], r["tried"], r["msg"][:60]) for r in city["outbox"]
         if r["cause"] in {m for _, m, _ in wrong.values()}],
        {who: [t.split("\n")[0] for t in city["recorder"].replies(who)] for who, _, _ in wrong.values()})


# --- two workers in one process ----------------------------------------------------------------

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 25, 9, 30, tzinfo=TZ)  # a Wednesday


@pytest.fixture
async def workers(aiohttp_client, tmp_path, monkeypatch):
    """Two workers in this process on the test's database (its own data folder each); their
    sweeps asked by hand (sweep()), not on a timer."""
    monkeypatch.setattr(pg_inbox, "SWEEP_EVERY", 3600.0)
    made = []
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        app = create_app(load_config(write_config(folder, "\n[reports]\nrepeat_minutes = 0\n",
                                                  base=on_store("postgres"))), clock=FakeClock(TZ, NOW))
        client = await aiohttp_client(app)
        h = BotHarness(app, client, app[RUNTIME_KEY].clock)
        h.emulator.set_origin(str(client.make_url("")).rstrip("/"))
        made.append(h)
    return made


def inbox_of(h: BotHarness):
    return h.runtime.inbox


def gate(h: BotHarness, monkeypatch) -> tuple[asyncio.Event, asyncio.Event]:
    """Holds the worker's handling of each message until `opened` is set; `entered` says one began."""
    inbox, opened, entered = inbox_of(h), asyncio.Event(), asyncio.Event()
    real = inbox.run

    async def held(event):
        entered.set()
        await opened.wait()
        return await real(event)
    monkeypatch.setattr(inbox, "run", held)
    return opened, entered


def records(h: BotHarness, userid: str) -> list[dict]:
    rows = h.store._query("SELECT doc::text FROM docs WHERE tbl = 'reports'")
    return sorted((d for d in (json.loads(r[0]) for r in rows) if d["userid"] == userid), key=lambda d: int(d["id"][1:]))


def said(workers: list[BotHarness], userid: str) -> list[str]:
    return [r for h in workers for r in h.replies(userid)]


async def test_a_senders_second_message_waits_for_the_first_on_another_worker(workers, monkeypatch):
    a, b = workers
    opened, entered = gate(a, monkeypatch)
    await a.text("lisi", "清理小广告1处", msgid="7001", settle=False)
    await entered.wait()  # worker A is on lisi's first message
    await b.text("lisi", "清理小广告2处", msgid="7002", settle=False)
    await asyncio.sleep(0.3)  # without lisi's lock, B would have recorded the second one by now
    opened.set()
    await a.settle()
    await b.settle()
    assert [(d["msgid"], d["items"][0]["quantity"]) for d in records(a, "lisi")] == [("7001", 1), ("7002", 2)]
    assert [r.split("(")[0] for r in said(workers, "lisi")] == ["已记录 #R1", "已记录 #R2"]


async def test_a_resend_arriving_at_two_workers_at_once_is_handled_once(workers):
    a, b = workers
    await asyncio.gather(a.text("wangwu", "入户走访3户", msgid="7101", settle=False),
                         b.text("wangwu", "入户走访3户", msgid="7101", settle=False))
    await a.settle()
    await b.settle()
    assert [d["msgid"] for d in records(a, "wangwu")] == ["7101"]
    assert len([r for r in said(workers, "wangwu") if r.startswith("已记录")]) == 1


async def test_the_sweep_takes_a_dead_workers_message_once_its_sender_is_free(workers, monkeypatch, pg_dsn):
    a, b = workers

    async def died_after_the_200(event):
        inbox_of(a).finished_elsewhere(event)
    monkeypatch.setattr(inbox_of(a)._pg, "handle", died_after_the_200)
    await a.text("sunqi", "清理小广告4处", msgid="7201")
    await b.store._feed.catch_up()
    # Another worker is still on sunqi (holds the sender's lock): the sweep leaves it be.
    busy = await asyncpg.connect(pg_dsn)
    try:
        assert await busy.fetchval("SELECT pg_try_advisory_lock($1, hashtext('sunqi'))", pg_inbox.SENDER_LOCKS)
        assert await inbox_of(b)._pg.sweep(stale_after=0) == 0
        assert records(b, "sunqi") == []
    finally:
        await busy.close()  # that worker dies: the server lets its lock go
    assert await inbox_of(b)._pg.sweep(stale_after=0) == 1
    await b.settle()
    assert [d["msgid"] for d in records(b, "sunqi")] == ["7201"]
    assert b.last_reply("sunqi").startswith("已记录 #R1")
    # Done: no worker takes it again.
    assert await inbox_of(b)._pg.sweep(stale_after=0) == 0
    assert await inbox_of(a)._pg.sweep(stale_after=0) == 0
    assert len(records(b, "sunqi")) == 1


async def test_a_message_recorded_by_a_worker_that_died_before_its_done_mark_gets_no_second_record(
        workers, monkeypatch):
    a, b = workers

    async def died_before_the_mark(key, shard):
        pass
    monkeypatch.setattr(inbox_of(a)._pg, "_mark_done", died_before_the_mark)
    await a.text("zhouba", "清理小广告6处", msgid="7301")
    assert a.last_reply("zhouba").startswith("已记录 #R1")
    await b.store._feed.catch_up()
    assert await inbox_of(b)._pg.sweep(stale_after=0) == 1
    await b.settle()
    assert [d["msgid"] for d in records(b, "zhouba")] == ["7301"]
    assert not any(r.startswith("已记录") for r in b.replies("zhouba"))
    assert b.store._query("SELECT id FROM messages WHERE tbl = 'inbox_done'")[0][0] == "7301"


async def test_a_message_whose_worker_died_between_its_record_and_its_reply_gets_the_lost_reply_notice(
        workers, monkeypatch):
    """Taken over while the bot runs (not at a start): the other worker still tells the person
    that the message was handled and its reply lost, once."""
    a, b = workers

    async def died_before_the_mark(key, shard):
        pass
    monkeypatch.setattr(inbox_of(a)._pg, "_mark_done", died_before_the_mark)
    monkeypatch.setattr(a.runtime.outbox, "add", lambda msg: None)  # its reply never kept
    monkeypatch.setattr(a.runtime.transport, "_queue", lambda msg: None)
    await a.text("zhouba", "清理小广告7处", msgid="7401")
    assert said(workers, "zhouba") == []
    await b.store._feed.catch_up()
    assert await inbox_of(b)._pg.sweep(stale_after=0) == 1
    await b.settle()
    assert [d["msgid"] for d in records(b, "zhouba")] == ["7401"]
    [notice] = said(workers, "zhouba")
    assert notice.startswith("【补发回复】") and "“清理小广告7处”已处理" in notice


async def test_a_fix_on_one_worker_waits_for_the_problem_still_being_handled_on_another(workers, monkeypatch):
    a, b = workers
    opened, entered = gate(a, monkeypatch)
    await a.text("lisi", "问题:幸福路3号楼下堆放建筑垃圾", settle=False)
    await entered.wait()
    asyncio.get_running_loop().call_later(0.5, opened.set)  # A finishes the problem half a second later
    await b.text("zhangsan", "整改 #P1 已清理")
    await a.settle()
    assert not any("没有找到" in r for r in b.replies("zhangsan")), b.replies("zhangsan")
    problem = b.store._query("SELECT doc::text FROM docs WHERE tbl = 'problems' AND id = 'P1'")[0][0]
    assert any(h.get("by") == "zhangsan" for h in json.loads(problem)["history"][1:])
