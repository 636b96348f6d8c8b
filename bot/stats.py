"""Counts for `gridbot stats`: all time, or one ISO week by work date."""

from __future__ import annotations

from datetime import datetime
from statistics import median

from bot.clock import iso_week, week_bounds
from bot.config import Config
from bot.problem_ledger import PENDING, WITHDRAWN
from bot.problem_review import is_late
from bot.records import counted
from bot.store import Store


def compute_stats(store: Store, cfg: Config, week: str | None = None) -> dict:
    if week:
        week_bounds(week)  # validates the format
        week = week.upper()
    shards = [week] if week else None
    reports = [r for r in store.docs("reports", shards) if r.get("status") == "active"]
    checkins = list(store.docs("checkins", shards))

    def in_week(ts: float | None) -> bool:
        return week is None or (ts is not None and iso_week(datetime.fromtimestamp(ts, cfg.tz).date()) == week)

    problems = [p for p in store.docs("problems") if in_week(p.get("opened_at")) and p.get("status") != WITHDRAWN]
    closed = [p for p in problems if p.get("status") == "closed"]
    hours = [(p["closed_at"] - (p.get("reopened_at") or p["opened_at"])) / 3600 for p in closed if p.get("closed_at")]
    return {
        "week": week,
        "reports": len(reports),
        "reports_counted": sum(1 for r in reports if counted(r)),
        "items": sum(len(r.get("items", [])) for r in reports),
        "checkins": sum(1 for c in checkins if c.get("counted")),
        "duplicates": sum(1 for c in checkins if "duplicate" in c.get("flags", [])),
        "flagged_checkins": sum(1 for c in checkins if not c.get("counted")),
        "problems_open": sum(1 for p in problems if p.get("status") == "open"),
        "problems_closed": len(closed),
        # The check before 销号 (bot.problem_review): waiting, passed in time or late, sent back.
        "problems_awaiting_check": sum(1 for p in problems if p.get("status") == PENDING),
        "problems_closed_on_time": sum(1 for p in closed if not is_late(p)),
        "problems_closed_late": sum(1 for p in closed if is_late(p)),
        "problems_rejected_fixes": sum(1 for p in problems for h in p.get("history", [])
                                       if h.get("action") == "check_rejected"),
        "problems_median_hours_to_close": round(median(hours), 1) if hours else None,
        "problems_recurrences": sum(1 for p in problems if p.get("recurs_of")),
    }
