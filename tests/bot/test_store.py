"""The Store: durable before acknowledged, atomic files, flat as history grows."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import date

import pytest

from bot.store import Store


async def opened(path) -> Store:
    s = Store(path, flush_interval=0.05)
    s.load(today=date(2026, 11, 25))
    await s.start()
    return s


def reopen(path, **kw) -> Store:
    s = Store(path, readonly=True)
    s.load(today=date(2026, 11, 25), **kw)
    return s


async def test_put_survives_a_crash_without_checkpoint(tmp_path):
    s = await opened(tmp_path)
    s._flusher.cancel()  # no checkpoint will happen: only the journal holds the data
    await s.put("reports", {"id": "R1", "text": "清理小广告3处"}, shard="2026-W48")
    await s.put("problems", {"id": "P1", "status": "open"})
    # Simulate kill -9: nothing closed, nothing flushed.
    r = reopen(tmp_path)
    assert r.get("reports", "R1")["text"] == "清理小广告3处"
    assert r.get("problems", "P1")["status"] == "open"
    assert await r.next_id("R") == "R2"


async def test_writes_racing_checkpoints_are_never_lost(tmp_path):
    s = await opened(tmp_path)

    async def writer(i: int) -> None:
        await s.put("reports", {"id": f"R{i}", "n": i}, shard="2026-W48")

    async def checkpointer() -> None:
        for _ in range(30):
            await s.checkpoint()
            await asyncio.sleep(0)

    await asyncio.gather(checkpointer(), *(writer(i) for i in range(1, 401)))
    s._flusher.cancel()
    r = reopen(tmp_path)
    assert {d["id"] for d in r.docs("reports")} == {f"R{i}" for i in range(1, 401)}
    for f in (tmp_path / "db").rglob("*.json"):
        json.loads(f.read_text())  # every file whole


async def test_torn_journal_tail_is_ignored(tmp_path):
    s = await opened(tmp_path)
    s._flusher.cancel()
    await s.put("reports", {"id": "R1"}, shard="2026-W48")
    with open(s.journal.segment, "ab") as f:
        f.write(b'{"s": 99, "ops": [{"t": "reports", "w": "2026-W48", "d": {"id": "R2"')
    r = reopen(tmp_path)
    assert r.get("reports", "R1") is not None and r.get("reports", "R2") is None


async def test_failed_write_is_not_applied_and_raises(tmp_path, monkeypatch):
    s = await opened(tmp_path)

    def boom(data):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(s.journal, "_write_sync", boom)
    with pytest.raises(OSError):
        await s.put("reports", {"id": "R1"}, shard="2026-W48")
    assert s.get("reports", "R1") is None
    monkeypatch.undo()
    await s.put("reports", {"id": "R2"}, shard="2026-W48")  # recovers when space returns
    await s.close()
    assert reopen(tmp_path).get("reports", "R2") is not None


async def test_reader_sees_journal_tail_of_a_running_writer(tmp_path):
    s = await opened(tmp_path)
    await s.put("reports", {"id": "R1"}, shard="2026-W48")
    await s.checkpoint()
    await s.put("reports", {"id": "R2"}, shard="2026-W48")  # only in the journal so far
    r = reopen(tmp_path)
    assert {d["id"] for d in r.docs("reports", ["2026-W48"])} == {"R1", "R2"}
    await s.close()


async def test_old_weeks_load_only_when_read(tmp_path):
    s = await opened(tmp_path)
    await s.put_many([("reports", {"id": f"R{i}"}, "2025-W10") for i in range(1, 4)])
    await s.put("reports", {"id": "R9"}, shard="2026-W48")
    await s.close()
    r = reopen(tmp_path)
    assert ("2025-W10", "reports") not in r._loaded
    assert r.get("reports", "R9", deep=False) is not None
    assert r.get("reports", "R1", deep=False) is None
    assert r.get("reports", "R1") is not None  # a deep lookup reads the old week
    assert len(list(r.docs("reports"))) == 4


async def test_data_dir_is_private(tmp_path):
    d = tmp_path / "data"
    s = Store(d)
    s.load()
    assert (os.stat(d).st_mode & 0o777) == 0o700
