"""The weeks' counts PostgreSQL keeps in `week_counts`, written in the transaction of the
documents (bot/migrations/0060_counts.sql, bot.pg_counts), and read by `gridbot stats`."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import asyncpg
import pytest

from bot.pg_bridge import PgBridge
from bot.pg_counts import fold, recount, week_counts
from bot import pg_migrate
from bot.pg_migrate import migrate_to_postgres
from bot.pg_schema import migrate, migration_files
from bot.store import Store
from bot.store_pg import PgStore
from bot.week_counts import count_checkins, count_reports

from tests.bot.test_pg_migrate import made_by_the_bot
from tests.support.factories import on_store, write_config

TODAY = date(2026, 11, 25)
FILE_STORE = on_store("tinydb")
W47, W48 = "2026-W47", "2026-W48"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def store(tmp_path, pg_dsn):
    s = PgStore(tmp_path / "data", pg_dsn)
    s.load(today=TODAY)
    await s.start()
    yield s
    await s.close()


def report(key: str, grid: str = "g1", items: int = 1, **kw) -> dict:
    return {"id": key, "userid": "lisi", "grid": grid, "status": "active",
            "items": [{"category": "ads", "quantity": 5, "unit": "处"}] * items, **kw}


def kept(store: PgStore, week: str, table: str) -> dict[str, int]:
    """The table's numbers, after checking they are what the week's documents give, counted
    both by the server and in Python."""
    numbers = store._open().run(lambda c: week_counts(c, week, table))
    assert numbers == store._open().run(lambda c: recount(c, week, table))
    docs = [json.loads(r[0]) for r in store._query("SELECT doc::text FROM docs WHERE shard = $1 AND tbl = $2",
                                                     week, table)]
    assert numbers == (count_reports if table == "reports" else count_checkins)(docs)
    return numbers


async def test_counts_follow_a_report_replaced_withdrawn_and_moved_to_another_week(store):
    await store.put("reports", report("R1", items=2), shard=W47)
    await store.put("reports", report("R2", grid="g2"), shard=W47)
    assert kept(store, W47, "reports") == {"reports": 2, "reports_counted": 2, "items": 3}

    await store.put("reports", report("R1", items=3, unconfirmed=True), shard=W47)  # replaced
    assert kept(store, W47, "reports") == {"reports": 2, "reports_counted": 1, "items": 4}
    await store.put("reports", report("R2", grid="g2", status="withdrawn"), shard=W47)  # 撤回
    assert kept(store, W47, "reports") == {"reports": 1, "reports_counted": 0, "items": 3}

    # Its work date corrected to this week: it leaves last week's counts and joins this week's.
    await store.put("reports", report("R1", items=3), shard=W48)
    assert kept(store, W47, "reports") == {"reports": 0, "reports_counted": 0, "items": 0}
    assert kept(store, W48, "reports") == {"reports": 1, "reports_counted": 1, "items": 3}
    assert store.counted(W48, "reports") == {"reports": 1, "reports_counted": 1, "items": 3}

    # Each write added a row of what it changed; folded, one row per grid holds the same sums.
    assert len(store._query("SELECT 1 FROM week_counts WHERE shard = $1", W47)) > 2
    store._open().run(fold)
    grids = store._query("SELECT shard, grid, reports, items FROM week_counts WHERE tbl = 'reports' ORDER BY 1, 2")
    assert [tuple(r) for r in grids] == [(W48, "g1", 1, 3)]  # last week's all came to nothing
    assert kept(store, W48, "reports") == {"reports": 1, "reports_counted": 1, "items": 3}


async def test_counts_of_checkins_follow_a_duplicate_flag_and_a_batch_naming_one_twice(store):
    await store.put_many([("checkins", {"id": "C1", "grid": "g1", "counted": True, "flags": []}, W48),
                          ("checkins", {"id": "C2", "grid": "g1", "counted": False, "flags": ["duplicate"]}, W48),
                          ("checkins", {"id": "C2", "grid": "g1", "counted": True, "flags": []}, W48)])
    assert kept(store, W48, "checkins") == {"checkins": 2, "duplicates": 0, "flagged_checkins": 0}
    assert store.get("checkins", "C2")["counted"] is True  # the later of the two versions, as before
    await store.put("checkins", {"id": "C1", "grid": "g1", "counted": False, "flags": ["duplicate"]}, shard=W48)
    assert kept(store, W48, "checkins") == {"checkins": 1, "duplicates": 1, "flagged_checkins": 1}


async def test_the_server_takes_a_field_as_true_exactly_when_python_does(store):
    values = [True, False, 1, 0, 0.0, 2.5, "0", "", "是", [], [0], {}, {"a": 1}, None]
    await store.put_many([("checkins", {"id": f"C{i}", "grid": "g1", "counted": v}, W48) for i, v in enumerate(values)] +
                         [("checkins", {"id": "C99", "grid": "g1"}, W48)])  # no field at all
    assert kept(store, W48, "checkins")["checkins"] == sum(1 for v in values if v)


def statements(monkeypatch) -> list[tuple[int, str]]:
    """What the pooled connections send from now on, one entry a round trip (a pipelined
    executemany is one; the pool's reset on release is left out, being asyncpg's own), with the
    connection that sent it."""
    sent: list[tuple[int, str]] = []
    conn_cls = asyncpg.connection.Connection

    def counting(name: str, only_plain: bool = False):
        original = getattr(conn_cls, name)

        async def wrapper(self, query, *args, **kw):
            text = query if isinstance(query, str) else name
            # execute(q, *args) goes through _execute; the pool's reset is its own
            if not (only_plain and args) and not text.startswith("SELECT pg_advisory_unlock_all()"):
                sent.append((id(self), text))
            return await original(self, query, *args, **kw)
        monkeypatch.setattr(conn_cls, name, wrapper)
    counting("_execute")
    counting("_executemany")
    counting("execute", only_plain=True)
    return sent


async def test_a_write_is_one_round_trip_to_the_server(store, monkeypatch):
    await store.put("reports", report("R1"), shard=W48)  # the week's partition made
    await store._feed.stop()  # the follower's own reads are not the write's
    pool = store._open().pool
    for _ in range(500):  # and its connection back in the pool (rolled back when it was stopped)
        if pool.get_idle_size() == pool.get_size():
            break
        await asyncio.sleep(0.01)
    sent = statements(monkeypatch)
    await store.put_many([("reports", report("R2"), W48), ("inbox", {"id": "m-1", "text": "清理小广告5处"}, W48)])
    writer = [conn for conn, text in sent if "gridbot_put" in text]
    assert len(writer) == 1 and [text for conn, text in sent if conn == writer[0]] == [
        f"SELECT * FROM gridbot_put({', '.join(f'${i}' for i in range(1, 16))})"], sent
    assert store.get("reports", "R2") is not None and kept(store, W48, "reports")["reports"] == 2


async def test_two_processes_replacing_the_same_documents_at_once_keep_the_counts_exact(store, tmp_path, pg_dsn):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writers = [subprocess.Popen([sys.executable, "-m", "tests.support.count_writer", pg_dsn,
                                 str(tmp_path / f"w{i}"), str(i), "150"], cwd=ROOT, env=env,
                                stderr=subprocess.PIPE, text=True) for i in (1, 2)]
    while any(w.poll() is None for w in writers):  # folds meanwhile, as a third process's sweep would
        await asyncio.to_thread(store._open().run, fold)
        await asyncio.sleep(0.05)
    for w in writers:
        _, err = await asyncio.to_thread(w.communicate, timeout=120)
        assert w.returncode == 0, err
    written = store._query("SELECT count(*) FROM docs WHERE tbl IN ('reports', 'checkins')")[0][0]
    assert written >= 8  # both wrote: the shared documents exist
    for week in (W47, W48):
        for table in ("reports", "checkins"):
            kept(store, week, table)


async def test_a_database_of_an_earlier_version_gets_its_counts_when_the_bot_starts(tmp_path, pg_dsn):
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    for version, path in migration_files():
        if version < 60:
            (earlier / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    bridge = PgBridge(pg_dsn)
    try:
        bridge.run(lambda c: migrate(c, earlier))
        bridge.run(lambda c: c.execute(f"CREATE TABLE docs_2026_w48 PARTITION OF docs FOR VALUES IN ('{W48}')"))
        bridge.run(lambda c: c.executemany("INSERT INTO docs (shard, tbl, id, doc) VALUES ($1, $2, $3, $4::json)", [
            (W48, "reports", "R1", json.dumps(report("R1", items=2))),
            (W48, "reports", "R2", json.dumps(report("R2", grid="g2", unconfirmed=1))),
            (W48, "checkins", "C1", json.dumps({"id": "C1", "grid": "g1", "counted": True}))]))
        assert bridge.run(lambda c: migrate(c)) == ["0060_counts.sql"]
    finally:
        bridge.close()
    reader = PgStore(tmp_path / "data", pg_dsn, readonly=True)
    reader.load(today=TODAY)
    assert kept(reader, W48, "reports") == {"reports": 2, "reports_counted": 1, "items": 3}
    assert kept(reader, W48, "checkins") == {"checkins": 1, "duplicates": 0, "flagged_checkins": 0}


async def test_stats_reads_the_kept_counts_not_the_documents(store, tmp_path, pg_dsn, monkeypatch):
    await store.put("reports", report("R1", items=2), shard=W47)
    await store.put("checkins", {"id": "C1", "grid": "g1", "counted": True}, shard=W47)
    # The documents read behind the counts' back (no trigger fires): stats still shows the counts
    # kept, which it could not if it counted the documents.
    store._query("ALTER TABLE docs DISABLE TRIGGER USER")
    store._query("DELETE FROM docs WHERE shard = $1", W47)
    store._query("ALTER TABLE docs ENABLE TRIGGER USER")
    monkeypatch.setenv("GRIDBOT_STORE_DSN", pg_dsn)
    (tmp_path / "cfg").mkdir()
    config = write_config(tmp_path / "cfg", base=on_store("postgres"))
    proc = subprocess.run([sys.executable, "-m", "bot.cli", "stats", "--week", W47, "--json", "--config", str(config)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert (result["reports"], result["items"], result["checkins"]) == (1, 2, 1)


@pytest.fixture
def config_path(tmp_path):
    return write_config(tmp_path, base=FILE_STORE)  # the harness's folder is migrated: files, in both runs


async def test_a_migrated_folder_has_its_weeks_counts(harness, tmp_path, pg_dsn, monkeypatch):
    await made_by_the_bot(harness)
    monkeypatch.setattr(pg_migrate, "BATCH", 1)  # a COPY a document: each adds its counts' row
    files = Store(tmp_path / "data", readonly=True)
    files.load(recent_weeks=None, today=TODAY)
    assert migrate_to_postgres(tmp_path / "data", pg_dsn, io.StringIO()) == 0
    moved = PgStore(tmp_path / "data", pg_dsn, readonly=True)
    moved.load(today=TODAY)
    for week, reports in ((W47, 1), (W48, 2)):
        assert kept(moved, week, "reports") == count_reports(files.docs("reports", [week]))
        assert kept(moved, week, "reports")["reports"] == reports
    rows = moved._query("SELECT shard, tbl, grid, count(*) FROM week_counts GROUP BY 1, 2, 3 HAVING count(*) > 1")
    assert rows == []  # folded: one row per week, table and grid
