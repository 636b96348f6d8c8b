"""Two processes on one PostgreSQL database see each other's writes: the changes feed followed (bot.pg_feed)."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import date

import asyncpg
import pytest

from bot.app import create_app
from bot.config_loading import load_config
from bot.journal import dumps
from bot.store_pg import PgStore

from tests.support.factories import BotHarness, on_store, write_config

TODAY = date(2026, 11, 25)
WEEK = "2026-W48"
DEADLINE = 5.0  # seconds; followed within about one poll, the margin is for a loaded machine


@pytest.fixture
async def stores(tmp_path, pg_dsn):
    """Opens PgStores on the test's database as processes would (own data folders), and closes
    those still open at the end."""
    made: list[PgStore] = []

    async def open_store(name: str, start: bool = True) -> PgStore:
        store = PgStore(tmp_path / name, pg_dsn)
        made.append(store)
        store.load(today=TODAY)
        if start:
            await store.start()
        return store
    yield open_store
    for store in made:
        if store._bridge is not None:
            await store.close()


async def until(check, what: str) -> None:
    """Poll `check` until true or the deadline passes (never a fixed sleep)."""
    end = time.monotonic() + DEADLINE
    while not check():
        assert time.monotonic() < end, f"not followed within {DEADLINE} s: {what}"
        await asyncio.sleep(0.02)


def report(key: str, userid: str = "lisi", grid: str = "g1", text: str = "清理小广告15处") -> dict:
    return {"id": key, "userid": userid, "grid": grid, "text": text, "work_date": "2026-11-25",
            "status": "active", "items": {"清理小广告": 15}}


async def test_a_report_and_a_checkin_written_by_one_process_are_seen_by_the_other(stores):
    a, b = await stores("a"), await stores("b")
    await a.put("reports", report("R1"), shard=WEEK)
    await a.put("checkins", {"id": "C1", "userid": "wangwu", "grid": "g1", "date": "2026-11-25"}, shard=WEEK)
    await a.put("problems", {"id": "P1", "status": "open", "grid": "g1", "text": "楼道堆物"})

    await until(lambda: b.get("reports", "R1", deep=False) is not None, "the report")
    await until(lambda: "wangwu" in b.days.present(WEEK, "2026-11-25", "g1"), "who checked in")
    await until(lambda: [p["id"] for p in b.days.not_closed("g1")] == ["P1"], "the grid's open problem")
    assert b.get("reports", "R1")["text"] == "清理小广告15处"
    assert [r["id"] for r in b.docs_by("reports", "userid", "lisi", [WEEK])] == ["R1"]
    assert "2026-11-25" in b.days.report_days(WEEK, "g1")
    assert a.stats()["followed"] == 0  # its own changes were skipped, applied at commit


async def test_an_update_and_a_move_between_weeks_are_followed(stores):
    a, b = await stores("a"), await stores("b")
    await a.put("reports", report("R1"), shard="2026-W47")
    await until(lambda: b.get("reports", "R1", deep=False) is not None, "the report")
    await a.put("reports", report("R1", text="入户走访12户"), shard="2026-W47")
    await until(lambda: b.get("reports", "R1")["text"] == "入户走访12户", "the update")
    assert b.stats()["followed"] >= 1

    await a.put("reports", {**report("R1", text="入户走访12户"), "work_date": "2026-11-26"}, shard=WEEK)
    await until(lambda: b.shard_of("reports", "R1") == WEEK, "the move")
    assert [r["id"] for r in b.docs_by("reports", "userid", "lisi", ["2026-W47"])] == []
    assert [r["id"] for r in b.docs_by("reports", "userid", "lisi", [WEEK])] == ["R1"]
    assert "2026-11-25" not in b.days.report_days("2026-W47", "g1")  # the old week's sums let it go


async def test_a_move_to_a_week_the_follower_does_not_hold_leaves_the_old_week(stores):
    a, b = await stores("a"), await stores("b")
    await a.put("reports", report("R1"), shard=WEEK)
    await until(lambda: b.get("reports", "R1", deep=False) is not None, "the report")
    await a.put("reports", report("R1"), shard="2026-W30")  # far beyond what B holds
    await until(lambda: b.get("reports", "R1", deep=False) is None, "the move away")
    assert not b.held("2026-W30", "reports")
    assert b.get("reports", "R1")["id"] == "R1"  # read from the database when asked for


async def _write_change(conn: asyncpg.Connection, key: str) -> int:
    """What PgStore.put_many writes, by hand: the xid first, a document, a change."""
    await conn.fetchval("SELECT pg_current_xact_id()")
    await conn.execute("INSERT INTO docs (shard, tbl, id, doc) VALUES ($1, 'reports', $2, $3::json)",
                       WEEK, key, dumps(report(key)).decode())
    return await conn.fetchval("INSERT INTO changes (ops) VALUES ($1::json) RETURNING seq",
                               dumps([["reports", WEEK, key]]).decode())


@pytest.fixture
async def connection(pg_dsn):
    """A connection of a process other than the stores', for transactions held open by hand."""
    conns = []

    async def connect() -> asyncpg.Connection:
        conns.append(await asyncpg.connect(pg_dsn))
        return conns[-1]
    yield connect
    for conn in conns:
        await conn.close()


