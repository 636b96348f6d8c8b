"""The one source of "now" and "today", in the bot's timezone; tests substitute a FakeClock."""

from __future__ import annotations

import functools
from datetime import date, datetime, timedelta, tzinfo

# How far a message may be stamped before the one it follows and still belong to it (a photo
# after "问题:…", a location after a check-in photo): WeCom's CreateTime has one-second
# resolution, phones and WeCom stamp with separate clocks, and messages are not always
# processed in the order they were stamped. Seconds.
CLOCK_SLACK = 60


class Clock:
    def __init__(self, tz: tzinfo):
        self.tz = tz

    def now(self) -> datetime:
        return datetime.now(self.tz)

    def today(self) -> date:
        return self.now().date()

    def from_timestamp(self, ts: int | float) -> datetime:
        return datetime.fromtimestamp(ts, self.tz)


class FakeClock(Clock):
    def __init__(self, tz: tzinfo, at: datetime):
        super().__init__(tz)
        self._now = at if at.tzinfo else at.replace(tzinfo=tz)

    def now(self) -> datetime:
        return self._now

    def set(self, at: datetime) -> None:
        self._now = at if at.tzinfo else at.replace(tzinfo=self.tz)

    def advance(self, **kw) -> None:
        self._now += timedelta(**kw)


@functools.lru_cache(maxsize=1024)  # a handful of distinct days in any hour of work
def iso_week(d: date) -> str:
    y, w, _ = d.isocalendar()
    return f"{y}-W{w:02d}"


def week_bounds(week: str) -> tuple[date, date]:
    """'2026-W48' → (Monday, Sunday)."""
    try:
        y, w = week.upper().split("-W")
        monday = date.fromisocalendar(int(y), int(w), 1)
    except ValueError as e:
        raise ValueError(f"周的格式应为 YYYY-Www,例如 2026-W48 / week must look like 2026-W48: {week!r}") from e
    return monday, monday + timedelta(days=6)


def zh_date(d: date | datetime) -> str:
    return f"{d.month}月{d.day}日"
