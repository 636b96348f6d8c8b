"""Small aggregates the Store keeps as records arrive, so the daily jobs cost O(grids).

The reminder, the nudge, the escalation and the ladder ask, for every grid, who checked in on a
day, what a grid reported on a day and which problems are still open. Scanning a week of records
per grid for that grows with grids × records: 75 s of a frozen event loop for a district. These
aggregates answer each question from what was indexed when the record was stored (or loaded),
and the Store feeds them from its one write path, so they can never disagree with the records.

Keys carry the shard a record lives in: the questions are asked the way the records are read
("the counted check-ins in the shard of this day's week, dated this day"), so the answers are
exactly those of a scan. Documents are replaced whole, never mutated, so an aggregate may keep
references to them.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

CHECKINS, REPORTS, PROBLEMS = "checkins", "reports", "problems"
# bot.problem_ledger's NOT_CLOSED: open (being fixed) or a fix waiting for its check. Repeated
# here because the ledger imports the store, not the other way round.
NOT_CLOSED = ("open", "pending_check")
MAIN = "main"

Totals = dict[tuple[str, str], float]


def counted(report: dict) -> bool:
    """A report counts in totals and rankings unless withdrawn or waiting for confirmation."""
    return report.get("status") == "active" and not report.get("unconfirmed")


class DaySums:
    """A grid's (or everyone's) counted reports of one work day, with their sums worked out
    once and kept until one of them changes."""
    __slots__ = ("reports", "_totals", "_units", "version")

    def __init__(self) -> None:
        self.reports: dict[str, dict] = {}
        self._totals: Totals | None = None
        self._units: Counter | None = None
        self.version = 0  # changes with the reports: sums worked out in a thread check it

    def changed(self) -> None:
        self._totals = self._units = None
        self.version += 1

    def added(self, doc: dict) -> None:
        """One more report: the sums already worked out grow by it (every report of a busy day
        would otherwise send the next question back to the whole day)."""
        self.version += 1
        if self._totals is None or self._units is None:
            return
        for it in doc.get("items", []):
            key = (it["category"], it["unit"])
            self._totals[key] = self._totals.get(key, 0.0) + it["quantity"]
            self._units[key] += 1

    def _sum(self) -> None:
        self._totals, self._units = sums_of(self.reports.values())

    def adopt(self, version: int, totals: Totals, units: Counter) -> None:
        """Sums worked out elsewhere (bot.store_digest, in a thread) from the reports as they were
        at `version`: kept unless a report came or went since."""
        if version == self.version and self._totals is None:
            self._totals, self._units = totals, units

    @property
    def totals(self) -> Totals:
        """(category, unit) → summed quantity."""
        if self._totals is None:
            self._sum()
        return self._totals  # type: ignore[return-value]

    @property
    def units(self) -> Counter:
        """(category, unit) → how many items were reported in it."""
        if self._units is None:
            self._sum()
        return self._units  # type: ignore[return-value]


def sums_of(reports) -> tuple[Totals, Counter]:
    """(category, unit) → summed quantity, and → how many items, over these reports."""
    totals: dict[tuple[str, str], float] = {}
    units: Counter = Counter()
    for r in reports:
        for it in r.get("items", []):
            key = (it["category"], it["unit"])
            totals[key] = totals.get(key, 0.0) + it["quantity"]
            units[key] += 1
    return totals, units


CheckinAggregates = tuple[dict[tuple[str, str], Counter], Counter]


def checkin_aggregates(shard: str, dates: list, grids: list, userids: list, counted: list) -> CheckinAggregates:
    """DayIndex's check-in aggregates of one shard from its columns, built apart from any index
    (so in a thread, if need be). The repeated strings are shared: a month of these is a million
    entries."""
    same: dict = {}
    present: dict[tuple[str, str], Counter] = {}
    by_date: Counter = Counter()
    for day, grid, userid, ok in zip(dates, grids, userids, counted):
        if not day:
            continue
        day = same.setdefault(day, day)
        by_date[day] += 1
        if ok:
            people = present.get((shard, day))
            if people is None:
                people = present[(shard, day)] = Counter()
            people[same.setdefault((grid, userid), (grid, userid))] += 1
    return present, by_date


class DayIndex:
    def __init__(self) -> None:
        # (shard, date) → (grid, userid) → counted check-ins; a person stays "present" until the
        # last of their counted check-ins of the day is gone.
        self._present: dict[tuple[str, str], Counter] = {}
        self._present_users: dict[tuple[str, str], frozenset[str]] = {}  # derived, dropped on change
        # shard → date → check-ins of any kind (when tracking began)
        self._dates: dict[str, Counter] = {}
        # (shard, grid or None for every grid) → work date → counted reports of that day
        self._reports: dict[tuple[str, str | None], dict[str, DaySums]] = {}
        # grid → id → problem not closed yet (main shard)
        self._open: dict[Any, dict[str, dict]] = {}

    # --- fed by the Store ----------------------------------------------------------------
    def add(self, table: str, shard: str, doc: dict) -> None:
        # Called for every record loaded at start: no object is built that is not kept.
        if table == CHECKINS:
            day = doc.get("date")
            if day:
                dates = self._dates.get(shard)
                if dates is None:
                    dates = self._dates[shard] = Counter()
                dates[day] += 1
                if doc.get("counted", True):
                    key = (shard, day)
                    people = self._present.get(key)
                    if people is None:
                        people = self._present[key] = Counter()
                    people[(doc.get("grid"), doc.get("userid"))] += 1
                    self._present_users.pop(key, None)
        elif table == REPORTS:
            if counted(doc):
                work_date = doc.get("work_date")
                for grid in (doc.get("grid"), None):
                    days = self._reports.get((shard, grid))
                    if days is None:
                        days = self._reports[(shard, grid)] = {}
                    day = days.get(work_date)
                    if day is None:
                        day = days[work_date] = DaySums()
                    if doc["id"] in day.reports:  # the Store removes a replaced one first; to be safe
                        day.changed()
                    else:
                        day.added(doc)
                    day.reports[doc["id"]] = doc
        elif table == PROBLEMS:
            if shard == MAIN and doc.get("status") in NOT_CLOSED:
                self._open.setdefault(doc.get("grid"), {})[doc["id"]] = doc

    def add_checkins(self, shard: str, dates: list, grids: list, userids: list, counted: list) -> None:
        """A shard's check-ins given column by column (an older week's digest, whose documents
        are not held): the same aggregates as add() of each."""
        self.adopt(shard, checkin_aggregates(shard, dates, grids, userids, counted))

    def adopt(self, shard: str, built: "CheckinAggregates") -> None:
        """Take what checkin_aggregates built (maybe in a thread) for a shard not indexed yet."""
        present, dates = built
        for key, people in present.items():
            self._present[key] = people
            self._present_users.pop(key, None)
        if dates:
            self._dates[shard] = dates

    def take(self, other: "DayIndex") -> None:
        """Take in what another index holds (a shard table built apart: bot.store_build); keyed
        by shard, so O(days + grids)."""
        for key, people in other._present.items():
            self._present[key] = people
            self._present_users.pop(key, None)
        self._dates.update(other._dates)
        self._reports.update(other._reports)
        for grid, problems in other._open.items():
            self._open.setdefault(grid, {}).update(problems)

    def remove(self, table: str, shard: str, doc: dict) -> None:
        if table == CHECKINS:
            dates = self._dates.get(shard)
            if doc.get("date") and dates is not None and dates.get(doc["date"]):
                dates[doc["date"]] -= 1
                if dates[doc["date"]] <= 0:
                    del dates[doc["date"]]
            if doc.get("counted", True) and doc.get("date"):
                key = (shard, doc["date"])
                people = self._present.get(key)
                who = (doc.get("grid"), doc.get("userid"))
                if people is not None and people.get(who):
                    people[who] -= 1
                    if people[who] <= 0:
                        del people[who]
                    if not people:
                        del self._present[key]
                self._present_users.pop(key, None)
        elif table == REPORTS:
            if counted(doc):
                for grid in (doc.get("grid"), None):
                    days = self._reports.get((shard, grid), {})
                    day = days.get(doc.get("work_date"))
                    if day is not None and day.reports.pop(doc["id"], None) is not None:
                        day.changed()
                        if not day.reports:
                            del days[doc.get("work_date")]
        elif table == PROBLEMS:
            if shard == MAIN:
                by_grid = self._open.get(doc.get("grid"))
                if by_grid is not None:
                    by_grid.pop(doc["id"], None)

    def drop(self, shard: str, table: str) -> None:
        """Forget a shard's table (let go from the Store's memory): keyed by shard, so this
        costs O(days + grids)."""
        if table == CHECKINS:
            for key in [k for k in self._present if k[0] == shard]:
                del self._present[key]
                self._present_users.pop(key, None)
            self._dates.pop(shard, None)
        elif table == REPORTS:
            for key in [k for k in self._reports if k[0] == shard]:
                del self._reports[key]
        elif table == PROBLEMS and shard == MAIN:
            self._open.clear()

    # --- asked by the jobs (through bot.attendance, bot.records, bot.problem_ledger) ----------
    def present(self, shard: str, day: str, grid: str | None = None) -> frozenset[str]:
        """Userids with a counted check-in dated `day` in `shard` (of one grid, when given)."""
        key = (shard, day)
        if grid is not None:
            return frozenset(u for g, u in self._present.get(key, ()) if g == grid)
        users = self._present_users.get(key)
        if users is None:
            users = self._present_users[key] = frozenset(u for _, u in self._present.get(key, ()))
        return users

    def first_checkin_day(self, shard: str) -> str | None:
        """The earliest date of any check-in in `shard`, counted or not."""
        dates = self._dates.get(shard)
        return min(dates) if dates else None

    def day_reports(self, shard: str, grid: str | None, day: str) -> DaySums | None:
        """The counted reports of `grid` (every grid: None) with work date `day`, in `shard`."""
        return self._reports.get((shard, grid), {}).get(day)

    def unsummed(self) -> list[tuple[DaySums, int, list[dict]]]:
        """Each day whose sums are not worked out yet, its version and its reports (a list, so
        that a thread may sum them while the loop changes the day)."""
        return [(day, day.version, list(day.reports.values()))
                for days in self._reports.values() for day in days.values() if day._totals is None]

    def report_days(self, shard: str, grid: str | None) -> dict[str, DaySums]:
        """Work date → counted reports of `grid` (None: every grid) in `shard`."""
        return self._reports.get((shard, grid), {})

    def not_closed(self, grid: Any) -> list[dict]:
        """Problems of `grid` not closed yet, in no particular order."""
        return list(self._open.get(grid, {}).values())
