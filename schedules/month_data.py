"""One month's numbers per grid, read once from the store: what the 月通报, its chart and its
ledger all show, so they agree with each other (as WeekData does for the week).

Attendance and points come from the core (bot.months, bot.scoring), the same figures `我的积分`
answers with. What is only the bulletin's lives here: work by category and its change against
the previous month, monthly targets, household coverage, problems opened and closed, the
campaign days, and a light summary of every earlier month of the year for the chart.
Docs are replaced whole in the store, never mutated, so holding references to them is safe.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cached_property

from bot.attendance import Totals, rate_of
from bot.config import Campaign, Config
from bot.months import (PersonMonth, campaign_days, day_rate, month_bounds, month_span,
                        month_workdays, months_of_year, previous_month)
from bot.scoring import Entry, GridPoints, PersonPoints, Standings
from bot.store import Store
from schedules.month_fold import MonthFold, fold_weeks
from schedules.weekdata import sum_totals


@dataclass
class Coverage:
    """入户走访覆盖率 of one grid (or summed over several): distinct named households plus the
    quantities of reports that name none, over the households configured."""
    households: int
    named: int = 0  # distinct households named in reports
    counted: float = 0.0  # households from reports that name none: their quantity, maybe repeats

    @property
    def visited(self) -> float:
        return self.named + self.counted

    @property
    def rate(self) -> float | None:
        # A home visited twice without an address can push the sum past the total: cap at 100%.
        return min(1.0, self.visited / self.households) if self.households else None


@dataclass
class Target:
    category: str
    label: str
    unit: str
    done: float
    target: float

    @property
    def ratio(self) -> float:
        return self.done / self.target if self.target else 1.0

    @property
    def met(self) -> bool:
        return self.done >= self.target


@dataclass
class GridMonth:
    id: str
    name: str
    community: str
    people: list[PersonMonth]
    points: GridPoints
    prev_points: GridPoints | None
    reports: int = 0  # counted reports with a work date in the month
    totals: Totals = field(default_factory=dict)
    prev_totals: Totals = field(default_factory=dict)
    prev_checkin_days: int = 0
    prev_expected_days: int = 0
    targets: list[Target] = field(default_factory=list)
    coverage: Coverage | None = None
    opened: list[dict] = field(default_factory=list)  # problems registered in the month
    closed_on_time: list[dict] = field(default_factory=list)
    closed_late: list[dict] = field(default_factory=list)
    overdue: list[dict] = field(default_factory=list)  # open past their deadline at the month's end
    person_points: dict[str, PersonPoints] = field(default_factory=dict)  # its members' points

    @property
    def checkin_days(self) -> int:
        return sum(len(p.checkin_days) for p in self.people)

    @property
    def expected_days(self) -> int:
        return sum(len(p.expected) for p in self.people)

    @property
    def rate(self) -> float | None:
        return rate_of(self.checkin_days, self.expected_days)

    @property
    def prev_rate(self) -> float | None:
        return rate_of(self.prev_checkin_days, self.prev_expected_days)

    @property
    def per_member(self) -> float | None:
        return self.points.per_member

    @property
    def prev_per_member(self) -> float | None:
        return self.prev_points.per_member if self.prev_points else None


@dataclass
class MonthPoint:
    """One earlier month of one grid, for the chart: enough for its rate and points per member."""
    checkin_days: int
    expected_days: int
    points: float
    members: int


@dataclass
class MonthData:
    month: str
    first: date
    last: date
    workdays: list[date]  # the month's workdays (all of them, even for a month still running)
    rated_days: list[date]  # the workdays rates divide by: up to as_of
    as_of: datetime
    grids: dict[str, GridMonth]  # config order
    standings: Standings
    prev_standings: Standings
    campaigns: list[tuple[Campaign, list[date]]]
    outside_reports: int  # counted reports of people outside every grid (leaders, office staff)
    history: dict[str, dict[str, MonthPoint]]  # month → grid → its summary, this month included

    def grid_list(self, ids: list[str] | None = None) -> list[GridMonth]:
        return list(self.grids.values()) if ids is None else [self.grids[g] for g in ids if g in self.grids]

    @cached_property
    def _spans(self) -> dict[tuple[date, str], tuple[int, int]]:
        # The entries are sorted by day, then grid: each (day, grid) is one run of the list.
        spans: dict[tuple[date, str], tuple[int, int]] = {}
        for i, e in enumerate(self.standings.entries):
            key = (e.day, e.grid)
            first = spans.get(key)
            spans[key] = (i if first is None else first[0], i + 1)
        return spans

    def entries_of(self, grid_ids: Iterable[str]) -> Iterator[Entry]:
        """The month's entries of these grids, in the ledger's order, without a pass over all of
        them: a district's hundred leader scopes would each walk its million entries."""
        wanted, entries = set(grid_ids), self.standings.entries
        for (_, grid), (lo, hi) in self._spans.items():
            if grid in wanted:
                yield from entries[lo:hi]

    def entry_counts(self) -> dict[str, int]:
        """How many entries each grid has (grid ids as the entries name them)."""
        counts: dict[str, int] = {}
        for (_, grid), (lo, hi) in self._spans.items():
            counts[grid] = counts.get(grid, 0) + hi - lo
        return counts

    @property
    def complete(self) -> bool:
        return self.as_of.date() > self.last


