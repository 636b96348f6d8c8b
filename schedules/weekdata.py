"""One week's numbers per grid, community and street, read once from the store.

The digest, the chart and the ledger all work from a WeekData snapshot, so they agree with
each other and the slow parts (rendering, xlsx) can run in a thread without touching the store.
Attendance (expected days, check-in days, leave, rates, ranks, missing runs) is not computed
here: it is attendance.grid_week_stats's, the same numbers the grid groups get in the tally.
What is only the digest's lives here: the week's records per grid, roll-ups, week-over-week.
Docs are replaced whole in the store, never mutated, so holding references to them is safe.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from bot.clock import iso_week, week_bounds
from bot.config import Config
from bot.ladder import topped_checkins
from bot.problem_ledger import WITHDRAWN
from bot.problem_places import hot_spots
from bot.records import counted
from bot.store import Store
from bot.attendance import GridWeek as GridAttendance
from bot.attendance import PersonWeek, Totals, grid_week_stats, pooled_rate, week_workdays

# Check-in flags and report flags a leader should look at (in this order).
# Records of people outside every grid (leaders, office staff reporting their own work).
NO_GRID = "领导及机关"
CHECKIN_ISSUES = ("duplicate", "stale", "outside")
REPORT_ISSUES = ("implausible", "repeat")
ISSUE_ZH = {
    "duplicate": "疑似重复照片",
    "stale": "旧照片",
    "outside": "不在网格范围",
    "implausible": "数量超出常规",
    "repeat": "重复上报",
    "late": "补报",
    "offhours": "非工作时段",
    "no_exif": "无拍摄信息",
}


@dataclass
class GridWeek:
    """One grid's week: its records, and its attendance as grid_week_stats gives it."""
    id: str
    name: str
    community: str
    configured: bool = True
    targets: dict[str, float] = field(default_factory=dict)
    attendance: GridAttendance | None = None  # None for a grid no longer configured: nobody to rate
    prev_attendance: GridAttendance | None = None  # the week before, for week-over-week
    reports: list[dict] = field(default_factory=list)  # every report of the week, counted or not
    checkins: list[dict] = field(default_factory=list)  # every check-in of the week
    totals: Totals = field(default_factory=dict)
    prev_totals: Totals = field(default_factory=dict)

    @property
    def people(self) -> list[PersonWeek]:
        return self.attendance.people if self.attendance else []

    @property
    def rate(self) -> float | None:
        return self.attendance.rate if self.attendance else None

    @property
    def prev_rate(self) -> float | None:
        return self.prev_attendance.rate if self.prev_attendance else None

    @property
    def rank(self) -> int | None:
        """Among all configured grids, as in the tally (rate, then items per 100 households)."""
        return self.attendance.rank if self.attendance else None

    @property
    def counted_reports(self) -> list[dict]:
        return [r for r in self.reports if counted(r)]

    @property
    def counted_checkins(self) -> int:
        return sum(1 for c in self.checkins if c.get("counted", True))


@dataclass
class Rollup:
    """Sums over a set of grids (a community, a leader's scope, the street)."""
    name: str
    grids: list[GridWeek]
    people: int
    rate: float | None
    prev_rate: float | None
    reports: int
    checkins: int
    totals: Totals
    prev_totals: Totals


