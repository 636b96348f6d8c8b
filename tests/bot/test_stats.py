"""`gridbot stats` over many weeks: from the counts kept beside each week, a week at a time."""

from __future__ import annotations

import json
import tracemalloc
from datetime import date

import pytest

from bot.cli import main as cli_main
from bot.config_loading import load_config
from bot.stats import compute_stats
from bot.store import Store
from bot.store_files import write_table

WEEKS = [f"2026-W{n}" for n in range(30, 46)]  # sixteen weeks before the clock's week (W48)
PER_WEEK = 600


def report(n: int) -> dict:
    status = "withdrawn" if n % 10 == 0 else "active"
    doc = {"id": f"R{n}", "userid": "lisi", "grid": "g1", "status": status,
           "text": "清理小广告15处,入户走访12户" + "。" * 200,
           "items": [{"category": "ads", "quantity": 15, "unit": "处"},
                     {"category": "visit", "quantity": 12, "unit": "户"}][: 1 + n % 2]}
    if n % 7 == 0:
        doc["unconfirmed"] = True
    return doc


def checkin(n: int) -> dict:
    duplicate = n % 9 == 0
    return {"id": f"C{n}", "userid": "lisi", "grid": "g1", "counted": not duplicate,
            "flags": ["duplicate"] if duplicate else []}


def expected(ns: list[int]) -> dict:
    active = [report(n) for n in ns if report(n)["status"] == "active"]
    checks = [checkin(n) for n in ns]
    return {"reports": len(active),
            "reports_counted": sum(1 for r in active if not r.get("unconfirmed")),
            "items": sum(len(r["items"]) for r in active),
            "checkins": sum(1 for c in checks if c["counted"]),
            "duplicates": sum(1 for c in checks if c["flags"]),
            "flagged_checkins": sum(1 for c in checks if not c["counted"])}


def numbers(week: str) -> list[int]:
    i = WEEKS.index(week)
    return list(range(i * PER_WEEK + 1, (i + 1) * PER_WEEK + 1))


@pytest.fixture
def cfg(config_path):
    return load_config(config_path)


@pytest.fixture
async def data_dir(tmp_path):
    s = Store(tmp_path / "data", flush_interval=3600)
    s.load(today=date(2026, 11, 25))
    await s.start()
    for week in WEEKS:
        await s.put_many([("reports", report(n), week) for n in numbers(week)]
                         + [("checkins", checkin(n), week) for n in numbers(week)])
        await s.checkpoint()
    await s.close()
    return tmp_path / "data"


def cli_store(path) -> Store:
    """What `gridbot stats` opens: the store read-only, main and the journal's tail."""
    s = Store(path, readonly=True)
    s.load(recent_weeks=0, today=date(2026, 11, 25))
    return s


def picked(stats: dict) -> dict:
    return {k: stats[k] for k in expected([])}


async def test_stats_come_from_the_counts_kept_with_each_week(data_dir, cfg, monkeypatch):
    assert list((data_dir / "db" / "2026-W40" / "reports").glob("*.counts"))
    store = cli_store(data_dir)

    def no_parsing(*a, **kw):
        raise AssertionError("a week was read whole although its counts were kept")
    monkeypatch.setattr(Store, "read_passing", no_parsing)
    every = [n for w in WEEKS for n in numbers(w)]
    assert picked(compute_stats(store, cfg)) == expected(every)
    assert picked(compute_stats(store, cfg, week="2026-w40")) == expected(numbers("2026-W40"))
    assert compute_stats(store, cfg, week="2026-W47")["reports"] == 0


async def test_counts_of_another_file_are_not_trusted(data_dir, cfg, monkeypatch):
    # A part of the week's table rewritten without its counts (a crash between the two
    # writes): the kept counts describe another file, so that part's records are counted.
    [part] = (data_dir / "db" / "2026-W40" / "reports").glob("*.json")  # its ids fill one block
    kept = [report(n) for n in numbers("2026-W40")][:100]
    write_table(part, "reports", kept)
    monkeypatch.setattr(Store, "read_passing", lambda *a: pytest.fail("the whole week was read"))
    stats = compute_stats(cli_store(data_dir), cfg, week="2026-W40")
    assert stats["reports"] == sum(1 for r in kept if r["status"] == "active")
    # ...and kept for the next time, stamped with the file they were counted from.
    monkeypatch.setattr(Store, "read_passing", lambda *a: pytest.fail("counted twice"))
    assert compute_stats(cli_store(data_dir), cfg, week="2026-W40") == stats


async def test_a_running_bots_unsaved_changes_are_counted(data_dir, cfg):
    s = Store(data_dir, flush_interval=3600)
    s.load(today=date(2026, 11, 25))
    await s.start()
    # Withdrawn in the journal only, no checkpoint yet: the week's kept counts are stale.
    first = report(numbers("2026-W40")[0])
    await s.put("reports", {**first, "status": "withdrawn"}, shard="2026-W40")
    stats = compute_stats(cli_store(data_dir), cfg, week="2026-W40")
    assert stats["reports"] == expected(numbers("2026-W40"))["reports"] - 1
    await s.close()  # the checkpoint writes the table and its counts again
    assert compute_stats(cli_store(data_dir), cfg, week="2026-W40") == stats


async def test_all_time_stats_hold_one_week_at_a_time(data_dir, cfg):
    def peak(week: str | None) -> int:
        for f in (data_dir / "db").rglob("*.counts"):
            f.unlink()  # nothing kept: every week is read from its records
        store = cli_store(data_dir)
        tracemalloc.start()
        try:
            compute_stats(store, cfg, week)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    one_week, all_weeks = peak("2026-W40"), peak(None)
    # Sixteen weeks read one after the other cost about what one does (holding them all: 16×).
    assert all_weeks < 2 * one_week, (one_week, all_weeks)


async def test_a_week_written_by_tinydb_itself_is_counted(data_dir, cfg):
    # Earlier versions (and TinyDB) wrote a table as one line: read whole, counted the same.
    week = data_dir / "db" / "2026-W41"
    docs = [report(n) for n in numbers("2026-W41")]
    (week / "reports.json").write_text(json.dumps({"reports": {str(i): d for i, d in enumerate(docs, 1)}}))
    assert picked(compute_stats(cli_store(data_dir), cfg, week="2026-W41")) == expected(numbers("2026-W41"))


async def test_gridbot_stats_beside_the_running_bot(harness, config_path, capsys):
    await harness.text("lisi", "清理小广告15处,入户走访12户")
    await harness.store.checkpoint()  # W48 on disk, with its counts
    await harness.text("wangwu", "入户走访8户")  # in the journal only
    assert "已记录" in harness.last_reply("wangwu")

    assert cli_main(["stats", "--config", str(config_path), "--json"]) == 0
    all_time = json.loads(capsys.readouterr().out)
    assert cli_main(["stats", "--config", str(config_path), "--json", "--week", "2026-W48"]) == 0
    assert json.loads(capsys.readouterr().out) == {**all_time, "week": "2026-W48"}
    assert (all_time["reports"], all_time["items"]) == (2, 3)
    assert cli_main(["stats", "--config", str(config_path), "--week", "2026-48"]) == 2
