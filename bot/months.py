"""Calendar months: naming them, their workdays, their records, and who checked in on which day.

The monthly bulletin, its ledger and `我的积分` all read a month through here, so a month means
the same days everywhere. Records are read from the ISO-week shards that overlap the month and
kept when their own date (a report's work date, a check-in's day) falls inside it, so a week
that straddles two months splits between them. Attendance follows bot.attendance's definitions:
a person's expected days are the month's workdays (by the configured calendar, with 调休 and
campaign periods) they were not on leave; their check-in days are the expected days with a
counted check-in; a check-in on a rest day or a leave day is kept but never in the rate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo

from bot.attendance import rate_of
from bot.config import Campaign, Config
from bot.leave_records import covered, leave_periods
from bot.records import counted, weeks_between
from bot.store import Store
from bot.workdays import is_workday

MONTH = re.compile(r"^(\d{4})-(\d{1,2})$")


def parse_month(text: str) -> str:
    """'2026-11' (or '2026-1') → '2026-11'; a clear error otherwise."""
    m = MONTH.match(text.strip())
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise ValueError(f"月份的格式应为 YYYY-MM,例如 2026-11 / month must look like 2026-11: {text!r}")
    return f"{int(m.group(1)):04d}-{int(m.group(2)):02d}"


def month_of(d: date) -> str:
    return f"{d.year:04d}-{d.month:02d}"


def month_bounds(month: str) -> tuple[date, date]:
    """'2026-10' → (2026-10-01, 2026-10-31)."""
    y, m = (int(x) for x in parse_month(month).split("-"))
    first = date(y, m, 1)
    nxt = date(y + m // 12, m % 12 + 1, 1)
    return first, nxt - timedelta(days=1)


def previous_month(month: str) -> str:
    first, _ = month_bounds(month)
    return month_of(first - timedelta(days=1))


def months_of_year(month: str) -> list[str]:
    """January of the month's year up to the month: '2026-03' → ['2026-01', '2026-02', '2026-03']."""
    y, m = (int(x) for x in month.split("-"))
    return [f"{y:04d}-{i:02d}" for i in range(1, m + 1)]


def month_label(month: str) -> str:
    """'2026年11月'"""
    y, m = month.split("-")
    return f"{y}年{int(m)}月"


def zh_month(month: str) -> str:
    """'11月'"""
    return f"{int(month.split('-')[1])}月"


def month_days(month: str, through: date | None = None) -> list[date]:
    first, last = month_bounds(month)
    if through is not None:
        last = min(last, through)
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def month_workdays(cfg: Config, month: str, through: date | None = None) -> list[date]:
    return [d for d in month_days(month, through) if is_workday(d, cfg.calendar)]


def month_span(month: str, tz: tzinfo) -> tuple[float, float]:
    """The month as [start, end) unix times in the bot's timezone."""
    first, last = month_bounds(month)
    start = datetime.combine(first, time(0), tz)
    end = datetime.combine(last + timedelta(days=1), time(0), tz)
    return start.timestamp(), end.timestamp()


def campaign_days(cfg: Config, month: str, through: date | None = None) -> list[tuple[Campaign, list[date]]]:
    """Each campaign period (迎检) that touches the month, with its days inside the month."""
    out = []
    for c in cfg.calendar.campaigns:
        days = [d for d in month_days(month, through) if c.start <= d <= c.end]
        if days:
            out.append((c, days))
    return out


# --- the month's records ----------------------------------------------------------------------

@dataclass
class MonthRecords:
    """Every report and check-in dated in the month (counted or not), read once."""
    month: str
    first: date
    last: date
    reports: list[dict]
    checkins: list[dict]

    @property
    def counted_reports(self) -> list[dict]:
        return [r for r in self.reports if counted(r)]


def read_month(store: Store, month: str) -> MonthRecords:
    first, last = month_bounds(month)
    lo, hi = first.isoformat(), last.isoformat()
    weeks = weeks_between(first, last)
    reports = [r for r in store.docs("reports", weeks) if lo <= (r.get("work_date") or "") <= hi]
    checkins = [c for c in store.docs("checkins", weeks) if lo <= (c.get("date") or "") <= hi]
    return MonthRecords(month, first, last, reports, checkins)


# --- attendance over the month ----------------------------------------------------------------

@dataclass
class PersonMonth:
    userid: str
    name: str
    role: str
    grid: str
    workdays: list[date]  # the month's workdays (up to `through`)
    leave: set[date]  # of those, days on leave
    present: dict[date, str] = field(default_factory=dict)  # day → its first counted check-in's id

    @property
    def expected(self) -> list[date]:
        return [d for d in self.workdays if d not in self.leave]

    @property
    def checkin_days(self) -> list[date]:
        return [d for d in self.expected if d in self.present]

    @property
    def rate(self) -> float | None:
        return rate_of(len(self.checkin_days), len(self.expected))


def people_month(cfg: Config, store: Store, records: MonthRecords, workdays: list[date]) -> dict[str, PersonMonth]:
    """Every grid member's month, by userid, in config order."""
    first_checkin: dict[tuple[str, date], tuple[float, str]] = {}
    for c in records.checkins:
        if not c.get("counted", True):
            continue
        try:
            day = date.fromisoformat(c["date"])
        except (KeyError, ValueError):
            continue
        key = (c.get("userid"), day)
        stamp = (c.get("time") or 0, c.get("id", ""))
        if key not in first_checkin or stamp < first_checkin[key]:
            first_checkin[key] = stamp
    present: dict[str, dict[date, str]] = {}
    for (uid, day), (_, cid) in sorted(first_checkin.items(), key=lambda kv: kv[0][1]):
        present.setdefault(uid, {})[day] = cid
    out: dict[str, PersonMonth] = {}
    for g in cfg.grids:
        for p in cfg.grid_members(g.id):
            periods = leave_periods(store.get("leave", p.userid), cfg.tz)
            leave = {d for d in workdays if covered(periods, d)}
            out[p.userid] = PersonMonth(p.userid, p.name, p.role, g.id, workdays, leave,
                                        present.get(p.userid, {}))
    return out


def day_rate(people: list[PersonMonth], day: date) -> tuple[int, int]:
    """(checked in, expected) among `people` on one workday: how 迎检 days are read one by one."""
    expected = [p for p in people if day in p.workdays and day not in p.leave]
    return sum(1 for p in expected if day in p.present), len(expected)

