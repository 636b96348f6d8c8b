"""Months folded from their records as they stream past: every week shard read once, a
document at a time, and kept only as the few numbers and fields the bulletin needs.

A district's month is about two million reports and check-ins; held whole (with the month
before and every month of the year for the chart) they took gigabytes and, parsed in big
pieces, held the GIL long enough to stall the callback. Here each document is read
(Store.read_passing, or the snapshot's) and folded into its month: work totals and report
counts by grid, household coverage, each person's first counted check-in per day, and for
points a slim copy of the fields bot.scoring reads (never the texts, items or photos). The
bulletin's own month keeps a slim copy of every scored record, as its 积分明细 lists each one;
other months keep one copy per person and kind with a count, which scores the same. A month is
scored as soon as its last week has passed and only its summary kept.

The records a month reads are exactly those bot.months.read_month reads: dated in the month
and stored in one of the ISO weeks that overlap it.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Callable

from bot.config import Config
from bot.households import named_households
from bot.months import MonthRecords, PersonMonth, month_bounds
from bot.records import counted, weeks_between
from bot.scoring import BAD_PHOTO_FLAGS, Standings, iter_entries, month_standings
from schedules.weekdata import add_totals

COVERAGE_UNITS = ("户", "家")
# The fields bot.scoring and bot.months read from a report or check-in; a wrong count's
# history too (only for reports flagged implausible, a few in a thousand).
REPORT_FIELDS = ("id", "work_date", "userid", "name", "grid", "status", "unconfirmed")
CHECKIN_FIELDS = ("id", "date", "time", "userid", "name", "grid", "counted", "flags")
SHARED = ("work_date", "date", "userid", "name", "grid", "status")


class CoverageFold:
    """入户走访 of one grid as reports pass: distinct households named, and the quantities of
    reports that name none (see month_data.Coverage)."""

    def __init__(self, category: str, keywords: tuple[str, ...]):
        self.category, self.keywords = category, keywords
        self.seen: set[str] = set()
        self.counted = 0.0

    def add(self, r: dict) -> None:
        items = [it for it in r.get("items", []) if it["category"] == self.category]
        text = r.get("corrected_text") or r.get("text") or ""
        if not items and (r.get("items") or not any(k in text for k in self.keywords)):
            return
        named = named_households(text)
        if named:
            self.seen.update(named)
        else:
            self.counted += sum(it["quantity"] for it in items if it["unit"] in COVERAGE_UNITS)


class MonthFold:
    """One month's records reduced as they pass (`detailed`: the bulletin's own month)."""

    def __init__(self, cfg: Config, month: str, detailed: bool, shared: dict[str, str]):
        self.month, self.detailed = month, detailed
        self.first, self.last = month_bounds(month)
        self.lo, self.hi = self.first.isoformat(), self.last.isoformat()
        self.weeks = set(weeks_between(self.first, self.last))
        self.any = False  # any report or check-in dated in the month: was the bot in use?
        self.totals: dict[str, dict] = {}  # grid ("" for none) → (category, unit) → quantity
        self.reports: dict[str, int] = {}  # grid → counted reports
        self.coverage: dict[str, CoverageFold] = {}
        self._slim_reports: list[dict] = []
        self._repeats: dict[tuple, list] = {}  # (person, kind) → [slim report, how many]
        self._first_in: dict[str, dict] = {}  # day → userid → its first counted check-in (time, id)
        self._flagged: list[dict] = []  # check-ins with a photo flag, scored one by one
        self._shared = shared.setdefault
        cat = cfg.monthly.coverage_category
        if detailed and cat in cfg.category_order:
            keywords = next((c.keywords for c in cfg.category_list if c.id == cat), ())
            self.coverage = {g.id: CoverageFold(cat, tuple(keywords)) for g in cfg.grids if g.households}

    def _slim(self, doc: dict, fields: tuple[str, ...]) -> dict:
        keep = self._shared
        out = {}
        for f in fields:
            if f in doc:
                v = doc[f]
                out[f] = keep(v, v) if f in SHARED and v.__class__ is str else v
        return out

    def add_report(self, r: dict) -> None:
        if not self.lo <= (r.get("work_date") or "") <= self.hi:
            return
        self.any = True
        if counted(r):
            g = r.get("grid") or ""
            add_totals(self.totals.setdefault(g, {}), r.get("items", []))
            self.reports[g] = self.reports.get(g, 0) + 1
            cov = self.coverage.get(g)
            if cov is not None:
                cov.add(r)
        implausible = "implausible" in (r.get("flags") or [])
        if not (implausible or (r.get("status") == "active" and not r.get("unconfirmed"))):
            return  # earns no entry (bot.scoring.iter_entries)
        if self.detailed or implausible:
            slim = self._slim(r, REPORT_FIELDS)
            if implausible:
                slim["flags"], slim["history"] = r.get("flags"), r.get("history")
            self._slim_reports.append(slim)
            return
        # Scored by count: the entry's day and record do not change a total.
        key = (r.get("userid"), r.get("name"), r.get("grid"), r.get("status"), r.get("unconfirmed"),
               _valid_day(r["work_date"]))
        seen = self._repeats.get(key)
        if seen is None:
            self._repeats[key] = [self._slim(r, REPORT_FIELDS), 1]
        else:
            seen[1] += 1

    def add_checkin(self, c: dict) -> None:
        day = c.get("date") or ""
        if not self.lo <= day <= self.hi:
            return
        self.any = True
        if any(f in (c.get("flags") or []) for f in BAD_PHOTO_FLAGS):
            self._flagged.append(self._slim(c, CHECKIN_FIELDS))
        if not c.get("counted", True):
            return
        firsts = self._first_in.get(day)
        if firsts is None:
            firsts = self._first_in[day] = {}
        uid = c.get("userid")
        stamp = (c.get("time") or 0, c.get("id", ""))
        if uid not in firsts or stamp < firsts[uid]:
            firsts[uid] = stamp

    def records(self) -> MonthRecords:
        """The month's records as bot.months reads them, slimmed (and let go of here)."""
        reports = self._slim_reports + [slim for slim, n in self._repeats.values() for _ in range(n)]
        # Day by day: bot.months sorts the first check-ins by day, in C and holding the GIL, which
        # for input already in order is one pass instead of seconds for a district.
        checkins = self._flagged + [{"userid": uid, "date": day, "time": t, "id": cid}
                                    for day in sorted(self._first_in)
                                    for uid, (t, cid) in self._first_in[day].items()]
        self._slim_reports, self._repeats, self._first_in, self._flagged = [], {}, {}, []
        return MonthRecords(self.month, self.first, self.last, reports, checkins)

    def score(self, cfg: Config, store, problems: list[dict], as_of: datetime | None, skip_empty: bool = False,
              ) -> tuple[Standings, dict[str, PersonMonth]] | None:
        """Its points and attendance; with `skip_empty`, None for a month with no record and no
        problem entry, which the chart leaves out (a district's months before the bot: seconds each)."""
        if skip_empty and not self.any and next(iter_entries(cfg, self.records(), {}, problems), None) is None:
            return None
        points, _, people = month_standings(cfg, store, self.month, as_of, records=self.records(),
                                            problems=problems, ordered=self.detailed)
        return points, people