def pooled(grids: list[GridMonth]) -> float | None:
    return rate_of(sum(g.checkin_days for g in grids), sum(g.expected_days for g in grids))


def prev_pooled(grids: list[GridMonth]) -> float | None:
    return rate_of(sum(g.prev_checkin_days for g in grids), sum(g.prev_expected_days for g in grids))


def points_per_member(grids: list[GridMonth], prev: bool = False) -> float | None:
    members = sum(g.points.members for g in grids)
    pts = [g.prev_points if prev else g.points for g in grids]
    if not members or any(p is None for p in pts):
        return None
    return sum(p.total for p in pts) / members  # type: ignore[union-attr]


def coverage_of(grids: list[GridMonth]) -> Coverage | None:
    covs = [g.coverage for g in grids if g.coverage is not None]
    if not covs:
        return None
    return Coverage(sum(c.households for c in covs), sum(c.named for c in covs), sum(c.counted for c in covs))


def day_rates(data: MonthData, grids: list[GridMonth], days: list[date]) -> list[tuple[date, int, int]]:
    """(day, checked in, expected) for each day, over these grids' people."""
    people = [p for g in grids for p in g.people]
    return [(d, *day_rate(people, d)) for d in days]


# --- reading -------------------------------------------------------------------------------------

def _targets(cfg: Config, wanted: dict[str, float], totals: Totals) -> list[Target]:
    out = []
    for cat, target in wanted.items():
        # Every unit of the category counts toward its target, as the weekly targets count.
        done = sum(q for (c, _), q in totals.items() if c == cat)
        unit = max(((u, q) for (c, u), q in totals.items() if c == cat), key=lambda uq: uq[1], default=("", 0))[0]
        out.append(Target(cat, cfg.category_label(cat), unit, done, target))
    return out


