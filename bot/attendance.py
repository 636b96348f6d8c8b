"""Attendance: who checked in, who is missing, who is on leave, and weekly check-in rates.

The one place these numbers are computed: the reminder jobs, the weekly tally, the leader digest
and the ledger all take them from here, so grid groups and leaders see the same figures.
Everything here reads the store through its API and the config passed in; nothing sends messages.

Definitions used everywhere:
- A person *counts* for attendance if they belong to a grid as member or grid leader
  (cfg.grid_members).
- A person *checked in* on a day if they have a check-in with counted=True dated that day.
- A person is *on leave* on a day if a leave period of theirs covers it (table "leave").
- A person is *missing* on a day if it is a workday, they are not on leave and did not check in.
- A person's *expected days* in a week are the workdays of that week they were not on leave;
  their *check-in days* are the expected days on which they checked in, so a rate is never
  above 100% (check-ins on rest days are reported apart, as `extra_days`).
- A grid's (or a community's, or the street's) rate is its people's check-in days over their
  expected days, pooled: someone on leave all week weighs nothing, not 0%.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING

from bot.clock import iso_week, week_bounds, zh_date
from bot.config import Config, Person
from bot.records import checkins_of_week, days_of_week, reports_of_week, totals
from bot.store import Store
from bot.leave_records import Period, covered, leave_periods, on_leave
from bot.workdays import is_workday

if TYPE_CHECKING:
    from bot.context import Bot

WEEKDAYS_ZH = "一二三四五六日"
# How far back a streak of misses is followed; beyond this it is reported as this many days.
MAX_STREAK_LOOKBACK = 60

Totals = dict[tuple[str, str], float]  # (category, unit) → quantity


def zh_weekday(d: date) -> str:
    return "周" + WEEKDAYS_ZH[d.weekday()]


def zh_day(d: date) -> str:
    """'11月27日(周五)'"""
    return f"{zh_date(d)}({zh_weekday(d)})"


def pct(rate: float | None) -> str:
    """A rate as people read it everywhere: '85%', or '—' when nobody was expected."""
    return "—" if rate is None else f"{round(rate * 100)}%"


def rate_of(checkin_days: int, expected_days: int) -> float | None:
    return checkin_days / expected_days if expected_days else None


def week_workdays(cfg: Config, week: str, through: date | None = None) -> list[date]:
    """The workdays of an ISO week by the configured calendar (up to `through`, if given)."""
    return [d for d in days_of_week(week) if (through is None or d <= through) and is_workday(d, cfg.calendar)]


# --- one day -------------------------------------------------------------------------------


def present_on(store: Store, day: date) -> frozenset[str]:
    """Userids with a counted check-in on `day`, from the store's day index: the same set as a
    scan of the day's week (checked_in), without the scan. Shared: do not change it."""
    week = iso_week(day)
    store.ensure(week, "checkins")
    return store.days.present(week, day.isoformat())


def checked_in(store: Store, day: date, grid: str | None = None) -> set[str]:
    """Userids with a counted check-in on `day` (in one grid, when given)."""
    week = iso_week(day)
    store.ensure(week, "checkins")
    return set(store.days.present(week, day.isoformat(), grid))


@dataclass
class DayAttendance:
    grid: str
    day: date
    people: list[Person]  # everyone who counts in the grid
    present: list[Person]  # checked in
    on_leave: list[Person]  # on leave and not checked in
    missing: list[Person]  # neither (empty on a rest day)


def grid_day(cfg: Config, store: Store, grid_id: str, day: date) -> DayAttendance:
    people = cfg.grid_members(grid_id)
    done = present_on(store, day)
    workday = is_workday(day, cfg.calendar)
    present = [p for p in people if p.userid in done]
    away = [p for p in people if p.userid not in done and on_leave(store, p.userid, day, cfg.tz)]
    missing = [p for p in people if workday and p.userid not in done and p not in away]
    return DayAttendance(grid_id, day, people, present, away, missing)


def missing_people(cfg: Config, store: Store, grid_id: str, day: date) -> list[Person]:
    """People of the grid who have neither checked in nor are on leave on `day` (a workday)."""
    return grid_day(cfg, store, grid_id, day).missing


# --- runs of missed workdays ---------------------------------------------------------------


def missed_runs(workdays: Iterable[date], present: Callable[[date], bool],
                away: Callable[[date], bool]) -> Iterator[list[date]]:
    """Runs of consecutive missed workdays, walking `workdays` in the order given.

    A check-in ends a run; a leave day is stepped over (neither a miss nor a break), the same
    for the grid leader's escalation and the leaders' digest. Every run is yielded as it ends,
    empty ones included, so the first yielded is the one `workdays` starts with; `workdays` is
    consumed lazily.
    """
    run: list[date] = []
    for d in workdays:
        if away(d):
            continue
        if not present(d):
            run.append(d)
            continue
        yield run
        run = []
    yield run


def longest_missing_run(workdays: list[date], present: set[date], leave: set[date],
                        until: date) -> list[date]:
    """The longest run of consecutive workdays (up to `until`) with no counted check-in, the
    earliest of equals; leave days are stepped over."""
    runs = missed_runs((d for d in workdays if d <= until), present.__contains__, leave.__contains__)
    return max(runs, key=len)


