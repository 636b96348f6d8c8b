"""The long-lived tables on disk in parts: a checkpoint rewrites what changed, old data dirs still read."""

from __future__ import annotations

from collections import Counter
from datetime import date

import pytest

import bot.store_files as store_files
from bot.store import Store
from bot.store_files import write_table
from bot.store_main import SEQ_BLOCK, part_of


async def opened(path) -> Store:
    s = Store(path, flush_interval=3600)  # checkpoints only when the test asks
    s.load(today=date(2026, 11, 25))
    await s.start()
    return s


def reopen(path) -> Store:
    s = Store(path, readonly=True)
    s.load(today=date(2026, 11, 25))
    return s


def problem(n: int, status: str = "closed") -> dict:
    return {"id": f"P{n}", "grid": f"g{n % 50}", "text": f"幸福路{n}号楼下堆放建筑垃圾",
            "opened_at": 1790000000 + n * 60, "status": status, "history": []}


def count_writes(monkeypatch) -> Counter:
    """Bytes written per file, by every atomic write of the store."""
    written: Counter = Counter()
    real = store_files.atomic_write

    def counting(path, data):
        written[str(path)] += len(data)
        real(path, data)
    monkeypatch.setattr(store_files, "atomic_write", counting)
    return written


def test_a_documents_part_follows_from_its_id():
    assert part_of("P1") == part_of(f"P{SEQ_BLOCK - 1}") == "P00000"
    assert part_of(f"P{SEQ_BLOCK}") == "P00001"
    assert part_of("greet:lisi:2026-11-25") == part_of("checkin:lisi:2026-11-02") == "2026-11"
    assert part_of("lisi") == part_of("lisi") and part_of("lisi").startswith("k")
    assert part_of("P012").startswith("k")  # not the 12th of its block: it would not be found there


async def test_every_kind_of_id_comes_back(tmp_path):
    ids = ["P1", "P2001", "P012", "P0", "greet:lisi:2026-11-25", "checkin:wangwu:2026-10-30", "lisi",
           "run:daily_reminder", "wrOgQhDgAAcwMTB7YmDkABcE0hK1Qh6A"]
    s = await opened(tmp_path)
    await s.put_many([("misc", {"id": i, "n": n}, None) for n, i in enumerate(ids)])
    await s.close()
    s = await opened(tmp_path)
    await s.put("misc", {"id": "P1", "n": -1})  # a second checkpoint, of one part only
    await s.close()
    r = reopen(tmp_path)
    assert {d["id"]: d["n"] for d in r.docs("misc", ["main"])} == {**{i: n for n, i in enumerate(ids)}, "P1": -1}


async def test_one_changed_problem_among_many_rewrites_one_part(tmp_path, monkeypatch):
    s = await opened(tmp_path)
    await s.put_many([("problems", problem(n), None) for n in range(1, 20_001)])
    await s.checkpoint()
    folder = tmp_path / "db" / "main" / "problems"
    all_bytes = sum(p.stat().st_size for p in folder.iterdir())
    assert len(list(folder.iterdir())) == 20_000 // SEQ_BLOCK + 1

    written = count_writes(monkeypatch)
    await s.put("problems", {**problem(12_345), "status": "open"})
    await s.checkpoint()
    problem_files = {p for p in written if "/problems/" in p}
    assert problem_files == {str(folder / f"{part_of('P12345')}.json")}
    # A tenth of the table at most (one block of 2,000 of 20,000), where it was all of it.
    assert sum(written[p] for p in problem_files) < all_bytes / 9
    assert sum(written.values()) < all_bytes / 8  # with the counters and the checkpoint mark
    await s.close()

    r = reopen(tmp_path)
    assert r.get("problems", "P12345")["status"] == "open"
    assert r.get("problems", "P20000")["status"] == "closed"
    assert len(list(r.docs("problems", ["main"]))) == 20_000
    assert await r.next_id("P") == "P20001"


