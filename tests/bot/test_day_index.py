"""The store's day index answers what a scan of the records answers: who checked in on a day,
what a grid reported on a day, which problems are still open — through every kind of change,
and again after a restart, when it is rebuilt from the shards and the journal."""

from __future__ import annotations

from datetime import date

from bot.attendance import checked_in, present_on, tracking_start
from bot.clock import iso_week
from bot.day_index import DayIndex, DaySums, sums_of
from bot.problem_ledger import open_problems
from bot.records import checkins_of_week, counted, reports_of_week
from bot.store import Store

from tests.support.stores import started_store

WED = date(2026, 11, 25)
WEEK = iso_week(WED)


def checkin(cid: str, userid: str, grid: str, day: date = WED, counted: bool = True) -> dict:
    return {"id": cid, "userid": userid, "grid": grid, "date": day.isoformat(), "counted": counted}


def report(rid: str, userid: str, grid: str, day: date = WED, qty: float = 3, status: str = "active",
           unconfirmed: bool = False) -> dict:
    return {"id": rid, "userid": userid, "grid": grid, "work_date": day.isoformat(), "status": status,
            "unconfirmed": unconfirmed, "items": [{"category": "ads", "quantity": qty, "unit": "处"}]}


def scanned_present(store: Store, day: date, grid: str | None = None) -> set[str]:
    return {c["userid"] for c in checkins_of_week(store, iso_week(day), grid=grid) if c.get("date") == day.isoformat()}


def scanned_day(store: Store, grid: str | None, day: date) -> tuple[int, float]:
    reports = [r for r in reports_of_week(store, iso_week(day), grid=grid) if r["work_date"] == day.isoformat()]
    return len(reports), sum(it["quantity"] for r in reports for it in r["items"])


def indexed_day(store: Store, grid: str | None, day: date) -> tuple[int, float]:
    sums = store.days.day_reports(iso_week(day), grid, day.isoformat())
    return (len(sums.reports), sum(sums.totals.values())) if sums else (0, 0)


async def started(path) -> Store:
    return await started_store(path, WED)


async def test_who_checked_in_follows_every_change_and_survives_a_restart(tmp_path):
    store = await started(tmp_path)
    await store.put_many([("checkins", checkin("C1", "lisi", "g1"), WEEK),
                          ("checkins", checkin("C2", "lisi", "g1"), WEEK),  # twice the same day
                          ("checkins", checkin("C3", "wangwu", "g1"), WEEK),
                          ("checkins", checkin("C4", "zhouba", "g2", counted=False), WEEK),
                          ("checkins", checkin("C5", "sunqi", "g2", day=date(2026, 11, 24)), WEEK)])
    assert checked_in(store, WED) == scanned_present(store, WED) == {"lisi", "wangwu"}
    assert checked_in(store, WED, "g1") == scanned_present(store, WED, "g1") == {"lisi", "wangwu"}
    assert checked_in(store, WED, "g2") == scanned_present(store, WED, "g2") == set()

    # One of lisi's two check-ins found to be a duplicate: the other still counts.
    await store.put("checkins", checkin("C1", "lisi", "g1", counted=False))
    assert "lisi" in present_on(store, WED)
    # Both gone: lisi has not checked in any more. zhouba's check-in counted after all.
    await store.put("checkins", checkin("C2", "lisi", "g1", counted=False))
    await store.put("checkins", checkin("C4", "zhouba", "g2"))
    assert checked_in(store, WED) == scanned_present(store, WED) == {"wangwu", "zhouba"}
    assert tracking_start(store) == date(2026, 11, 24)
    await store.close()

    again = Store(tmp_path)
    again.load(today=WED)
    assert checked_in(again, WED) == {"wangwu", "zhouba"}
    assert checked_in(again, date(2026, 11, 24)) == {"sunqi"}
    assert tracking_start(again) == date(2026, 11, 24)


