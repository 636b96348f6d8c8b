"""`gridbot migrate --to postgres` on a data folder the harness made with the file store."""

from __future__ import annotations

import io
import subprocess
import sys
from datetime import date, datetime

import pytest

from bot.pg_bridge import PgBridge
from bot.pg_migrate import migrate_to_postgres
from bot.store import Store
from bot.store_pg import PgStore

from tests.conftest import TZ
from tests.support.factories import on_store, write_config

FILE_STORE = on_store("tinydb")


@pytest.fixture
def config_path(tmp_path):
    return write_config(tmp_path, base=FILE_STORE)  # the folder to migrate: files, in both runs


async def made_by_the_bot(harness) -> None:
    harness.clock.set(datetime(2026, 11, 18, 9, 0, tzinfo=TZ))  # last week
    await harness.text("lisi", "清理小广告15处,入户走访12户")
    await harness.text("wangwu", "问题:幸福路3号楼下堆放建筑垃圾")
    harness.clock.set(datetime(2026, 11, 25, 9, 30, tzinfo=TZ))
    await harness.text("lisi", "发放宣传资料200份")
    await harness.text("wangwu", "调解纠纷1起")
    await harness.client.close()  # the bot stops (its journal's tail is read by the migration)


def counts(store) -> dict[str, int]:
    return {t: len(list(store.docs(t))) for t in ("reports", "problems", "inbox", "inbox_done")}


async def test_a_data_folder_moves_over_whole_and_a_second_run_doubles_nothing(harness, tmp_path, pg_dsn):
    await made_by_the_bot(harness)
    data = tmp_path / "data"
    before = Store(data, readonly=True)
    before.load(recent_weeks=None, today=date(2026, 11, 25))
    want = counts(before)
    assert want["reports"] == 3 and want["problems"] == 1 and want["inbox"] == 4

    out = io.StringIO()
    assert migrate_to_postgres(data, pg_dsn, out) == 0
    assert "已迁移 2026-W47/reports:1 条" in out.getvalue()
    assert "条数全部一致" in out.getvalue()

    # A run cut short: its last pair's transaction never committed (kill -9 mid-copy).
    bridge = PgBridge(pg_dsn)
    try:
        bridge.run(lambda c: c.execute("DELETE FROM docs WHERE shard = '2026-W48' AND tbl = 'reports'"))
        bridge.run(lambda c: c.execute("DELETE FROM migrated WHERE shard = '2026-W48' AND tbl = 'reports'"))
        out = io.StringIO()
        assert migrate_to_postgres(data, pg_dsn, out) == 0
        text = out.getvalue()
        assert "已迁移 2026-W48/reports:2 条" in text and "2026-W47/reports" not in text  # only what was missing

        after = PgStore(data, pg_dsn, readonly=True)
        after.load(recent_weeks=None, today=date(2026, 11, 25))
        assert counts(after) == want
        assert sorted(d["id"] for d in after.docs("reports")) == sorted(d["id"] for d in before.docs("reports"))
        assert await after.next_id("R") == "R4"  # the bot's next number follows on

        # A difference is found, said in Chinese, and fails the command.
        bridge.run(lambda c: c.execute("DELETE FROM docs WHERE shard = 'main' AND tbl = 'problems'"))
        out = io.StringIO()
        assert migrate_to_postgres(data, pg_dsn, out) == 1
        assert "核对不一致" in out.getvalue() and "main/problems:数据目录 1 条,数据库 0 条" in out.getvalue()
    finally:
        bridge.close()


async def test_the_copied_tables_are_analyzed_so_the_first_start_plans_well(harness, tmp_path, pg_dsn):
    # Without statistics the bot's start-up query for unhandled messages ran as a nested loop
    # over the whole week (86 s for 50,000 messages): the migration leaves the planner informed.
    await made_by_the_bot(harness)
    assert migrate_to_postgres(tmp_path / "data", pg_dsn, io.StringIO()) == 0
    bridge = PgBridge(pg_dsn)
    try:
        rows = bridge.run(lambda c: c.fetch("SELECT relname FROM pg_stat_user_tables WHERE schemaname = "
                                            "current_schema() AND last_analyze IS NOT NULL"))
    finally:
        bridge.close()
    analyzed = {r[0] for r in rows}
    assert {"messages", "docs_main"} <= analyzed
    assert any(name.startswith("docs_") and "w48" in name.lower() for name in analyzed)


def test_the_command_names_a_missing_dsn(tmp_path, monkeypatch):
    monkeypatch.delenv("GRIDBOT_STORE_DSN", raising=False)
    config = write_config(tmp_path, base=FILE_STORE)
    proc = subprocess.run([sys.executable, "-m", "bot.cli", "migrate", "--to", "postgres", "--config", str(config)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert proc.returncode == 2 and "GRIDBOT_STORE_DSN" in proc.stderr
