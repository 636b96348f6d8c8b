"""Older weeks of check-ins: not held as documents, yet every answer about them unchanged.

A district's fourteen weeks of check-in documents were half of its memory at start. Only this
and last week are held now; streaks and the day index read older weeks from a digest beside
each shard, made again from the shard when it is missing (an upgraded data folder) or stale."""

from __future__ import annotations

from datetime import date, timedelta

from bot import store_main
from bot.attendance import checked_in, miss_streak
from bot.clock import iso_week
from bot.store import Store
from bot.config_loading import load_config
from bot.workdays import is_workday
from tests.support.factories import write_config

TODAY = date(2026, 11, 25)  # a Wednesday
WEEKS = 14
PEOPLE = 20


def history() -> list:
    """Fourteen weeks of check-ins, each workday, by u0..u19; u0 stops six weeks ago."""
    out = []
    stop = TODAY - timedelta(weeks=6)
    day = TODAY - timedelta(weeks=WEEKS)
    while day < TODAY:
        if day.weekday() < 5:
            for i in range(PEOPLE):
                if i == 0 and day >= stop:
                    continue
                out.append(("checkins", {"id": f"C{day.isoformat()}-{i}", "userid": f"u{i}", "name": f"网格员{i}",
                                         "grid": "g1" if i < 10 else "g2", "date": day.isoformat(),
                                         "time": 0, "counted": True, "phash": "00ff00ff00ff00ff"}, iso_week(day)))
        day += timedelta(days=1)
    return out


async def written(tmp_path) -> Store:
    store = Store(tmp_path)
    store.load(today=TODAY)
    await store.start()
    await store.put_many(history())
    await store.close()
    return store


def read_shards(monkeypatch) -> list[str]:
    """The week shards whose check-ins file is parsed, by any path."""
    seen: list[str] = []
    real = store_main.read_table

    def counting(path, table, keep=True):
        if table == "checkins":  # a whole file in the shard's folder, or a part in the table's
            seen.append(path.parent.parent.name if path.parent.name == table else path.parent.name)
        return real(path, table, keep)
    monkeypatch.setattr(store_main, "read_table", counting)
    return seen


async def test_older_weeks_are_not_held_as_documents_yet_days_and_streaks_are_answered(tmp_path):
    await written(tmp_path)
    store = Store(tmp_path)
    store.load(today=TODAY)
    held = store.stats()["documents"]
    # This week (Mon, Tue) and last week: 7 workdays of 20 people, less u0's, and a few meta docs.
    assert held < 7 * PEOPLE + 10

    nine_weeks_ago = TODAY - timedelta(weeks=9)
    assert checked_in(store, nine_weeks_ago) == {f"u{i}" for i in range(PEOPLE)}
    assert checked_in(store, nine_weeks_ago, "g2") == {f"u{i}" for i in range(10, PEOPLE)}
    (tmp_path / "cfg").mkdir()
    cfg = load_config(write_config(tmp_path / "cfg"))
    # u0's last check-in was six weeks ago: every workday since is a miss, read back through
    # weeks whose documents are not in memory.
    since = [TODAY - timedelta(days=n) for n in range(1, 6 * 7 + 1)]
    assert miss_streak(cfg, store, "u0", TODAY - timedelta(days=1)) == sum(is_workday(d, cfg.calendar) for d in since)
    assert miss_streak(cfg, store, "u1", TODAY - timedelta(days=1)) == 0
    assert store.stats()["documents"] == held  # still no older week's documents in memory


async def test_a_restart_reads_the_digests_not_the_old_shards(tmp_path, monkeypatch):
    await written(tmp_path)
    first = Store(tmp_path)
    first.load(today=TODAY)
    await first.start()
    await first.warm_up()  # what start-up does in the background: the older weeks' digests made
    await first.close()
    seen = read_shards(monkeypatch)
    again = Store(tmp_path)
    again.load(today=TODAY)
    for w in range(2, WEEKS + 1):
        checked_in(again, TODAY - timedelta(weeks=w))
    # No week's check-ins are parsed before the bot answers (this week and last week: in a
    # thread right after), the older weeks' are read from their digests.
    assert seen == []
    assert again.digest_reads == WEEKS - 1


async def test_an_upgraded_data_folder_and_a_shard_written_since_give_the_same_answers(tmp_path):
    await written(tmp_path)
    old_week = TODAY - timedelta(weeks=8)
    for digest in (tmp_path / "db").glob("*/checkins.digest"):
        digest.unlink()  # a data folder of the previous version has none
    store = Store(tmp_path)
    store.load(today=TODAY)
    await store.start()
    assert checked_in(store, old_week) == {f"u{i}" for i in range(PEOPLE)}
    assert (tmp_path / "db" / iso_week(old_week) / "checkins.digest").exists()
    # A late check-in lands in that old week: its shard is rewritten, its digest is now stale.
    await store.put("checkins", {"id": "C-late", "userid": "u99", "grid": "g1", "date": old_week.isoformat(),
                                 "time": 0, "counted": True}, shard=iso_week(old_week))
    await store.close()
    again = Store(tmp_path)
    again.load(today=TODAY)
    assert "u99" in checked_in(again, old_week)


async def test_older_weeks_asked_on_the_loop_leave_a_digest_for_the_next_start(tmp_path, monkeypatch):
    await written(tmp_path)
    first = Store(tmp_path)
    first.load(today=TODAY)
    assert checked_in(first, TODAY - timedelta(weeks=5)) == {f"u{i}" for i in range(1, PEOPLE)}
    seen = read_shards(monkeypatch)
    again = Store(tmp_path)
    again.load(today=TODAY)
    assert checked_in(again, TODAY - timedelta(weeks=5)) == {f"u{i}" for i in range(1, PEOPLE)}
    assert iso_week(TODAY - timedelta(weeks=5)) not in seen


def report(rid: str, day: date, qty: float) -> tuple:
    return ("reports", {"id": rid, "userid": "u1", "grid": "g1", "work_date": day.isoformat(), "status": "active",
                        "items": [{"category": "ads", "quantity": qty, "unit": "处"}]}, iso_week(day))


async def test_last_week_is_read_after_start_and_a_record_stored_meanwhile_stays(tmp_path):
    last_friday = TODAY - timedelta(days=5)
    store = Store(tmp_path)
    store.load(today=TODAY)
    await store.start()
    await store.put_many([report("R1", last_friday, 15), report("R2", TODAY, 3)])
    await store.close()

    again = Store(tmp_path)
    again.load(today=TODAY)
    assert again.get("reports", "R1", deep=False) is None  # not read before the bot answers
    assert again.get("reports", "R2", deep=False)["items"][0]["quantity"] == 3
    await again.start()
    await again.put_many([report("R3", last_friday, 4)])  # lands in last week while it is read
    await again.warmed()
    assert {again.get("reports", r, deep=False)["id"] for r in ("R1", "R2", "R3")} == {"R1", "R2", "R3"}
    again.ensure(iso_week(last_friday), "reports")
    assert again.days.day_reports(iso_week(last_friday), "g1", last_friday.isoformat()).totals == {("ads", "处"): 19.0}
    await again.close()
