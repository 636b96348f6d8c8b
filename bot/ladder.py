"""The escalation ladder (逐级督办): who is told, and when, that a problem is overdue or that a
member has stopped checking in. The job that sends it is schedules/supervise.py.

Each ladder ([ladder] problems, [ladder] checkins) is a list of steps: after so many *workday
hours* past the deadline, tell that level (bot.oversight). Hours on rest days do not count
(bot.workdays: the official calendar, config overrides, campaigns making every day a workday),
so a step due 24 hours after a Friday-morning deadline comes on Monday morning. Every step is
sent once; a problem leaves its ladder the moment it is fixed (its fix reported: no longer
"open"), a member theirs the moment they check in. A step whose level has nobody falls to the
next level up (bot.oversight.first_people_from); nobody is told twice in one ladder.

- A problem's deadline is its own; its ladder state lives on its document ("ladder"), and every
  step is a line of its history. Only open problems are looked at, through the store's status
  index, so a year of closed ones costs nothing.
- A member's deadline is the check-in deadline ([reminders] nudge_deadline) of the first workday
  of their current run of misses (leave steps over a day, as everywhere: bot.attendance); its
  state is a document of the "ladder" table per member and run.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo

from bot.attendance import MAX_STREAK_LOOKBACK, missed_runs, present_on, streak_start
from bot.config import CalendarSection, Config, Person
from bot.config_oversight import LadderStep
from bot.leave_records import covered, leave_periods
from bot.oversight import first_people_from
from bot.problem_ledger import TABLE
from bot.workdays import is_workday

LADDER_TABLE = "ladder"
LEAVE_TABLE = "leave"  # bot.leave_records' table: a member's leave periods


class WorkHours:
    """Workday seconds between two instants, in constant time: a prefix sum over the days of the
    span asked about, widened (and rebuilt) when a question falls outside it."""

    def __init__(self, cal: CalendarSection, tz: tzinfo):
        self.cal, self.tz = cal, tz
        self.first: date | None = None
        self.starts: list[float] = []  # each day's 00:00 (and the day after the last)
        self.before: list[float] = []  # workday seconds from the first day's 00:00 to each day's

    def _build(self, first: date, last: date) -> None:
        days = [first + timedelta(days=i) for i in range((last - first).days + 2)]
        self.starts = [datetime.combine(d, time(0), self.tz).timestamp() for d in days]
        self.before = [0.0]
        for i, d in enumerate(days[:-1]):
            length = self.starts[i + 1] - self.starts[i] if is_workday(d, self.cal) else 0.0
            self.before.append(self.before[-1] + length)
        self.first = first

    def _cover(self, ts: float) -> None:
        if not self.starts or ts < self.starts[0] or ts >= self.starts[-1]:
            day = datetime.fromtimestamp(ts, self.tz).date()
            first = self.first or day
            last = first + timedelta(days=max(0, len(self.starts) - 2))
            self._build(min(day, first) - timedelta(days=7), max(day, last) + timedelta(days=7))

    def _at(self, ts: float) -> float:
        """Workday seconds from the table's first day to `ts` (covered by the table)."""
        i = bisect.bisect_right(self.starts, ts) - 1
        worked = self.before[i + 1] - self.before[i]
        return self.before[i] + (min(ts - self.starts[i], worked) if worked else 0.0)

    def between(self, a: float, b: float) -> float:
        """Workday seconds from `a` to `b` (0 when `b` is not later)."""
        if b <= a:
            return 0.0
        # Both ends in one table: a rebuild moves the table's origin.
        self._cover(a)
        self._cover(b)
        return max(0.0, self._at(b) - self._at(a))


@dataclass
class Rung:
    """One step of one ladder that has come due: who is told about what."""
    subject: dict  # the problem, or {"userid", "name", "grid", "start", "days"} for a member
    step: int
    level: str  # the level found (the configured one, or the next up that has someone)
    people: list[Person] = field(default_factory=list)
    top: bool = False  # the ladder's last step


def _due(steps: list[LadderStep], elapsed_h: float, sent: list[int]) -> list[int]:
    return [i for i, s in enumerate(steps) if i not in sent and elapsed_h >= s.after_hours]


def _rungs(cfg: Config, steps: list[LadderStep], subject: dict, grid: str, elapsed_h: float, sent: list[int],
           told: set[str], exclude: set[str] = frozenset()) -> list[Rung]:
    out = []
    for i in _due(steps, elapsed_h, sent):
        level, people = first_people_from(cfg, steps[i].notify, grid, exclude=set(exclude))
        fresh = [p for p in people if p.userid not in told]
        told |= {p.userid for p in fresh}
        out.append(Rung(subject, i, level, fresh, top=i == len(steps) - 1))
    return out