async def test_a_lower_seq_committed_after_a_higher_one_is_not_skipped(stores, connection):
    b = await stores("b")
    await b.put("reports", report("R0"), shard=WEEK)  # the week's partition and table exist
    first, second = await connection(), await connection()
    slow, fast = first.transaction(), second.transaction()
    await slow.start()
    await fast.start()
    low = await _write_change(first, "R1")
    high = await _write_change(second, "R2")
    assert low < high
    await fast.commit()  # seq `high` is visible, `low` is not yet
    await b._feed._round()  # a round while the lower one is still in flight
    await slow.commit()

    await until(lambda: b.get("reports", "R1", deep=False) is not None, "the change committed second")
    await until(lambda: b.get("reports", "R2", deep=False) is not None, "the change committed first")
    assert b._feed.done >= high and not b._feed.gaps


async def test_a_seq_held_by_a_transaction_newer_than_the_snapshots_xmax_is_not_passed_over(stores, connection):
    """A snapshot's xmax is the newest finished xid + 1: a transaction with a newer xid, still
    running, is in no snapshot's xip. Its seq, missing below a visible one, must be waited for."""
    b = await stores("b")
    await b.put("reports", report("R0"), shard=WEEK)
    feed = b._feed
    await feed.stop()  # its rounds are run by hand below, with no other transaction finishing between
    first, second = await connection(), await connection()
    older, newer = second.transaction(), first.transaction()
    await older.start()
    await second.fetchval("SELECT pg_current_xact_id()")  # the older xid
    await newer.start()
    low = await _write_change(first, "R1")  # the newer xid takes the lower seq
    high = await _write_change(second, "R2")
    assert low < high
    await older.commit()  # the newest finished xid is now below the one holding `low`
    await feed._round()
    await newer.commit()
    while feed.gaps or feed.done < high:
        await feed._round()
    assert b.get("reports", "R1", deep=False) is not None
    assert b.get("reports", "R2", deep=False) is not None


async def test_a_rolled_back_seq_does_not_hold_the_follower(stores, connection):
    a, b = await stores("a"), await stores("b")
    await a.put("reports", report("R0"), shard=WEEK)
    conn = await connection()
    tx = conn.transaction()
    await tx.start()
    await _write_change(conn, "R9")
    await tx.rollback()  # its seq is never committed
    await a.put("reports", report("R1"), shard=WEEK)
    await until(lambda: b.get("reports", "R1", deep=False) is not None, "the change after the hole")
    assert b.get("reports", "R9") is None


async def test_a_follower_that_was_stopped_catches_up_at_start(stores):
    a, b = await stores("a"), await stores("b")
    await b.close()
    await a.put("reports", report("R1"), shard=WEEK)  # while B is down: B loads it from the tables
    b = await stores("b", start=False)
    await a.put("reports", report("R2"), shard=WEEK)  # after B's load, before it follows
    await b.start()
    await a.put("reports", report("R3"), shard=WEEK)
    await until(lambda: all(b.get("reports", k, deep=False) for k in ("R1", "R2", "R3")), "R1..R3")
    assert len(b.docs_by("reports", "userid", "lisi", [WEEK])) == 3


