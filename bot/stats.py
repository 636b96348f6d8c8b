"""Counts for `gridbot stats`: all time, or one ISO week by work date.

Read a week at a time, never all at once: a week's reports and check-ins are counted from the
counts kept beside its shard (bot.week_counts) when they still match its file, else from its
documents, read, counted and let go; weeks the store holds in memory (the journal's tail of a
running bot) are counted there. So all-time stats over a district's year hold one week at most.
"""

from __future__ import annotations

from datetime import datetime
from statistics import median

from loguru import logger

from bot.clock import iso_week, week_bounds
from bot.config import Config
from bot.problem_ledger import PENDING, WITHDRAWN
from bot.problem_review import is_late
from bot.store import Store
from bot.week_counts import COUNTERS, read_week_counts, save_week_counts, table_stamp


def week_table_counts(store: Store, week: str, table: str) -> dict[str, int]:
    count = COUNTERS[table]
    if store.held(week, table):
        return count(store.docs(table, [week]))
    if not store.has_table(week, table):
        return count([])
    if hasattr(store, "counted"):  # PostgreSQL (bot.store_pg): counted by the server
        return store.counted(week, table)
    folder = store.db_dir / week
    kept = read_week_counts(folder, table)
    if kept is not None:
        return kept
    stamp = table_stamp(folder, table)
    counts = count(store.read_passing(week, table))
    try:
        # Kept for the next run: a cache, stamped with the file it was counted from.
        save_week_counts(folder, table, counts, stamp)
    except OSError as e:
        logger.debug("{}: counts not kept ({})", folder, e)
    return counts


def compute_stats(store: Store, cfg: Config, week: str | None = None) -> dict:
    if week:
        week_bounds(week)  # validates the format
        week = week.upper()
    totals: dict[str, int] = {}
    for w in [week] if week else store.shards():
        for table in COUNTERS:
            for k, v in week_table_counts(store, w, table).items():
                totals[k] = totals.get(k, 0) + v

    def in_week(ts: float | None) -> bool:
        return week is None or (ts is not None and iso_week(datetime.fromtimestamp(ts, cfg.tz).date()) == week)

    problems = {"open": 0, "closed": 0, "pending": 0, "on_time": 0, "late": 0, "rejected": 0, "recurs": 0}
    hours: list[float] = []
    for p in store.docs("problems", ["main"]):
        if p.get("status") == WITHDRAWN or not in_week(p.get("opened_at")):
            continue
        status = p.get("status")
        problems["open"] += status == "open"
        problems["pending"] += status == PENDING
        if status == "closed":
            problems["closed"] += 1
            problems["late" if is_late(p) else "on_time"] += 1
            if p.get("closed_at"):
                hours.append((p["closed_at"] - (p.get("reopened_at") or p["opened_at"])) / 3600)
        problems["rejected"] += sum(1 for h in p.get("history", []) if h.get("action") == "check_rejected")
        problems["recurs"] += bool(p.get("recurs_of"))
    return {
        "week": week,
        "reports": totals.get("reports", 0),
        "reports_counted": totals.get("reports_counted", 0),
        "items": totals.get("items", 0),
        "checkins": totals.get("checkins", 0),
        "duplicates": totals.get("duplicates", 0),
        "flagged_checkins": totals.get("flagged_checkins", 0),
        "problems_open": problems["open"],
        "problems_closed": problems["closed"],
        # The check before 销号 (bot.problem_review): waiting, passed in time or late, sent back.
        "problems_awaiting_check": problems["pending"],
        "problems_closed_on_time": problems["on_time"],
        "problems_closed_late": problems["late"],
        "problems_rejected_fixes": problems["rejected"],
        "problems_median_hours_to_close": round(median(hours), 1) if hours else None,
        "problems_recurrences": problems["recurs"],
    }