# --- problems ---------------------------------------------------------------------------------

def overdue_open(store, now_ts: float) -> list[dict]:
    """Problems being fixed past their deadline, through the status index."""
    return sorted((p for p in store.docs_by(TABLE, "status", "open", ["main"]) if (p.get("deadline") or now_ts) < now_ts),
                  key=lambda p: (p["deadline"], p["id"]))


def problem_rungs(cfg: Config, store, now_ts: float, hours: WorkHours, among: list[dict] | None = None) -> list[Rung]:
    """The steps of the problems' ladders that are due now and not yet sent (of the overdue
    problems `among`, by default all of them)."""
    steps = cfg.ladder.problems
    out: list[Rung] = []
    for p in overdue_open(store, now_ts) if among is None else among:
        state = p.get("ladder") or {}
        elapsed_h = hours.between(p["deadline"], now_ts) / 3600
        out += _rungs(cfg, steps, p, p["grid"], elapsed_h, list(state.get("sent", [])), set(state.get("told", [])))
    return out


def stale_checks(cfg: Config, store, now_ts: float, hours: WorkHours) -> list[dict]:
    """Fixes that have waited [review] check_hours workday hours for their check and whose
    checkers have not been reminded yet."""
    limit = cfg.review.check_hours * 3600
    return sorted((p for p in store.docs_by(TABLE, "status", "pending_check", ["main"])
                   if p.get("pending") and not p["pending"].get("reminded")
                   and hours.between(p["pending"]["at"], now_ts) >= limit),
                  key=lambda p: (p["pending"]["at"], p["id"]))


def topped(p: dict) -> bool:
    return bool((p.get("ladder") or {}).get("top"))


# --- members who stopped checking in ----------------------------------------------------------

def _deadline(cfg: Config) -> time:
    try:
        return time.fromisoformat(cfg.reminders.nudge_deadline)
    except ValueError:
        return time(20, 0)


def last_deadline_day(cfg: Config, now: datetime) -> date | None:
    """The latest workday whose check-in deadline has passed at `now` (within the look-back)."""
    d = now.date() if now.time() >= _deadline(cfg) else now.date() - timedelta(days=1)
    for _ in range(MAX_STREAK_LOOKBACK):
        if is_workday(d, cfg.calendar):
            return d
        d -= timedelta(days=1)
    return None


def checkin_rungs(cfg: Config, store, now: datetime, hours: WorkHours, grids: list | None = None) -> list[Rung]:
    """The steps of the members' ladders that are due now and not yet sent (for `grids`, by
    default every configured grid)."""
    last = last_deadline_day(cfg, now)
    if last is None:
        return []
    start = streak_start(store, last)
    if start is None:
        return []
    cache: dict[date, frozenset[str]] = {}

    def present(uid: str, d: date) -> bool:
        if d not in cache:
            cache[d] = present_on(store, d)
        return uid in cache[d]

    since = [last + timedelta(days=i) for i in range(1, (now.date() - last).days + 1)]
    out: list[Rung] = []
    for grid in (cfg.grids if grids is None else grids):
        for person in cfg.grid_members(grid.id):
            if any(present(person.userid, d) for d in since):
                continue  # checked in after the last deadline: the run is over
            periods = leave_periods(store.get(LEAVE_TABLE, person.userid), cfg.tz)
            back = (last - timedelta(days=i) for i in range(MAX_STREAK_LOOKBACK))
            workdays = (d for d in back if d >= start and is_workday(d, cfg.calendar))
            run = next(missed_runs(workdays, lambda d, u=person.userid: present(u, d),
                                   lambda d, ps=periods: covered(ps, d)))
            if not run:
                continue
            first = run[-1]
            key = f"checkin:{person.userid}:{first.isoformat()}"
            state = store.get(LADDER_TABLE, key) or {}
            deadline = datetime.combine(first, _deadline(cfg), now.tzinfo).timestamp()
            subject = {"id": key, "userid": person.userid, "name": person.name, "grid": grid.id,
                       "start": first.isoformat(), "days": len(run)}
            out += _rungs(cfg, cfg.ladder.checkins, subject, grid.id, hours.between(deadline, now.timestamp()) / 3600,
                          list(state.get("sent", [])), set(state.get("told", [])), exclude={person.userid})
    return out


def topped_checkins(store, since_ts: float) -> list[dict]:
    """Members' ladders that reached their last step at or after `since_ts`."""
    return sorted((d for d in store.docs(LADDER_TABLE, ["main"]) if d.get("top") and (d.get("top_at") or 0) >= since_ts),
                  key=lambda d: (-d.get("days", 0), d["id"]))