def tracking_start(store: Store) -> date | None:
    """The first day any check-in was recorded: before it the bot was not in use, so a day
    without a check-in then is not a miss."""
    for week in sorted(store.shards()):
        store.ensure(week, "checkins")
        first = store.days.first_checkin_day(week)
        if first:
            return date.fromisoformat(first)
    return None


def streak_start(store: Store, day: date) -> date | None:
    """tracking_start as the streaks ending on `day` see it: they look back MAX_STREAK_LOOKBACK
    days at most, so when check-ins began before that, any day before it answers the same —
    and the year-old shard that would tell the exact day is not read (a district's week of
    check-ins is a second of parsing and a hundred megabytes kept)."""
    horizon = day - timedelta(days=MAX_STREAK_LOOKBACK)
    for week in sorted(store.shards()):
        try:
            if week_bounds(week)[1] >= horizon:
                break
        except ValueError:
            continue  # not a week's shard
        if store.has_table(week, "checkins"):
            return horizon  # every shard holding the table holds a check-in: nothing is deleted
    return tracking_start(store)


def miss_streak(cfg: Config, store: Store, userid: str, day: date, start: date | None = None,
                _checked: dict[date, frozenset[str]] | None = None) -> int:
    """How many of the person's workdays in a row, ending with `day`, had no check-in.

    Rest days and the person's leave days are stepped over (they neither count nor break the
    streak); days before `start` (default: tracking_start) end it.
    """
    start = start if start is not None else streak_start(store, day)
    if start is None:
        return 0
    cache = _checked if _checked is not None else {}
    periods = leave_periods(store.get("leave", userid), cfg.tz)

    def back() -> Iterator[date]:
        d = day
        while d >= start and (day - d).days < MAX_STREAK_LOOKBACK:
            if is_workday(d, cfg.calendar):
                yield d
            d -= timedelta(days=1)

    def present(d: date) -> bool:
        if d not in cache:
            cache[d] = present_on(store, d)
        return userid in cache[d]

    return len(next(missed_runs(back(), present, lambda d: covered(periods, d))))


def repeated_misses(bot: "Bot", day: date, min_days: int | None = None,
                    grids: Iterable | None = None) -> dict[str, list[tuple[str, str, int]]]:
    """Per grid id, the people who missed at least [digest] missing_days workdays in a row,
    the last of them being `day`: [(userid, name, days), ...], longest streak first.

    `day` is included, so pass the last *finished* workday (the escalation job passes today,
    after the nudge deadline; a Monday digest passes the previous Friday or so). Grids with
    nobody to report are left out; `grids` (default: all configured) limits the question.
    """
    cfg, store = bot.config, bot.store
    need = min_days if min_days is not None else cfg.digest.missing_days
    start = streak_start(store, day)
    cache: dict[date, frozenset[str]] = {}
    out: dict[str, list[tuple[str, str, int]]] = {}
    for g in (cfg.grids if grids is None else grids):
        rows = []
        for p in cfg.grid_members(g.id):
            n = miss_streak(cfg, store, p.userid, day, start, cache)
            if n >= need:
                rows.append((p.userid, p.name, n))
        if rows:
            out[g.id] = sorted(rows, key=lambda r: -r[2])  # stable: config order within a length
    return out


# --- one week ------------------------------------------------------------------------------


@dataclass
class PersonWeek:
    userid: str
    name: str
    role: str
    grid: str
    workdays: int  # workdays of the week (up to `through`)
    leave_days: int  # of those, days on leave
    expected_days: int  # workdays - leave_days: the denominator of the rate
    checkin_days: int  # expected days with a counted check-in
    extra_days: int  # rest or leave days with a counted check-in (not in the rate)
    missing_run: list[date] = field(default_factory=list)  # longest run of missed workdays; leave breaks it
    reports: int = 0  # counted reports with a work date in the week (up to `through`)
    totals: Totals = field(default_factory=dict)  # of those reports

    @property
    def rate(self) -> float | None:
        return rate_of(self.checkin_days, self.expected_days)


@dataclass
class GridWeek:
    grid: str
    name: str
    community: str
    households: int | None
    people: list[PersonWeek]
    checkin_days: int  # sum over people
    expected_days: int  # sum over people
    reports: int  # counted reports with a work date in the week
    items: int  # report items (one per number + unit) in those reports
    totals: Totals
    rank: int = 0  # by check-in rate; 1 is best; equal rates share a rank (并列)
    of: int = 0  # number of grids ranked
    tied: bool = False  # another grid has the same rank
    rest_checkins: int = 0  # check-in days on rest days (shown, never in the rate)
    rest_reports: int = 0  # counted reports whose work date is a rest day (in `reports` too)

    @property
    def rate(self) -> float | None:
        """Check-in days / expected days over the grid's people; None when nobody was expected."""
        return rate_of(self.checkin_days, self.expected_days)

    @property
    def items_per_100(self) -> float | None:
        """Report items per 100 households; None when households are not configured."""
        return self.items * 100 / self.households if self.households else None

    def category_totals(self) -> dict[str, float]:
        out: Counter = Counter()
        for (cat, _unit), q in self.totals.items():
            out[cat] += q
        return dict(out)


