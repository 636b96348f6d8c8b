"""Leave records: the periods a person is on leave (table "leave"), as every feature reads them."""

from __future__ import annotations

from datetime import date, datetime, tzinfo

from bot.store import Store


Period = tuple[date, date]


def day_of(at, tz: tzinfo | None = None) -> date:
    """The day of a leave document's "at" (unix time or ISO text); unknown means "since always"."""
    try:
        if isinstance(at, (int, float)):
            return datetime.fromtimestamp(at, tz).date()
        if isinstance(at, str):
            dt = datetime.fromisoformat(at)
            return (dt.astimezone(tz) if dt.tzinfo else dt).date()
    except (ValueError, OverflowError, OSError):
        pass
    return date.min


def leave_periods(doc: dict | None, tz: tzinfo | None = None) -> list[Period]:
    """The (from, until) periods of a leave document, inclusive at both ends."""
    if not doc:
        return []
    periods = doc.get("periods")
    if periods is None:
        # A document with only the contract fields: the leave ran from when it was set.
        start = doc.get("from") or day_of(doc.get("at"), tz).isoformat()
        periods = [{"from": start, "until": doc.get("until")}]
    out = []
    for p in periods:
        try:
            out.append((date.fromisoformat(p["from"]), date.fromisoformat(p["until"])))
        except (KeyError, TypeError, ValueError):
            continue
    return out


def covered(periods: list[Period], day: date) -> bool:
    return any(a <= day <= b for a, b in periods)


def on_leave(store: Store, userid: str, day: date, tz: tzinfo | None = None) -> bool:
    return covered(leave_periods(store.get("leave", userid), tz), day)


def leave_until(store: Store, userid: str, day: date, tz: tzinfo | None = None) -> date | None:
    """The last day of the leave covering `day`, or None."""
    ends = [b for a, b in leave_periods(store.get("leave", userid), tz) if a <= day <= b]
    return max(ends) if ends else None
