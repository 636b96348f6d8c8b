"""The store's snapshot for work off the loop: one moment of the store, whatever happens after,
and old weeks read from their files without being kept in the bot's memory."""

from __future__ import annotations

import threading
from datetime import date

import pytest

from bot.store import Store

WED = date(2026, 11, 25)


def report(rid: str, qty: int, week: str = "2026-W48") -> tuple:
    return ("reports", {"id": rid, "userid": "lisi", "grid": "g1", "status": "active",
                        "items": [{"category": "ads", "quantity": qty, "unit": "处"}]}, week)


async def test_a_snapshot_keeps_the_moment_it_was_taken(tmp_path):
    store = Store(tmp_path)
    store.load(today=WED)
    await store.start()
    await store.put_many([report("R1", 5), ("problems", {"id": "P1", "grid": "g1", "status": "open"}, None)])
    view = store.snapshot(["2026-W48"])
    # After the snapshot: a correction, a new report, the problem closed.
    await store.put_many([report("R1", 50), report("R2", 7), ("problems", {"id": "P1", "grid": "g1", "status": "closed"}, None)])
    seen = {}

    def read():  # as the digest does, in another thread
        seen["reports"] = [(r["id"], r["items"][0]["quantity"]) for r in view.docs("reports", ["2026-W48"])]
        seen["by_grid"] = [r["id"] for r in view.docs_by("reports", "grid", "g1", ["2026-W48"])]
        seen["problem"] = view.get("problems", "P1")["status"]
    t = threading.Thread(target=read)
    t.start()
    t.join()
    assert seen == {"reports": [("R1", 5)], "by_grid": ["R1"], "problem": "open"}
    assert [r["id"] for r in store.docs("reports", ["2026-W48"])] == ["R1", "R2"]
    with pytest.raises(KeyError):
        list(view.docs("inbox"))  # raw messages are not in a snapshot: no document reads them
    await store.close()


async def test_old_weeks_are_read_by_the_snapshot_not_kept_by_the_bot(tmp_path):
    store = Store(tmp_path)
    store.load(today=WED)
    await store.start()
    await store.put_many([report("R1", 5, "2026-W20"), report("R2", 6)])
    await store.close()

    bot = Store(tmp_path)
    bot.load(today=WED)  # W20 is long past: not read at start
    held = bot.stats()["documents"]
    view = bot.snapshot()
    assert sorted(r["id"] for r in view.docs("reports")) == ["R1", "R2"]
    assert view.get("reports", "R1")["items"][0]["quantity"] == 5
    assert view.shards() == ["2026-W20", "2026-W48"]
    assert bot.stats()["documents"] == held


async def test_a_snapshot_streams_a_week_as_the_store_does(tmp_path):
    store = Store(tmp_path)
    store.load(today=WED)
    await store.start()
    await store.put_many([report("R1", 5, "2026-W20"), report("R2", 6, "2026-W20"), report("R3", 7)])
    await store.close()

    bot = Store(tmp_path)
    bot.load(today=WED)
    view = bot.snapshot()
    for week in ("2026-W20", "2026-W48"):  # read from its file, and held in memory
        assert view.has_table(week, "reports") and bot.has_table(week, "reports")
        assert [r["id"] for r in view.read_passing(week, "reports")] == [r["id"] for r in bot.read_passing(week, "reports")]
    assert [r["id"] for r in view.read_passing("2026-W20", "reports")] == ["R1", "R2"]
    assert not view.has_table("2026-W20", "checkins")
    assert list(view.read_passing("2026-W20", "checkins")) == []