@dataclass
class WeekData:
    week: str
    monday: date
    sunday: date
    workdays: list[date]
    rated_days: list[date]  # the workdays check-in rates divide by (so far, for a running week)
    as_of: datetime
    grids: dict[str, GridWeek]  # configured grids first, in config order
    problems: list[dict]  # every problem touching the week (opened, closed, or open across it)
    start_ts: float
    end_ts: float
    # Places where problems keep coming back (bot.problem_places.hot_spots) as of `as_of`, and
    # the members whose missed check-ins reached the top of the escalation ladder in the week.
    hot_spots: list[list[dict]] = field(default_factory=list)
    topped_checkins: list[dict] = field(default_factory=list)
    _by_grid: dict[str | None, list[int]] | None = field(default=None, repr=False, compare=False)
    # Each grid's ledger rows, built once for all the ledgers of this week (schedules.ledger_rows).
    ledger_rows: dict = field(default_factory=dict, repr=False, compare=False)

    def grid_list(self, ids: list[str] | None = None) -> list[GridWeek]:
        if ids is None:
            return list(self.grids.values())
        return [self.grids[g] for g in ids if g in self.grids]

    def problems_of(self, grid_ids: set[str]) -> list[dict]:
        """The problems of these grids, in the order of `problems` (by opening time)."""
        if len(grid_ids) * 4 > len(self.grids):
            return [p for p in self.problems if p.get("grid") in grid_ids]
        # A community of a district: its few grids' lists, not a pass over the district's problems
        # for each of its hundred leaders.
        if self._by_grid is None:
            self._by_grid = defaultdict(list)
            for i, p in enumerate(self.problems):
                self._by_grid[p.get("grid")].append(i)
        picked = sorted(i for g in grid_ids for i in self._by_grid.get(g, ()))
        return [self.problems[i] for i in picked]

    def opened_in_week(self, p: dict) -> bool:
        return self.start_ts <= (p.get("opened_at") or 0) < self.end_ts

    def closed_in_week(self, p: dict) -> bool:
        return p.get("status") == "closed" and self.start_ts <= (p.get("closed_at") or 0) < self.end_ts

    def open_at(self, p: dict, ts: float) -> bool:
        """Registered before ts and not closed by then."""
        if (p.get("opened_at") or 0) >= ts:
            return False
        return p.get("status") != "closed" or (p.get("closed_at") or 0) >= ts

    def overdue(self, p: dict) -> bool:
        # A fix waiting for its check is not overdue: the rectifier has done their part.
        ts = self.as_of.timestamp()
        return self.open_at(p, ts) and (p.get("deadline") or ts) < ts and p.get("status") != "pending_check"


def scope_grid_ids(cfg: Config, scope: list[str] | None) -> list[str]:
    """Grid ids a leader oversees: the listed grids plus every grid of the listed communities."""
    if not scope:
        return [g.id for g in cfg.grids]
    wanted = set(scope)
    return [g.id for g in cfg.grids if g.id in wanted or (g.community and g.community in wanted)]


def scope_name(cfg: Config, scope: list[str] | None) -> str:
    if not scope:
        return cfg.bot.street or "全街道"
    community_ids = {c.id for c in cfg.communities}
    names = [cfg.community_name(s) if s in community_ids else (cfg.grid(s).name if cfg.grid(s) else s)
             for s in scope]
    return "、".join(names[:3]) + ("等" if len(names) > 3 else "")


def add_totals(into: Totals, items: list[dict]) -> None:
    for it in items:
        key = (it["category"], it["unit"])
        into[key] = into.get(key, 0) + it["quantity"]


def sum_totals(many: list[Totals]) -> Totals:
    out: Totals = defaultdict(float)
    for t in many:
        for k, v in t.items():
            out[k] += v
    return dict(out)


def _prev_week(week: str) -> str:
    monday, _ = week_bounds(week)
    return iso_week(monday - timedelta(days=7))