async def test_a_grids_day_of_reports_counts_only_counted_ones_through_changes(tmp_path):
    store = await started(tmp_path)
    await store.put_many([("reports", report("R1", "lisi", "g1", qty=15), WEEK),
                          ("reports", report("R2", "wangwu", "g1", qty=5), WEEK),
                          ("reports", report("R3", "wangwu", "g1", qty=7, unconfirmed=True), WEEK),
                          ("reports", report("R4", "zhouba", "g2", qty=2), WEEK),
                          ("reports", report("R5", "zhouba", "g2", qty=9, day=date(2026, 11, 24)), WEEK)])
    for grid in ("g1", "g2", None):
        assert indexed_day(store, grid, WED) == scanned_day(store, grid, WED)
    assert indexed_day(store, "g1", WED) == (2, 20)
    assert indexed_day(store, None, WED) == (3, 22)

    await store.put("reports", report("R2", "wangwu", "g1", qty=5, status="withdrawn"))  # 撤回
    await store.put("reports", report("R3", "wangwu", "g1", qty=7))  # 核实: confirmed by the grid leader
    assert counted(store.get("reports", "R3"))
    assert indexed_day(store, "g1", WED) == scanned_day(store, "g1", WED) == (2, 22)
    await store.close()

    again = Store(tmp_path)
    again.load(today=WED)
    assert indexed_day(again, "g1", WED) == (2, 22)
    assert indexed_day(again, "g2", date(2026, 11, 24)) == (1, 9)


async def test_open_problems_per_grid_follow_their_status_and_grid(tmp_path):
    store = await started(tmp_path)

    def problem(pid: str, grid: str, status: str = "open") -> dict:
        return {"id": pid, "grid": grid, "status": status, "deadline": int(pid[1:])}

    await store.put_many([("problems", problem("P1", "g1"), None), ("problems", problem("P2", "g1", "pending_check"), None),
                          ("problems", problem("P3", "g2"), None), ("problems", problem("P4", "g1", "closed"), None)])
    assert [p["id"] for p in open_problems(store, "g1")] == ["P1", "P2"]
    await store.put("problems", problem("P1", "g1", "closed"))
    await store.put("problems", problem("P3", "g1"))  # registered in the wrong grid, moved
    await store.put("problems", problem("P4", "g1", "open"))  # reopened (rejected at its check)
    assert [p["id"] for p in open_problems(store, "g1")] == ["P2", "P3", "P4"]
    assert open_problems(store, "g2") == []
    assert [p["id"] for p in open_problems(store)] == ["P2", "P3", "P4"]
    await store.close()


async def test_the_days_sums_are_worked_out_off_the_loop_after_a_restart(tmp_path, monkeypatch):
    store = await started(tmp_path)
    await store.put_many([("reports", report(f"R{n}", f"u{n}", f"g{n % 3}", qty=n), WEEK) for n in range(1, 31)])
    await store.close()
    again = await started(tmp_path)
    await again.warmed()  # what the start reads and works out in the background

    def on_the_loop(self):
        raise AssertionError("a day's reports summed when a job asked")
    monkeypatch.setattr(DaySums, "_sum", on_the_loop)
    day = again.days.day_reports(WEEK, "g1", WED.isoformat())
    assert day.totals == {("ads", "处"): float(sum(n for n in range(1, 31) if n % 3 == 1))}
    assert day.units == {("ads", "处"): 10}
    # A report that comes after is added to the sums, as before.
    await again.put("reports", report("R99", "u99", "g1", qty=5), shard=WEEK)
    assert again.days.day_reports(WEEK, "g1", WED.isoformat()).totals[("ads", "处")] == 150
    await again.close()


def test_sums_worked_out_before_a_change_are_not_taken():
    index = DayIndex()
    index.add("reports", WEEK, report("R1", "u1", "g1", qty=2))
    [(day, version, docs)] = [t for t in index.unsummed() if t[0] is index.day_reports(WEEK, "g1", WED.isoformat())]
    totals, units = sums_of(docs)
    index.add("reports", WEEK, report("R2", "u2", "g1", qty=3))  # while the thread was summing
    day.adopt(version, totals, units)
    assert day.totals == {("ads", "处"): 5}