async def test_parts_read_back_in_the_order_of_their_ids(tmp_path):
    s = await opened(tmp_path)
    await s.put_many([("problems", problem(n), None) for n in range(1, 2 * SEQ_BLOCK + 10)])
    await s.put("leave", {"id": "lisi", "until": "2026-11-27"})
    await s.close()
    r = reopen(tmp_path)
    assert [d["id"] for d in r.docs("problems", ["main"])] == [f"P{n}" for n in range(1, 2 * SEQ_BLOCK + 10)]
    assert r.get("leave", "lisi")["until"] == "2026-11-27"
    assert r.snapshot().get("problems", "P7")["text"] == "幸福路7号楼下堆放建筑垃圾"


def old_layout(tmp_path, problems: list[dict]) -> None:
    """A data dir of an earlier version: each main table whole in main/<table>.json."""
    main = tmp_path / "db" / "main"
    write_table(main / "problems.json", "problems", problems)
    write_table(main / "meta.json", "meta", [{"id": "counters", "P": len(problems)}])
    write_table(main / "leave.json", "leave", [{"id": "wangwu", "until": "2026-11-27"}])


async def test_a_data_dir_of_the_whole_file_layout_keeps_working(tmp_path):
    old_layout(tmp_path, [problem(n, "open") for n in range(1, 5001)])
    r = reopen(tmp_path)  # a reader (gridbot stats) before the bot ever ran the new version
    assert len(list(r.docs("problems", ["main"]))) == 5000
    assert r.get("leave", "wangwu")["until"] == "2026-11-27"

    s = await opened(tmp_path)
    assert s.get("problems", "P4321")["status"] == "open"
    assert await s.next_id("P") == "P5001"
    await s.put("problems", {**problem(17), "status": "closed"})
    await s.close()

    main = tmp_path / "db" / "main"
    # The first checkpoint touching the table wrote it in parts and removed the whole file;
    # a table no checkpoint touched stays as it was, and is read as before.
    assert not (main / "problems.json").exists()
    assert sorted(p.name for p in (main / "problems").iterdir()) == ["P00000.json", "P00001.json", "P00002.json"]
    assert (main / "leave.json").exists()
    r = reopen(tmp_path)
    assert r.get("problems", "P17")["status"] == "closed"
    assert r.get("problems", "P5000")["status"] == "open"
    assert len(list(r.docs("problems", ["main"]))) == 5000
    assert r.get("leave", "wangwu")["until"] == "2026-11-27"


def test_parts_written_before_a_crash_win_over_the_whole_file(tmp_path):
    # A crash after the parts were written and before the whole file was removed: for every id
    # of a part on disk, the part is the truth (even for a document it no longer holds).
    old_layout(tmp_path, [problem(1, "open"), problem(2, "open"), problem(SEQ_BLOCK + 1, "open")])
    write_table(tmp_path / "db" / "main" / "problems" / "P00000.json", "problems", [problem(1, "closed")])
    r = reopen(tmp_path)
    assert r.get("problems", "P1")["status"] == "closed"
    assert r.get("problems", "P2") is None
    assert r.get("problems", f"P{SEQ_BLOCK + 1}")["status"] == "open"


@pytest.mark.parametrize("table, shard", [("problems", "main"), ("reports", "2026-W48")])
async def test_a_leftover_temp_file_in_a_part_folder_is_not_read_and_goes_at_start(tmp_path, table, shard):
    # In the main tables' part folders, and in those of a week's tables (bot.store: WEEK_BLOCK).
    s = await opened(tmp_path)
    await s.put(table, {**problem(1, "open"), "id": f"{table[0].upper()}1"}, shard=shard)
    await s.close()
    leftover = tmp_path / "db" / shard / table / f".{table[0].upper()}00000.json.abcd1234.tmp"
    leftover.write_bytes(b'{"%s":{"1":{"id":"X9"' % table.encode())  # cut short by a crash
    assert reopen(tmp_path).get(table, "X9") is None
    s = await opened(tmp_path)
    assert not leftover.exists()
    assert s.get(table, f"{table[0].upper()}1")["status"] == "open"
    await s.close()