async def test_the_follower_starts_below_a_change_still_in_flight_when_the_tables_were_read(stores, connection):
    a = await stores("a")
    await a.put("reports", report("R0"), shard=WEEK)
    conn = await connection()
    tx = conn.transaction()
    await tx.start()
    await _write_change(conn, "R1")  # its seq taken, not committed
    await a.put("reports", report("R2"), shard=WEEK)  # a higher seq, committed
    b = await stores("b")  # its load sees R2, not R1
    await tx.commit()
    await until(lambda: b.get("reports", "R1", deep=False) is not None, "the change in flight at load")


async def test_a_table_read_in_a_thread_gets_the_changes_made_meanwhile(stores):
    a, b = await stores("a"), await stores("b")
    await a.put("reports", report("R1"), shard="2026-W30")
    await until(lambda: "reports" in b._files.get("2026-W30", ()), "the old week's table")
    read, go_on, fetch = threading.Event(), threading.Event(), b._fetch

    def slow_fetch(shard: str, table: str) -> dict:
        docs = fetch(shard, table)
        read.set()
        go_on.wait(DEADLINE)
        return docs
    b._fetch = slow_fetch
    building = asyncio.create_task(b._build_later("2026-W30", "reports"))  # as the warm-up does
    await asyncio.to_thread(read.wait, DEADLINE)
    await a.put("reports", report("R1", text="入户走访12户"), shard="2026-W30")
    await until(lambda: "R1" in b._feed.building.get(("2026-W30", "reports"), ()), "the change noted")
    go_on.set()
    built, _ = await building
    b._adopt("2026-W30", "reports", built)
    assert b.get("reports", "R1", deep=False)["text"] == "清理小广告15处"  # as read
    await until(lambda: b.get("reports", "R1", deep=False)["text"] == "入户走访12户", "the change made while reading")


async def test_an_own_write_is_not_undone_by_a_version_read_before_it(stores):
    a, b = await stores("a"), await stores("b")
    await a.put("reports", report("R1"), shard=WEEK)
    await until(lambda: b.get("reports", "R1", deep=False) is not None, "the report")
    feed = b._feed
    await feed.stop()  # its rounds are run by hand below, to order them against B's own write
    await a.put("reports", report("R1", text="入户走访12户"), shard=WEEK)
    feed.own = {}
    read = await b._open().arun(lambda c: feed._read(c, set()))  # sees A's update only
    await b.put("reports", report("R1", text="巡查3次"), shard=WEEK)  # B's own, committed later
    feed._apply_round(*read[:3], set())
    assert b.get("reports", "R1")["text"] == "巡查3次"
    assert [r["text"] for r in b.docs_by("reports", "userid", "lisi", [WEEK])] == ["巡查3次"]
    await until(lambda: a.get("reports", "R1")["text"] == "巡查3次", "B's write at A")


async def test_the_feed_is_pruned_after_a_day(stores):
    a = await stores("a")
    a._feed._pruned = time.monotonic()  # its own hourly prune would race this test's
    await a.put("reports", report("R1"), shard=WEEK)
    await a.put("reports", report("R2"), shard=WEEK)
    await a._open().arun(lambda c: c.execute(
        "UPDATE changes SET at = now() - interval '25 hours' WHERE seq = (SELECT min(seq) FROM changes)"))
    assert await a._feed.prune() == 1
    assert await a._open().arun(lambda c: c.fetchval("SELECT count(*) FROM changes")) == 1


async def test_a_report_to_one_bot_is_in_this_weeks_answer_of_another(tmp_path, pg_dsn, aiohttp_client, clock,
                                                                     monkeypatch):
    monkeypatch.setenv("GRIDBOT_STORE_DSN", pg_dsn)
    bots = []
    for name in ("a", "b"):  # two processes' worth: two apps, two data folders, one database
        folder = tmp_path / name
        folder.mkdir()
        app = create_app(load_config(write_config(folder, base=on_store("postgres"))), clock=clock)
        client = await aiohttp_client(app)
        bot = BotHarness(app, client, clock)
        bot.emulator.set_origin(str(client.make_url("")).rstrip("/"))
        bots.append(bot)
    a, b = bots
    await b.text("lisi", "本周")
    assert "小广告清理" not in b.last_reply("lisi")

    await a.text("lisi", "清理小广告15处")
    assert "15" in a.last_reply("lisi")
    await until(lambda: b.store.docs_by("reports", "userid", "lisi", [WEEK]), "the report at bot B")
    await b.text("lisi", "本周")
    answer = b.last_reply("lisi")
    assert "小广告清理 15处" in answer, answer