def pooled_rate(grids: Iterable[GridWeek]) -> float | None:
    """The rate of several grids together (a community, a leader's scope, the street)."""
    grids = list(grids)
    return rate_of(sum(g.checkin_days for g in grids), sum(g.expected_days for g in grids))


@dataclass
class WeekStats:
    week: str
    days: list[date]  # the days considered (Monday .. Sunday or .. `through`)
    workdays: list[date]
    grids: dict[str, GridWeek] = field(default_factory=dict)  # in config order

    def ranked(self) -> list[GridWeek]:
        return sorted(self.grids.values(), key=lambda g: (g.rank, g.grid))


def _rank_key(g: GridWeek) -> tuple:
    # Higher is better; a grid with nobody expected sorts after those with a rate. Only the
    # rate ranks: a grid leader reading "第2名" beside an equal rate feels cheated.
    rate = g.rate
    return (rate is not None, round(rate or 0.0, 6))


def _order_key(g: GridWeek) -> tuple:
    # Within a tie, grids are listed by work per 100 households (it does not change the rank).
    per100 = g.items_per_100
    return (*_rank_key(g), per100 is not None, per100 or 0.0)


def _person_week(p: Person, grid: str, workdays: list[date], present: set[date], periods: list[Period],
                 reports: list[dict]) -> PersonWeek:
    leave = {d for d in workdays if covered(periods, d)}
    expected = [d for d in workdays if d not in leave]
    hit = sum(1 for d in expected if d in present)
    return PersonWeek(p.userid, p.name, p.role, grid, len(workdays), len(leave), len(expected), hit,
                      len(present) - hit, longest_missing_run(workdays, present, leave, date.max),
                      len(reports), totals(reports))


def grid_week_stats(source: "Bot | Store", week: str, cfg: Config | None = None, *,
                    through: date | None = None) -> WeekStats:
    """Per-grid and per-person numbers for one ISO week ("2026-W48").

    Call as grid_week_stats(bot, week) or grid_week_stats(store, week, cfg). With `through`,
    only days up to that date count (a week in progress is rated on the workdays so far).
    Reports count by work date and only if records.counted; check-ins only if counted. Grids
    are ranked among all configured grids by check-in rate, then report items per 100
    households (see GridWeek.rank).
    """
    if cfg is None:
        cfg, store = source.config, source.store  # type: ignore[union-attr]
    else:
        store = source  # type: ignore[assignment]
    days = [d for d in days_of_week(week) if through is None or d <= through]
    workdays = week_workdays(cfg, week, through)
    by_iso = {d.isoformat(): d for d in days}
    present: dict[str, set[date]] = defaultdict(set)
    for c in checkins_of_week(store, week):
        d = by_iso.get(c.get("date"))
        if d is not None:
            present[c["userid"]].add(d)
    by_grid: dict[str, list[dict]] = defaultdict(list)
    by_user: dict[str, list[dict]] = defaultdict(list)
    for r in reports_of_week(store, week):  # counted ones only
        if r.get("work_date") in by_iso:
            by_grid[r.get("grid")].append(r)
            by_user[r.get("userid")].append(r)
    stats = WeekStats(week, days, workdays)
    for g in cfg.grids:
        people = [_person_week(p, g.id, workdays, present.get(p.userid, set()),
                               leave_periods(store.get("leave", p.userid), cfg.tz), by_user.get(p.userid, []))
                  for p in cfg.grid_members(g.id)]
        reports = by_grid.get(g.id, [])
        stats.grids[g.id] = GridWeek(
            grid=g.id, name=g.name, community=g.community, households=g.households, people=people,
            checkin_days=sum(p.checkin_days for p in people),
            expected_days=sum(p.expected_days for p in people),
            reports=len(reports), items=sum(len(r.get("items", [])) for r in reports),
            totals=totals(reports),
            rest_checkins=sum(len(present.get(p.userid, set()) - set(workdays)) for p in people),
            rest_reports=sum(1 for r in reports if by_iso[r["work_date"]] not in workdays))
    ordered = sorted(stats.grids.values(), key=_order_key, reverse=True)
    for i, g in enumerate(ordered):
        g.rank = ordered[i - 1].rank if i and _rank_key(ordered[i - 1]) == _rank_key(g) else i + 1
        g.of = len(ordered)
    for g in ordered:
        g.tied = sum(1 for o in ordered if o.rank == g.rank) > 1
    return stats


def common_unit(store: Store, week: str, category: str, grid: str | None = None) -> str:
    """The unit most often reported for a category in a week (the grid's, else anyone's), or 项."""
    store.ensure(week, "reports")
    for g in ([grid, None] if grid else [None]):
        units: Counter = Counter()
        for day in store.days.report_days(week, g).values():
            for (cat, unit), n in day.units.items():
                if cat == category:
                    units[unit] += n
        if units:
            return units.most_common(1)[0][0]
    return "项"
