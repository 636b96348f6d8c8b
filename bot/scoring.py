"""Points (积分): computed from the records, never typed in, every point traceable to its record.

One `Entry` per point-earning fact, each naming the record (report R…, check-in C…, problem P…),
its date and the rule; a person's points are the sum of their entries, a grid's are its members'
plus its own (overdue days), divided by its members so a grid of five competes with a grid of
fifteen. The weights are [scoring] in the config; a weight of 0 switches a rule off.

The rules (weights as in config.example.toml):
- checkin_day: each of the person's expected workdays (not on leave) with a counted check-in,
  as the check-in rate counts them (a rest-day check-in is kept but earns nothing, as it is not
  in the rate either); traced to that day's first counted check-in.
- report: each counted report (bot.records.counted) with its work date in the month.
- problem_found: each problem registered in the month, to whoever registered it.
- problem_closed_on_time: each problem closed in the month by its deadline, to whoever closed it.
- fix_rejected: each reopening (重开) in the month, to whoever had closed it.
- overdue_day: each whole day a problem stayed open past its deadline, ending in the month, to
  the problem's grid (not to a person: the grid answers for its problems).
- bad_photo: each check-in photo found duplicate or stale (either or both: one deduction).
- wrong_count: each report flagged implausible (数量超出常规) that someone other than its author
  (the grid leader, an admin) then corrected or withdrew: the count was confirmed wrong. An author
  who corrects their own slip loses nothing, so nobody is punished for owning up.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime

from bot.config import Config
from bot.months import MonthRecords, PersonMonth, month_span, month_workdays, people_month, read_month
from bot.store import Store

# Rule id → (label, what one entry counts), in the order people read them.
RULES: dict[str, tuple[str, str]] = {
    "checkin_day": ("打卡", "天"),
    "report": ("有效上报", "条"),
    "problem_found": ("发现问题", "项"),
    "problem_closed_on_time": ("按期整改销号", "项"),
    "fix_rejected": ("整改被退回", "次"),
    "overdue_day": ("问题逾期", "天"),
    "bad_photo": ("重复或旧照片", "张"),
    "wrong_count": ("数量不实", "条"),
}
BAD_PHOTO_FLAGS = {"duplicate": "疑似重复照片", "stale": "旧照片"}
DAY = 86400


@dataclass(frozen=True, slots=True)
class Entry:
    rule: str
    points: float
    day: date
    record: str  # the record's id: R…, C… or P…
    userid: str | None  # None: the grid's own entry (overdue days)
    name: str  # the person's name, or the grid's for a grid entry
    grid: str
    note: str = ""

    @property
    def label(self) -> str:
        return RULES[self.rule][0]


@dataclass
class Tally:
    """Points and counts per rule."""
    total: float = 0.0
    by_rule: dict[str, list[float]] = field(default_factory=dict)  # rule → [count, points]

    def add(self, e: Entry) -> None:
        self.total += e.points
        slot = self.by_rule.setdefault(e.rule, [0, 0.0])
        slot[0] += 1
        slot[1] += e.points

    def lines(self) -> list[tuple[str, int, str, float]]:
        """(label, count, unit, points) per rule, in RULES order."""
        return [(RULES[r][0], int(self.by_rule[r][0]), RULES[r][1], self.by_rule[r][1])
                for r in RULES if r in self.by_rule]


@dataclass
class PersonPoints:
    userid: str
    name: str
    grid: str
    tally: Tally
    rank: int = 0  # among every grid member of the street; equal points share a rank
    of: int = 0
    grid_rank: int = 0  # within the grid
    grid_of: int = 0

    @property
    def total(self) -> float:
        return self.tally.total


@dataclass
class GridPoints:
    grid: str
    name: str
    community: str
    members: int
    tally: Tally
    rank: int = 0  # by points per member among all grids; a grid with no members ranks last
    of: int = 0

    @property
    def total(self) -> float:
        return self.tally.total

    @property
    def per_member(self) -> float | None:
        return self.tally.total / self.members if self.members else None


@dataclass
class Standings:
    month: str
    entries: list[Entry]  # every entry, by day, the unranked ones (leaders, people since removed) too
    people: dict[str, PersonPoints]  # grid members, config order
    grids: dict[str, GridPoints]  # config order

    def ranked_people(self) -> list[PersonPoints]:
        return sorted(self.people.values(), key=lambda p: p.rank)

    def ranked_grids(self) -> list[GridPoints]:
        return sorted(self.grids.values(), key=lambda g: g.rank)


def fmt_points(x: float | None, signed: bool = False) -> str:
    """12 → '12', 12.25 → '12.3' (one decimal at most), with a sign when asked: '+3', '-2'."""
    if x is None:
        return "—"
    r = round(x, 1) + 0.0  # + 0.0: no "-0"
    s = str(int(r)) if float(r).is_integer() else f"{r:.1f}"
    return ("+" + s) if signed and r > 0 else s


def _day(ts: float, cfg: Config) -> date:
    return datetime.fromtimestamp(ts, cfg.tz).date()


def month_entries(cfg: Config, records: MonthRecords, people: dict[str, PersonMonth], problems: list[dict],
                  as_of: float | None = None) -> list[Entry]:
    """Every entry of the month up to `as_of` (unix time; None: the month's end), by day, then grid
    and person in config order (the grid's own entries first), as the ledger lists them.
    Sorted a day and grid at a time: one sort of a district's million entries compares in C for
    seconds without letting go of the GIL, and the event loop's thread waits that long."""
    buckets: dict[tuple[date, str], list[Entry]] = {}
    for e in iter_entries(cfg, records, people, problems, as_of):
        buckets.setdefault((e.day, e.grid), []).append(e)
    grids = {g.id: i for i, g in enumerate(cfg.grids)}
    order = {p.userid: i for i, p in enumerate(cfg.people)}
    rules = {r: i for i, r in enumerate(RULES)}
    out: list[Entry] = []
    for key in sorted(buckets, key=lambda dg: (dg[0], grids.get(dg[1], len(grids)), dg[1])):
        out += sorted(buckets[key], key=lambda e: (-1 if e.userid is None else order.get(e.userid, len(order)),
                                                   e.userid or "", rules[e.rule], e.record))
    return out


def iter_entries(cfg: Config, records: MonthRecords, people: dict[str, PersonMonth], problems: list[dict],
                 as_of: float | None = None) -> Iterator[Entry]:
    """The month's entries as they are found. A ranking alone consumes them as they come: a
    street's 40,000 short-lived objects then never reach the collector's oldest generation (whose
    full sweep over the loaded store is what made 我的积分 slow)."""
    w = cfg.scoring
    start, end = month_span(records.month, cfg.tz)
    end = min(end, as_of) if as_of is not None else end

    # A member's points go to their grid of today, so a person's total and their grid agree.
    members = {p.userid: (p.name, p.grid) for g in cfg.grids for p in cfg.grid_members(g.id)}

    def owner(userid: str | None, fallback_name: str, fallback_grid: str | None) -> tuple[str, str]:
        found = members.get(userid) if userid else None
        if found:
            return found
        # A leader, an admin or someone since removed: named as the record (or the config) names them.
        known = cfg.person(userid) if userid else None
        return (fallback_name or (known.name if known else userid) or "", fallback_grid or "")

    if w.checkin_day:
        for p in people.values():
            for d in p.checkin_days:
                yield Entry("checkin_day", w.checkin_day, d, p.present[d], p.userid, p.name, p.grid)
    for r in records.reports:
        try:
            wd = date.fromisoformat(r["work_date"])
        except (KeyError, ValueError):
            continue
        name, grid = owner(r.get("userid"), r.get("name", ""), r.get("grid"))
        if w.report and r.get("status") == "active" and not r.get("unconfirmed"):
            yield Entry("report", w.report, wd, r["id"], r.get("userid"), name, grid)
        if w.wrong_count and "implausible" in (r.get("flags") or []):
            fix = next((h for h in r.get("history") or [] if h.get("action") in ("correct", "withdraw")
                        and h.get("by") and h.get("by") != r.get("userid")), None)
            if fix is not None:
                verb = "更正" if fix["action"] == "correct" else "撤回"
                yield Entry("wrong_count", w.wrong_count, wd, r["id"], r.get("userid"), name, grid,
                            f"数量超出常规,经{fix.get('by_name') or fix['by']}{verb}")
    if w.bad_photo:
        for c in records.checkins:
            bad = [BAD_PHOTO_FLAGS[f] for f in BAD_PHOTO_FLAGS if f in (c.get("flags") or [])]
            if bad and c.get("date"):
                name, grid = owner(c.get("userid"), c.get("name", ""), c.get("grid"))
                yield Entry("bad_photo", w.bad_photo, date.fromisoformat(c["date"]), c["id"],
                            c.get("userid"), name, grid, "、".join(bad))
    for p in problems:
        yield from _problem_entries(cfg, p, start, end, owner)


def _problem_entries(cfg: Config, p: dict, start: float, end: float, owner) -> list[Entry]:
    w = cfg.scoring
    out: list[Entry] = []
    pid, grid = p.get("id", ""), p.get("grid") or ""
    opened, closed_at, deadline = p.get("opened_at"), p.get("closed_at"), p.get("deadline")
    closed = p.get("status") == "closed" and closed_at is not None
    if w.problem_found and opened is not None and start <= opened < end:
        name, g = owner(p.get("reporter"), p.get("reporter_name", ""), grid)
        out.append(Entry("problem_found", w.problem_found, _day(opened, cfg), pid, p.get("reporter"), name, g))
    if (w.problem_closed_on_time and closed and start <= closed_at < end
            and deadline is not None and closed_at <= deadline):
        name, g = owner(p.get("closed_by"), p.get("closed_by_name") or "", grid)
        out.append(Entry("problem_closed_on_time", w.problem_closed_on_time, _day(closed_at, cfg), pid,
                         p.get("closed_by"), name, g))
    if w.fix_rejected:
        for h in p.get("history") or []:
            closer = (h.get("previous") or {}).get("closed_by")
            if h.get("action") == "reopened" and closer and start <= (h.get("at") or 0) < end:
                name, g = owner(closer, "", grid)
                out.append(Entry("fix_rejected", w.fix_rejected, _day(h["at"], cfg), pid, closer, name, g,
                                 f"{h.get('by_name') or h.get('by') or ''}重开" + (f":{h['note']}" if h.get("note") else "")))
    if w.overdue_day and deadline is not None:
        # The k-th overdue day is complete at deadline + k days, if the problem is still open then.
        until = min(end, closed_at if closed else math.inf)
        k = max(1, math.ceil((start - deadline) / DAY))
        gname = cfg.grid(grid).name if cfg.grid(grid) else grid
        while deadline + k * DAY < until:
            t = deadline + k * DAY
            if t >= start:
                out.append(Entry("overdue_day", w.overdue_day, _day(t, cfg), pid, None, gname, grid, f"逾期第{k}天"))
            k += 1
    return out


def _ranks(values: list[tuple[str, float | None]]) -> dict[str, int]:
    """Competition ranking (1, 2, 2, 4), higher first; None ranks after every number."""
    key = {k: (v is not None, round(v or 0.0, 6)) for k, v in values}
    first: dict[tuple, int] = {}
    for i, kv in enumerate(sorted(key.values(), reverse=True)):
        first.setdefault(kv, i + 1)
    return {k: first[key[k]] for k, _ in values}


def standings(cfg: Config, month: str, entries: Iterable[Entry], keep: bool = True) -> Standings:
    """Totals and ranks from the entries; `keep` False leaves Standings.entries empty."""
    people: dict[str, PersonPoints] = {}
    grids: dict[str, GridPoints] = {}
    for g in cfg.grids:
        members = cfg.grid_members(g.id)
        grids[g.id] = GridPoints(g.id, g.name, g.community, len(members), Tally())
        for p in members:
            people[p.userid] = PersonPoints(p.userid, p.name, g.id, Tally())
    if keep and not isinstance(entries, list):
        entries = list(entries)
    for e in entries:
        if e.userid is None:
            if e.grid in grids:
                grids[e.grid].tally.add(e)
            continue
        person = people.get(e.userid)
        if person is not None and person.grid == e.grid:
            person.tally.add(e)
            grids[e.grid].tally.add(e)
    ranks = _ranks([(u, p.total) for u, p in people.items()])
    by_grid: dict[str, list[PersonPoints]] = defaultdict(list)
    for u, p in people.items():
        p.rank, p.of = ranks[u], len(people)
        by_grid[p.grid].append(p)
    for members in by_grid.values():
        inner = _ranks([(p.userid, p.total) for p in members])
        for p in members:
            p.grid_rank, p.grid_of = inner[p.userid], len(members)
    granks = _ranks([(gid, g.per_member) for gid, g in grids.items()])
    for gid, g in grids.items():
        g.rank, g.of = granks[gid], len(grids)
    return Standings(month, entries if keep else [], people, grids)  # type: ignore[arg-type]


def month_standings(cfg: Config, store: Store, month: str, as_of: datetime | None = None, *,
                    records: MonthRecords | None = None, problems: list[dict] | None = None,
                    ordered: bool = True) -> tuple[Standings, MonthRecords, dict[str, PersonMonth]]:
    """Read the month (unless given) and score it up to `as_of` (None: the whole month); with
    `ordered` False only totals and ranks are kept (Standings.entries is empty)."""
    records = records or read_month(store, month)
    # A month in progress counts its workdays up to today (today's check-in already earns its point).
    through = min(as_of.astimezone(cfg.tz).date(), records.last) if as_of is not None else None
    people = people_month(cfg, store, records, month_workdays(cfg, month, through))
    if problems is None:
        problems = list(store.docs("problems", ["main"]))
    cut = as_of.timestamp() if as_of is not None else None
    if ordered:
        return standings(cfg, month, month_entries(cfg, records, people, problems, cut)), records, people
    return standings(cfg, month, iter_entries(cfg, records, people, problems, cut), keep=False), records, people