def collect_week(cfg: Config, store: Store, week: str, as_of: datetime | None = None) -> WeekData:
    """Read one ISO week (and the week before, for week-over-week) into a WeekData."""
    monday, sunday = week_bounds(week)
    week = week.upper()
    tz = cfg.tz
    start = datetime.combine(monday, time(0), tz)
    end = start + timedelta(days=7)
    # "Now": for a digest, when it is sent (after the week); for a ledger, the end of the week.
    as_of = as_of or end
    if as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=tz)
    last_day = min(sunday, (as_of - timedelta(microseconds=1)).astimezone(tz).date())
    # A week still running is rated on the workdays so far, not on days still to come.
    stats = grid_week_stats(store, week, cfg, through=last_day)
    prev = _prev_week(week)
    prev_stats = grid_week_stats(store, prev, cfg)

    grids: dict[str, GridWeek] = {
        g.id: GridWeek(g.id, g.name, g.community, targets=dict(g.targets), attendance=stats.grids[g.id],
                       prev_attendance=prev_stats.grids[g.id])
        for g in cfg.grids}

    def grid_for(gid: str | None) -> GridWeek:
        gid = gid or ""
        g = grids.get(gid)
        if g is None:
            # A grid removed from the config (or none): keep its records in the street's ledger.
            g = grids[gid] = GridWeek(gid, gid or NO_GRID, "", configured=False)
        return g

    for r in store.docs("reports", [week]):
        g = grid_for(r.get("grid"))
        g.reports.append(r)
        if counted(r):
            add_totals(g.totals, r.get("items", []))
    for c in store.docs("checkins", [week]):
        grid_for(c.get("grid")).checkins.append(c)
    for g in grids.values():
        g.reports.sort(key=lambda r: (r.get("work_date", ""), r.get("sent_at") or 0))
        g.checkins.sort(key=lambda c: (c.get("time") or 0))
    for r in store.docs("reports", [prev]):
        if counted(r) and r.get("grid") in grids:
            add_totals(grids[r["grid"]].prev_totals, r.get("items", []))

    s, e = start.timestamp(), end.timestamp()
    as_ts = as_of.timestamp()
    # A withdrawn problem was registered by mistake or twice: in no count, list or ledger.
    problems = [p for p in store.docs("problems", ["main"])
                if p.get("status") != WITHDRAWN and (p.get("opened_at") or 0) < max(e, as_ts)
                and (p.get("status") != "closed" or (p.get("closed_at") or 0) >= s)]
    problems.sort(key=lambda p: (p.get("opened_at") or 0, p.get("id", "")))
    return WeekData(week, monday, sunday, week_workdays(cfg, week), stats.workdays, as_of, grids, problems, s, e,
                    hot_spots=hot_spots(cfg, store.docs("problems", ["main"]), as_ts),
                    topped_checkins=topped_checkins(store, s))


def rollup(name: str, grids: list[GridWeek]) -> Rollup:
    # Pooled like a grid's own rate, so a one-grid community shows exactly its grid's rate.
    return Rollup(
        name=name,
        grids=grids,
        people=sum(len(g.people) for g in grids),
        rate=pooled_rate(g.attendance for g in grids if g.attendance),
        prev_rate=pooled_rate(g.prev_attendance for g in grids if g.prev_attendance),
        reports=sum(len(g.counted_reports) for g in grids),
        checkins=sum(g.counted_checkins for g in grids),
        totals=sum_totals([g.totals for g in grids]),
        prev_totals=sum_totals([g.prev_totals for g in grids]),
    )


def communities_of(cfg: Config, grids: list[GridWeek]) -> list[tuple[str, str, list[GridWeek]]]:
    """(community id, name, its grids) in config order; grids without a community last."""
    order = [c.id for c in cfg.communities]
    by: dict[str, list[GridWeek]] = defaultdict(list)
    for g in grids:
        by[g.community].append(g)
    keys = [c for c in order if c in by] + [c for c in by if c not in order]
    return [(c, cfg.community_name(c) if c else "其他", by[c]) for c in keys]


def ordered_units(cfg: Config, totals_list: list[Totals]) -> list[tuple[str, str]]:
    """(category, unit) pairs in category priority order, the most used unit first."""
    weight: dict[tuple[str, str], float] = defaultdict(float)
    for t in totals_list:
        for k, v in t.items():
            weight[k] += 1 + abs(v)
    order = {c.id: i for i, c in enumerate(cfg.category_list)}
    return sorted(weight, key=lambda k: (order.get(k[0], len(order)), -weight[k], k[1]))
