"""Queries over stored records that handlers and jobs share (no TinyDB here: the Store's API)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta

from bot.clock import iso_week, week_bounds
from bot.day_index import counted  # noqa: F401  (the rule lives with the index that applies it)
from bot.store import Store


def weeks_between(start: date, end: date) -> list[str]:
    out, d = [], start - timedelta(days=start.weekday())
    while d <= end:
        out.append(iso_week(d))
        d += timedelta(days=7)
    return out


def _of_week(store: Store, table: str, week: str, userid: str | None, grid: str | None) -> list[dict]:
    # The indexed lookups keep a busy week from slowing every message down.
    if userid is not None:
        docs = store.docs_by(table, "userid", userid, [week])
    elif grid is not None:
        docs = store.docs_by(table, "grid", grid, [week])
    else:
        docs = list(store.docs(table, [week]))
    return [d for d in docs if (userid is None or d["userid"] == userid) and (grid is None or d["grid"] == grid)]


def reports_of_week(store: Store, week: str, *, userid: str | None = None, grid: str | None = None,
                    only_counted: bool = True) -> list[dict]:
    return [r for r in _of_week(store, "reports", week, userid, grid)
            if (counted(r) if only_counted else r.get("status") != "withdrawn")]


def totals(reports: list[dict]) -> dict[tuple[str, str], float]:
    """(category, unit) → summed quantity."""
    out: dict[tuple[str, str], float] = defaultdict(float)
    for r in reports:
        for it in r.get("items", []):
            out[(it["category"], it["unit"])] += it["quantity"]
    return dict(out)


def in_category_order(cfg, sums: dict[tuple[str, str], float]) -> list[tuple[tuple[str, str], float]]:
    """Totals in the configured category order (the order people read the taxonomy in)."""
    order = cfg.category_order
    return sorted(sums.items(), key=lambda kv: (order.get(kv[0][0], len(order)), kv[0]))


def category_lines(cfg, sums: dict[tuple[str, str], float]) -> list[tuple[str, str]]:
    """(label, quantities) per category in the configured order, one entry per category even when
    it was counted in several units: ("隐患排查", "12家、3处"), never two lines with one name."""
    by_cat: dict[str, list[str]] = {}
    order = cfg.category_order
    # Stable: a category's units stay in the order they were first reported.
    for (cat, unit), q in sorted(sums.items(), key=lambda kv: order.get(kv[0][0], len(order))):
        by_cat.setdefault(cat, []).append(f"{fmt_qty(q)}{unit}")
    return [(cfg.category_label(cat), "、".join(parts)) for cat, parts in by_cat.items()]


def items_totals(items: list[dict]) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = defaultdict(float)
    for it in items:
        out[(it["category"], it["unit"])] += it["quantity"]
    return dict(out)


def fmt_qty(q: float) -> str:
    return str(int(q)) if float(q).is_integer() else f"{q:g}"


def days_of_week(week: str) -> list[date]:
    monday, _ = week_bounds(week)
    return [monday + timedelta(days=i) for i in range(7)]


def checkins_of_week(store: Store, week: str, *, userid: str | None = None, grid: str | None = None,
                     only_counted: bool = True) -> list[dict]:
    return [c for c in _of_week(store, "checkins", week, userid, grid)
            if not only_counted or c.get("counted", True)]