def _valid_day(text: str) -> bool:
    try:
        date.fromisoformat(text)
        return True
    except ValueError:
        return False


def fold_weeks(store, folds: list[MonthFold], done: Callable[[MonthFold], None]) -> None:
    """Stream every week shard the months overlap, once, in order, each document into its
    month; `done(fold)` as soon as a month's last week has passed."""
    by_month = {f.month: f for f in folds}
    weeks = sorted(set().union(*(f.weeks for f in folds)))
    waiting = sorted(folds, key=lambda f: max(f.weeks))
    for week in weeks:
        for table, field, add in (("reports", "work_date", MonthFold.add_report),
                                  ("checkins", "date", MonthFold.add_checkin)):
            if not store.has_table(week, table):
                continue
            # Python code and one short parse a document: the interpreter hands the GIL to
            # the event loop's thread within its switch interval (5 ms), as nothing here holds
            # it longer. (A time.sleep(0) every few hundred documents gave it sooner but cost a
            # scheduler slice each on a busy machine: a third more time for the job.)
            for doc in store.read_passing(week, table):
                fold = by_month.get((doc.get(field) or "")[:7])
                if fold is not None and week in fold.weeks:
                    add(fold, doc)
        while waiting and max(waiting[0].weeks) <= week:
            done(waiting.pop(0))
    for fold in waiting:
        done(fold)
