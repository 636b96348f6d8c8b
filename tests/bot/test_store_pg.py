"""The PostgreSQL store against a real server (tests/support/postgres.py), in both test runs."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from bot.config_loading import ConfigError, load_config
from bot.pg_bridge import PgBridge, StoreUnavailable
from bot.pg_schema import migrate
from bot.store_pg import PgStore
from bot.week_counts import count_checkins, count_reports

from tests.bot.test_durability import free_port, killed_under_load, start_bot, stop_cleanly, wait_ready
from tests.support.factories import on_store, write_config
from tests.support.postgres import PASSWORD

TODAY = date(2026, 11, 25)
PG_CONFIG = on_store("postgres")
REPORTS = '\n[reports]\nrepeat_minutes = 0\n'


@pytest.fixture
def config_path(tmp_path, pg_dsn, monkeypatch):
    """The harness of this module runs on PostgreSQL, in both test runs."""
    monkeypatch.setenv("GRIDBOT_STORE_DSN", pg_dsn)
    return write_config(tmp_path, base=PG_CONFIG)


async def opened(data: Path, dsn: str) -> PgStore:
    store = PgStore(data, dsn)
    store.load(today=TODAY)
    await store.start()
    return store


def reader(data: Path, dsn: str) -> PgStore:
    store = PgStore(data, dsn, readonly=True)
    store.load(recent_weeks=None, today=TODAY)
    return store


async def test_kill_9_right_after_the_200_loses_nothing(tmp_path, pg_dsn, monkeypatch):
    monkeypatch.setenv("GRIDBOT_STORE_DSN", pg_dsn)
    config = write_config(tmp_path, extra=REPORTS, base=PG_CONFIG)
    acked = await killed_under_load(config, 200, 80)

    assert not (tmp_path / "data" / "db" / "journal").exists()  # PostgreSQL, not the files, held them
    store = reader(tmp_path / "data", pg_dsn)
    by_msgid: dict[str, int] = {}
    for r in store.docs("reports"):
        by_msgid[r["msgid"]] = by_msgid.get(r["msgid"], 0) + 1
    assert all(c == 1 for c in by_msgid.values()), "a message was stored twice"
    assert [m for m in acked if m not in by_msgid] == [], "an acknowledged message was lost"
    assert len({r["id"] for r in store.docs("reports")}) == len(by_msgid)  # no R number given twice
    stats = subprocess.run([sys.executable, "-m", "bot.cli", "stats", "--json", "--config", str(config)],
                           capture_output=True, text=True, check=True, cwd=tmp_path)
    assert json.loads(stats.stdout)["reports"] == len(by_msgid)


async def test_a_resend_from_another_process_is_stored_once(tmp_path, pg_dsn):
    a, b = await opened(tmp_path / "a", pg_dsn), await opened(tmp_path / "b", pg_dsn)
    try:
        raw = {"id": "wx:1001", "event": {"content": "清理小广告3处"}, "received": 1}
        await a.put("inbox", raw, shard="2026-W48")
        # b has not seen it (its memory is its own): the database keeps the first copy.
        await b.put("inbox", {**raw, "received": 2}, shard="2026-W48")
        rows = a._query("SELECT doc::text FROM messages WHERE id = 'wx:1001'")
        assert len(rows) == 1 and json.loads(rows[0][0])["received"] == 1
        assert b.has("inbox", "wx:1001", "2026-W48")
        assert b.shard_of("inbox", "wx:1001") == "2026-W48"
    finally:
        await a.close()
        await b.close()


async def test_messages_not_handled_are_found_again_at_every_start(tmp_path, pg_dsn):
    """The inbox asks at start which acknowledged messages were never handled: on PostgreSQL the
    database answers, at every start (a list kept in a file would not see later messages)."""
    data = tmp_path / "data"
    store = await opened(data, pg_dsn)
    await store.put("inbox", {"id": "wx:1", "received": 1}, shard="2026-W48")
    assert store.unhandled("2026-W48") == {"wx:1"}
    await store.close()

    store = await opened(data, pg_dsn)
    await store.put("inbox", {"id": "wx:2", "received": 2}, shard="2026-W48")
    await store.put("inbox", {"id": "wx:3", "received": 3}, shard="2026-W48")
    await store.put("inbox_done", {"id": "wx:3"}, shard="2026-W48")
    await store.close()  # as if killed: nothing was handled after the first start

    store = await opened(data, pg_dsn)
    try:
        assert store.unhandled("2026-W48") == {"wx:1", "wx:2"}
    finally:
        await store.close()


async def test_a_write_the_database_refuses_gets_503_and_the_resend_is_kept_once(harness):
    store = harness.store
    assert isinstance(store, PgStore)
    # A real refusal by the server (any failed INSERT: a full disk, a lost connection, a lock).
    store._query("ALTER TABLE messages ADD CONSTRAINT refuse CHECK (false) NOT VALID")
    assert await harness.text("lisi", "清理小广告3处", msgid="990001") == 503
    assert harness.replies("lisi") == []  # not kept, so not answered: WeCom sends it again
    store._query("ALTER TABLE messages DROP CONSTRAINT refuse")
    assert await harness.text("lisi", "清理小广告3处", msgid="990001") == 200
    assert await harness.text("lisi", "清理小广告3处", msgid="990001") == 200  # a resend of that
    assert [r["msgid"] for r in store.docs("reports")] == ["990001"]
    assert len([r for r in harness.replies("lisi") if "已记录" in r]) == 1


async def test_two_stores_on_one_database_never_give_the_same_number(tmp_path, pg_dsn):
    a, b = await opened(tmp_path / "a", pg_dsn), await opened(tmp_path / "b", pg_dsn)
    try:
        await a.put("reports", {"id": "R7", "userid": "lisi"}, shard="2026-W48")  # numbers already used
        assert await a.next_id("R") == "R8"  # past what the store holds: the sequence follows
        taken = await asyncio.gather(*(s.next_id("R") for _ in range(20) for s in (a, b)))
        numbers = [int(t[1:]) for t in taken]
        assert len(set(numbers)) == 40 and min(numbers) > 8
    finally:
        await a.close()
        await b.close()


async def test_documents_read_back_from_their_week_after_a_restart(tmp_path, pg_dsn):
    s = await opened(tmp_path, pg_dsn)
    await s.put("reports", {"id": "R1", "userid": "lisi", "grid": "g1", "text": "清理小广告3处"}, shard="2026-W40")
    await s.put("problems", {"id": "P1", "status": "open", "grid": "g1"})
    await s.put("reports", {"id": "R2", "userid": "lisi", "grid": "g1", "text": "入户走访5户"}, shard="2026-W48")
    await s.put("reports", {"id": "R1", "userid": "lisi", "grid": "g1", "text": "moved"}, shard="2026-W48")
    await s.close()

    r = await opened(tmp_path, pg_dsn)
    try:
        assert not r.held("2026-W40", "reports")  # an old week: read when first asked
        assert r.get("reports", "R1")["text"] == "moved"
        assert r.shard_of("reports", "R1") == "2026-W48"
        assert [d["id"] for d in r.docs("reports", ["2026-W40"])] == []  # moved, not copied
        assert {d["id"] for d in r.docs_by("reports", "userid", "lisi", ["2026-W48"])} == {"R1", "R2"}
        assert r.get("problems", "P1")["status"] == "open"
        assert await r.next_id("P") == "P2"
        # A document built in a thread reads old weeks from a snapshot: from the database too.
        view = r.snapshot(["2026-W48"])
        assert sorted(d["id"] for d in view.read_passing("2026-W48", "reports")) == ["R1", "R2"]
        old = PgStore(tmp_path, pg_dsn, readonly=True)
        old.load(recent_weeks=0, today=date(2026, 12, 30))  # W48 now an old week, not read
        assert not old.held("2026-W48", "reports")
        old_view = old.snapshot(["2026-W48"])
        assert sorted(d["id"] for d in old_view.read_passing("2026-W48", "reports")) == ["R1", "R2"]
        assert old_view.get("reports", "R2")["text"] == "入户走访5户"
        parts = r._query("SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename LIKE 'docs_2026%' ORDER BY 1")
        assert [p[0] for p in parts] == ["docs_2026_w40", "docs_2026_w48"]
    finally:
        await r.close()


async def test_migrations_apply_once_and_a_new_file_once(tmp_path, pg_dsn):
    folder = tmp_path / "migrations"
    folder.mkdir()
    first = Path(__file__).resolve().parents[2] / "bot" / "migrations" / "0001_init.sql"
    (folder / first.name).write_text(first.read_text(encoding="utf-8"), encoding="utf-8")
    bridge = PgBridge(pg_dsn)
    try:
        assert bridge.run(lambda c: migrate(c, folder)) == ["0001_init.sql"]
        assert bridge.run(lambda c: migrate(c, folder)) == []  # a second start applies nothing
        (folder / "0002_notes.sql").write_text("CREATE TABLE notes (id text PRIMARY KEY);", encoding="utf-8")
        # Three processes starting together: the file is applied by exactly one of them.
        applied = await asyncio.gather(*(bridge.arun(lambda c: migrate(c, folder)) for _ in range(3)))
        assert sorted(map(tuple, applied)) == [(), (), ("0002_notes.sql",)]
        versions = bridge.run(lambda c: c.fetch("SELECT version FROM schema_version ORDER BY 1"))
        assert [v[0] for v in versions] == [1, 2]
    finally:
        bridge.close()


async def test_the_password_never_shows_in_the_log_or_an_error(tmp_path, pg_dsn, monkeypatch):
    wrong_port = pg_dsn.replace(pg_dsn.split("@")[1].split("/")[0], f"127.0.0.1:{free_port()}")
    with pytest.raises(StoreUnavailable) as e:
        PgStore(tmp_path, wrong_port).load(today=TODAY)
    assert PASSWORD not in str(e.value) and "gridbot:***@127.0.0.1" in str(e.value)

    monkeypatch.setenv("GRIDBOT_STORE_DSN", pg_dsn)
    config = write_config(tmp_path, extra=REPORTS, base=PG_CONFIG)
    cfg = load_config(config)
    assert cfg.store.dsn.get_secret_value() == pg_dsn  # from the environment
    assert PASSWORD not in repr(cfg) and PASSWORD not in cfg.model_dump_json()
    port = free_port()
    proc = start_bot(config, port, stderr=subprocess.PIPE)
    try:
        await wait_ready(port)
        await stop_cleanly(proc, after=0.5)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read()
    assert "schema: applied 0001_init.sql" in err  # the log was read
    logged = "".join(p.read_text(errors="replace") for p in (tmp_path / "data").rglob("*.log"))
    assert PASSWORD not in err + logged


def test_config_names_the_store_fields_in_chinese(tmp_path, monkeypatch):
    monkeypatch.delenv("GRIDBOT_STORE_DSN", raising=False)
    with pytest.raises(ConfigError) as e:
        load_config(write_config(tmp_path, base=on_store("postgres")))
    assert "store.dsn" in str(e.value) and "GRIDBOT_STORE_DSN" in str(e.value)
    with pytest.raises(ConfigError) as e:
        load_config(write_config(tmp_path, base=on_store("postgres", f'dsn = "mysql://u:{PASSWORD}@h/db"\n')))
    assert "postgresql://" in str(e.value) and PASSWORD not in str(e.value)
    with pytest.raises(ConfigError) as e:
        load_config(write_config(tmp_path, base=on_store("postgre")))
    assert "是否应为 postgres" in str(e.value)
    cfg = load_config(write_config(tmp_path, base=on_store("tinydb")))
    assert cfg.store.backend == "tinydb"


async def test_stats_counted_by_the_server_match_the_documents(tmp_path, pg_dsn):
    reports = [{"id": "R1", "status": "active", "items": [{"category": "ads", "quantity": 3, "unit": "处"}] * 2},
               {"id": "R2", "status": "active", "unconfirmed": True, "items": []},
               {"id": "R3", "status": "withdrawn", "items": [{"category": "ads", "quantity": 1, "unit": "处"}]},
               {"id": "R4", "status": "active", "unconfirmed": False}]
    checkins = [{"id": "C1", "counted": True, "flags": []}, {"id": "C2", "counted": False, "flags": ["duplicate"]},
                {"id": "C3", "counted": True, "flags": ["duplicate", "old_photo"]}, {"id": "C4"}]
    s = await opened(tmp_path, pg_dsn)
    try:
        await s.put_many([("reports", d, "2026-W30") for d in reports] + [("checkins", d, "2026-W30") for d in checkins])
    finally:
        await s.close()
    r = reader(tmp_path, pg_dsn)
    assert r.counted("2026-W30", "reports") == count_reports(reports) == {"reports": 3, "reports_counted": 2, "items": 2}
    assert r.counted("2026-W30", "checkins") == count_checkins(checkins) == {
        "checkins": 2, "duplicates": 2, "flagged_checkins": 2}
