"""A week's reports and check-ins on disk in parts: a checkpoint under load rewrites the block of
new records, not the whole week; weeks written whole by earlier versions are still read."""

from __future__ import annotations

from datetime import date

from bot.stats import week_table_counts
from bot.store import Store
from bot.store_files import write_table
from bot.store_main import WEEK_BLOCK
from tests.bot.test_store_main import count_writes

WEEK = "2026-W48"
TODAY = date(2026, 11, 25)


async def opened(path) -> Store:
    s = Store(path, flush_interval=3600)  # checkpoints only when the test asks
    s.load(today=TODAY)
    await s.start()
    return s


def reopen(path) -> Store:
    s = Store(path, readonly=True)
    s.load(today=TODAY)
    return s


def report(n: int, status: str = "active") -> dict:
    return {"id": f"R{n}", "userid": f"u{n % 40}", "grid": f"g{n % 4}", "work_date": "2026-11-24",
            "status": status, "text": "清理小广告15处", "items": [{"category": "ads", "quantity": 15, "unit": "处"}]}


async def test_a_new_report_in_a_full_week_rewrites_one_block_of_it(tmp_path, monkeypatch):
    s = await opened(tmp_path)
    await s.put_many([("reports", report(n), WEEK) for n in range(1, 3 * WEEK_BLOCK)])
    await s.checkpoint()
    folder = tmp_path / "db" / WEEK / "reports"
    week_bytes = sum(p.stat().st_size for p in folder.glob("*.json"))

    written = count_writes(monkeypatch)
    await s.put("reports", report(3 * WEEK_BLOCK + 5), shard=WEEK)
    await s.checkpoint()
    # The new block (and its counts); before, the whole week's file (and the week's counts).
    assert {p for p in written if f"/{WEEK}/" in p} == {str(folder / "R00003.json")}
    assert (folder / "R00003.counts").exists()
    assert sum(written.values()) < week_bytes / 100

    # A report withdrawn in an older block: that block only.
    written.clear()
    await s.put("reports", report(12, "withdrawn"), shard=WEEK)
    await s.checkpoint()
    assert {p for p in written if p.endswith(".json") and f"/{WEEK}/" in p} == {str(folder / "R00000.json")}
    await s.close()

    r = reopen(tmp_path)
    assert r.get("reports", "R12")["status"] == "withdrawn"
    assert r.get("reports", f"R{3 * WEEK_BLOCK + 5}")["grid"] == "g1"
    assert len(list(r.docs("reports", [WEEK]))) == 3 * WEEK_BLOCK
    # g0: every fourth of R1…R29999 (7,499), less the one withdrawn
    assert len(r.days.day_reports(WEEK, "g0", "2026-11-24").reports) == 7498
    assert week_table_counts(r, WEEK, "reports")["reports"] == 3 * WEEK_BLOCK - 1


async def test_a_week_written_whole_is_read_and_only_what_changes_is_written_in_parts(tmp_path, monkeypatch):
    # A data folder of an earlier version: the week's reports in one file.
    docs = [report(n) for n in range(1, 2 * WEEK_BLOCK)] + [{**report(0), "id": "R7_bench"}]
    write_table(tmp_path / "db" / WEEK / "reports.json", "reports", docs)
    s = await opened(tmp_path)
    assert s.get("reports", "R7_bench")["status"] == "active"
    written = count_writes(monkeypatch)
    await s.put("reports", report(WEEK_BLOCK + 3, "withdrawn"), shard=WEEK)
    await s.checkpoint()
    # Not the whole week again: the touched block, and the whole file stays for the others.
    assert {p for p in written if p.endswith(".json") and f"/{WEEK}/" in p} == {
        str(tmp_path / "db" / WEEK / "reports" / "R00001.json")}
    assert (tmp_path / "db" / WEEK / "reports.json").exists()
    await s.close()

    for r in (reopen(tmp_path), await opened(tmp_path)):
        assert r.get("reports", f"R{WEEK_BLOCK + 3}")["status"] == "withdrawn"
        assert r.get("reports", "R5")["status"] == "active"
        assert r.get("reports", "R7_bench")["status"] == "active"
        assert len(list(r.docs("reports", [WEEK]))) == 2 * WEEK_BLOCK
        assert [d["id"] for d in r.read_passing(WEEK, "reports")].count(f"R{WEEK_BLOCK + 3}") == 1
        assert week_table_counts(r, WEEK, "reports")["reports"] == 2 * WEEK_BLOCK - 1
        if not r.readonly:
            await r.close()


async def test_a_part_written_before_a_crash_and_its_journal_give_every_report_once(tmp_path):
    s = await opened(tmp_path)
    await s.put_many([("reports", report(n), WEEK) for n in range(1, 50)])
    await s.checkpoint()
    await s.put("reports", report(50), shard=WEEK)
    await s.put("reports", report(3, "withdrawn"), shard=WEEK)
    # The checkpoint's part written, then a crash before its mark: the journal still holds both.
    s._write_shards({WEEK: s._weeks[WEEK].take(s._shards[WEEK])}, 0, None)
    s._flusher.cancel()  # and killed: no final checkpoint, the store is left as it is

    r = await opened(tmp_path)
    assert [d["id"] for d in r.docs("reports", [WEEK])].count("R50") == 1
    assert r.get("reports", "R3")["status"] == "withdrawn"
    assert len(list(r.docs("reports", [WEEK]))) == 50
    await r.close()