def collect_month(cfg: Config, store: Store, month: str, as_of: datetime | None = None, *,
                  history: bool = True) -> MonthData:
    """Read one month (and the one before, and with `history` every earlier month of its year),
    each week once, folding the records as they pass (schedules.month_fold)."""
    tz = cfg.tz
    first, last = month_bounds(month)
    start, end = month_span(month, tz)
    as_of = (as_of or datetime.fromtimestamp(end, tz)).astimezone(tz)
    cut = min(as_of.timestamp(), end)
    problems = sorted(store.docs("problems", ["main"]), key=lambda p: (p.get("opened_at") or 0, p.get("id", "")))
    running = as_of.timestamp() < end
    prev = previous_month(month)
    earlier = months_of_year(month)[:-2] if history else []
    shared: dict[str, str] = {}
    this = MonthFold(cfg, month, True, shared)
    before = MonthFold(cfg, prev, False, shared)
    folds = [*(MonthFold(cfg, m, False, shared) for m in earlier if m != prev), before, this]
    scored: dict[str, tuple[Standings, dict[str, PersonMonth]]] = {}
    hist: dict[str, dict[str, MonthPoint]] = {}

    def done(fold: MonthFold) -> None:
        # Scored as soon as its weeks have passed; an earlier month keeps only its summary.
        scored_ = fold.score(cfg, store, problems, as_of if fold is this and running else None,
                             skip_empty=fold.month in earlier)
        if scored_ is None:  # nothing in it: not in the chart (see has_records)
            hist[fold.month] = {g.id: MonthPoint(0, 0, 0.0, 0) for g in cfg.grids}
            return
        points, people = scored_
        if fold is this or fold is before:
            scored[fold.month] = (points, people)
        if fold is not this and (fold.month in earlier or fold is before and history
                                 and prev.split("-")[0] == month.split("-")[0]):
            hist[fold.month] = _summary(cfg, people, points)

    fold_weeks(store, folds, done)
    points, people = scored[month]
    prev_points, prev_people = scored[prev]
    # A month before the bot was in use has nothing to compare with: not "0%", no comparison at all.
    prev_in_use = before.any

    grids: dict[str, GridMonth] = {}
    members, before_members = _by_grid(people), _by_grid(prev_people)
    for g in cfg.grids:
        mine, ago = members.get(g.id, []), before_members.get(g.id, [])
        cov = this.coverage.get(g.id)
        gm = GridMonth(g.id, g.name, g.community, mine, points.grids[g.id],
                       prev_points.grids.get(g.id) if prev_in_use else None,
                       reports=this.reports.get(g.id, 0), totals=this.totals.get(g.id, {}),
                       prev_totals=before.totals.get(g.id, {}),
                       prev_checkin_days=sum(len(p.checkin_days) for p in ago) if prev_in_use else 0,
                       prev_expected_days=sum(len(p.expected) for p in ago) if prev_in_use else 0,
                       targets=_targets(cfg, g.monthly_targets, this.totals.get(g.id, {})),
                       coverage=Coverage(g.households, len(cov.seen), cov.counted) if cov else None,
                       person_points={p.userid: points.people[p.userid] for p in mine})
        grids[g.id] = gm
    for p in problems:
        gm = grids.get(p.get("grid"))
        if gm is None:
            continue
        opened, closed_at, deadline = p.get("opened_at") or 0, p.get("closed_at"), p.get("deadline")
        closed = p.get("status") == "closed" and closed_at is not None
        if start <= opened < cut:
            gm.opened.append(p)
        if closed and start <= closed_at < cut:
            (gm.closed_on_time if deadline is None or closed_at <= deadline else gm.closed_late).append(p)
        if opened < cut and not (closed and closed_at < cut) and deadline is not None and deadline < cut:
            gm.overdue.append(p)
    outside = sum(n for gid, n in this.reports.items() if gid not in grids)
    hist[month] = _summary(cfg, people, points)
    through = min(as_of.date(), last)
    return MonthData(month, first, last, month_workdays(cfg, month), month_workdays(cfg, month, through), as_of,
                     grids, points, prev_points, campaign_days(cfg, month, through), outside, hist)


def _by_grid(people: dict[str, PersonMonth]) -> dict[str, list[PersonMonth]]:
    # Once, not a pass over everyone per grid: a district is 1,000 grids of 24,000 people.
    out: dict[str, list[PersonMonth]] = {}
    for p in people.values():
        out.setdefault(p.grid, []).append(p)
    return out


def _summary(cfg: Config, people: dict[str, PersonMonth], pts: Standings) -> dict[str, MonthPoint]:
    out = {}
    members = _by_grid(people)
    for g in cfg.grids:
        mine = members.get(g.id, [])
        out[g.id] = MonthPoint(sum(len(p.checkin_days) for p in mine), sum(len(p.expected) for p in mine),
                               pts.grids[g.id].total, pts.grids[g.id].members)
    return out


def has_records(point: dict[str, MonthPoint]) -> bool:
    """Whether a month of the history shows anything (before the bot was in use, nothing does)."""
    return any(p.checkin_days or p.points for p in point.values())


def totals_of(grids: list[GridMonth], prev: bool = False) -> Totals:
    return sum_totals([g.prev_totals if prev else g.totals for g in grids])
