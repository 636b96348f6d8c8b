"""A bot that runs for months: the weeks that fall out of the recent window leave memory once
written, and come back from disk, answers unchanged, when something asks for them."""

from __future__ import annotations

from datetime import date, timedelta

from bot.attendance import checked_in
from bot.clock import iso_week
from bot.store import Store

START = date(2026, 9, 2)  # a Wednesday


def week_of_records(day: date, n: int = 50) -> list:
    week = iso_week(day)
    out = []
    for i in range(n):
        out.append(("checkins", {"id": f"C{week}-{i}", "userid": f"u{i}", "grid": "g1", "date": day.isoformat(),
                                 "counted": True}, week))
        out.append(("reports", {"id": f"R{week}-{i}", "userid": f"u{i}", "grid": "g1", "work_date": day.isoformat(),
                                "status": "active", "items": []}, week))
    return out


async def test_weeks_past_the_window_leave_memory_and_come_back_when_asked(tmp_path):
    store = Store(tmp_path)
    store.load(recent_weeks=2, today=START)
    await store.start()
    held = []
    for w in range(12):  # twelve weeks of a running bot, a checkpoint after each
        await store.put_many(week_of_records(START + timedelta(weeks=w)))
        await store.checkpoint()
        held.append(store.stats()["documents"])
    # Three weeks (the window and this one) of 100 records, and the few meta documents.
    assert max(held[4:]) == held[-1] < 3 * 100 + 10
    first = START
    assert checked_in(store, first) == {f"u{i}" for i in range(50)}
    assert store.get("reports", f"R{iso_week(first)}-7")["userid"] == "u7"
    await store.close()


async def written_week(path, n: int) -> None:
    store = Store(path)
    store.load(today=START)
    await store.start()
    await store.put_many(week_of_records(START, n=n))
    await store.close()


async def test_shards_load_without_the_cyclic_garbage_collector(tmp_path):
    # Parsing makes no reference cycles; a collector walking everything parsed so far, again
    # and again, was most of a district's start-up.
    import gc

    await written_week(tmp_path, 20_000)
    runs = []

    def count(phase, info):
        if phase == "start":
            runs.append(info["generation"])
    gc.callbacks.append(count)
    try:
        again = Store(tmp_path)
        again.load(today=START)
    finally:
        gc.callbacks.remove(count)
    assert runs == []
    assert again.stats()["documents"] >= 20_000  # this week's reports; its check-ins come right after


async def test_this_weeks_checkins_are_read_right_after_start_not_before_it_answers(tmp_path):
    await written_week(tmp_path, 500)
    again = Store(tmp_path)
    again.load(today=START)
    week = iso_week(START)
    assert again.held(week, "reports") and not again.held(week, "checkins")
    await again.start()
    await again.warmed()
    assert again.held(week, "checkins")
    assert checked_in(again, START) == {f"u{i}" for i in range(500)}
    await again.close()


def test_repeated_values_of_a_shard_are_one_object_once_read(tmp_path):
    # A district's two weeks of reports held 600 MB less with whose/where/which day shared.
    from bot.store_files import read_table, write_table
    docs = [{"id": f"R{i}", "msgid": f"R{i}", "userid": "lisi", "name": "李四", "grid": "g1", "work_date": "2026-11-24",
             "status": "active", "items": [{"category": "ads", "quantity": float(i), "unit": "处"}]} for i in range(3000)]
    write_table(tmp_path / "reports.json", "reports", docs)
    back = read_table(tmp_path / "reports.json", "reports")
    assert list(back.values()) == docs
    first, last = back["R0"], back["R2999"]
    assert first["name"] is last["name"] and first["items"][0]["unit"] is last["items"][0]["unit"]
    assert first["msgid"] is first["id"]
