"""One week's numbers per person, grid, community and street, read once from the store.

The digest, the chart and the ledger all work from a WeekData snapshot, so they agree with
each other and the slow parts (rendering, xlsx) can run in a thread without touching the store.
Docs are replaced whole in the store, never mutated, so holding references to them is safe.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from ..clock import iso_week, week_bounds
from ..config import Config, Grid
from ..records import counted
from ..store import Store
from ..workdays import is_workday

Totals = dict[tuple[str, str], float]  # (category, unit) → quantity

# Check-in flags and report flags a leader should look at (in this order).
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
class PersonWeek:
    userid: str
    name: str
    grid: str
    role: str
    checkin_days: set[date] = field(default_factory=set)  # workdays with a counted check-in
    rate: float | None = None
    missing_run: list[date] = field(default_factory=list)  # longest run of missed workdays
    leave_days: set[date] = field(default_factory=set)
    reports: int = 0
    totals: Totals = field(default_factory=dict)


@dataclass
class GridWeek:
    id: str
    name: str
    community: str
    configured: bool = True
    targets: dict[str, float] = field(default_factory=dict)
    people: list[PersonWeek] = field(default_factory=list)
    reports: list[dict] = field(default_factory=list)  # every report of the week, counted or not
    checkins: list[dict] = field(default_factory=list)  # every check-in of the week
    totals: Totals = field(default_factory=dict)
    prev_totals: Totals = field(default_factory=dict)
    prev_rate: float | None = None
    rank: int | None = None  # among all configured grids with people, by check-in rate

    @property
    def rate(self) -> float | None:
        rates = [p.rate for p in self.people if p.rate is not None]
        return sum(rates) / len(rates) if rates else None

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

    def grid_list(self, ids: list[str] | None = None) -> list[GridWeek]:
        if ids is None:
            return list(self.grids.values())
        return [self.grids[g] for g in ids if g in self.grids]

    def problems_of(self, grid_ids: set[str]) -> list[dict]:
        return [p for p in self.problems if p.get("grid") in grid_ids]

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
        ts = self.as_of.timestamp()
        return self.open_at(p, ts) and (p.get("deadline") or ts) < ts


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


def leave_days(store: Store, tz, days: list[date]) -> dict[str, set[date]]:
    """Days each person is on leave: from the day leave was set (or always) to `until`."""
    out: dict[str, set[date]] = {}
    for doc in store.docs("leave", ["main"]):
        try:
            until = date.fromisoformat(doc["until"])
        except (KeyError, TypeError, ValueError):
            continue
        start = _day_of(doc.get("at"), tz)
        covered = {d for d in days if start <= d <= until}
        if covered:
            out[doc["id"]] = covered
    return out


def _day_of(at, tz) -> date:
    """When leave was asked for (unix time or ISO text); unknown means "since always"."""
    try:
        if isinstance(at, (int, float)):
            return datetime.fromtimestamp(at, tz).date()
        if isinstance(at, str):
            dt = datetime.fromisoformat(at)
            return (dt.astimezone(tz) if dt.tzinfo else dt).date()
    except (ValueError, OverflowError, OSError):
        pass
    return date.min


def _checkin_days(checkins: list[dict], workdays: set[date]) -> dict[str, set[date]]:
    out: dict[str, set[date]] = defaultdict(set)
    for c in checkins:
        if not c.get("counted", True):
            continue
        try:
            d = date.fromisoformat(c["date"])
        except (KeyError, TypeError, ValueError):
            continue
        if d in workdays:
            out[c["userid"]].add(d)
    return out


def longest_missing_run(workdays: list[date], present: set[date], leave: set[date],
                        until: date) -> list[date]:
    """Consecutive workdays (up to `until`) with no counted check-in; leave breaks a run."""
    best: list[date] = []
    run: list[date] = []
    for d in workdays:
        if d > until:
            break
        if d in present or d in leave:
            run = []
            continue
        run.append(d)
        if len(run) > len(best):
            best = list(run)
    return best


def _workdays(cfg: Config, week: str) -> list[date]:
    monday, _ = week_bounds(week)
    return [d for d in (monday + timedelta(days=i) for i in range(7)) if is_workday(d, cfg.calendar)]


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
    workdays = _workdays(cfg, week)
    last_day = min(sunday, (as_of - timedelta(microseconds=1)).astimezone(tz).date())
    # A week still running is rated on the workdays so far, not on days still to come.
    elapsed = [d for d in workdays if d <= last_day]

    grids: dict[str, GridWeek] = {}

    def grid_for(gid: str | None) -> GridWeek:
        gid = gid or ""
        g = grids.get(gid)
        if g is None:
            # A grid removed from the config (or none): keep its records in the street's ledger.
            g = grids[gid] = GridWeek(gid, gid or "未分网格", "", configured=False)
        return g

    for cg in cfg.grids:
        grids[cg.id] = _grid_week(cfg, cg)

    reports = list(store.docs("reports", [week]))
    checkins = list(store.docs("checkins", [week]))
    days = _checkin_days(checkins, set(elapsed))
    leave = leave_days(store, tz, workdays)
    people: dict[str, PersonWeek] = {}
    for g in grids.values():
        for p in cfg.grid_members(g.id):
            pw = PersonWeek(p.userid, p.name, g.id, p.role, checkin_days=days.get(p.userid, set()),
                            leave_days=leave.get(p.userid, set()))
            pw.rate = len(pw.checkin_days) / len(elapsed) if elapsed else None
            pw.missing_run = longest_missing_run(workdays, pw.checkin_days, pw.leave_days, last_day)
            g.people.append(pw)
            people[p.userid] = pw

    for r in reports:
        g = grid_for(r.get("grid"))
        g.reports.append(r)
        if counted(r):
            add_totals(g.totals, r.get("items", []))
            pw = people.get(r.get("userid", ""))
            if pw is not None:
                pw.reports += 1
                add_totals(pw.totals, r.get("items", []))
    for c in checkins:
        grid_for(c.get("grid")).checkins.append(c)
    for g in grids.values():
        g.reports.sort(key=lambda r: (r.get("work_date", ""), r.get("sent_at") or 0))
        g.checkins.sort(key=lambda c: (c.get("time") or 0))

    prev = _prev_week(week)
    prev_workdays = _workdays(cfg, prev)
    prev_days = _checkin_days(list(store.docs("checkins", [prev])), set(prev_workdays))
    for r in store.docs("reports", [prev]):
        if counted(r) and r.get("grid") in grids:
            add_totals(grids[r["grid"]].prev_totals, r.get("items", []))
    for g in grids.values():
        if g.people and prev_workdays:
            g.prev_rate = sum(len(prev_days.get(p.userid, ())) for p in g.people) / (
                len(g.people) * len(prev_workdays))

    ranked = sorted((g for g in grids.values() if g.configured and g.rate is not None),
                    key=lambda g: (-g.rate, -len(g.counted_reports)))
    for i, g in enumerate(ranked, 1):
        g.rank = i

    s, e = start.timestamp(), end.timestamp()
    as_ts = as_of.timestamp()
    problems = [p for p in store.docs("problems", ["main"])
                if (p.get("opened_at") or 0) < max(e, as_ts)
                and (p.get("status") != "closed" or (p.get("closed_at") or 0) >= s)]
    problems.sort(key=lambda p: (p.get("opened_at") or 0, p.get("id", "")))
    return WeekData(week, monday, sunday, workdays, elapsed, as_of, grids, problems, s, e)


def _grid_week(cfg: Config, g: Grid) -> GridWeek:
    return GridWeek(g.id, g.name, g.community, targets=dict(g.targets))


def rollup(name: str, grids: list[GridWeek]) -> Rollup:
    people = [p for g in grids for p in g.people]
    rates = [p.rate for p in people if p.rate is not None]
    prev = [(g.prev_rate, len(g.people)) for g in grids if g.prev_rate is not None]
    prev_people = sum(n for _, n in prev)
    return Rollup(
        name=name,
        grids=grids,
        people=len(people),
        rate=sum(rates) / len(rates) if rates else None,
        prev_rate=sum(r * n for r, n in prev) / prev_people if prev_people else None,
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
