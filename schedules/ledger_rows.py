"""A grid's rows in the week's ledger (明细, 打卡, 人员), built once per collected week.

A grid is in several ledgers of one digest: its community's, the street's, a district's. Its
rows are the same in each: every ledger of a week has the week's (category, unit) columns
(`week_keys`), and its photo links point into the week's one photo archive (the street's, as
`gridbot export` writes it). So a grid's 明细 and 打卡 rows are written as XML the first time a
ledger asks (xlsx_rows.Block) and kept on the WeekData (`rows_of`); every later ledger holding the
grid, the district's above all, puts those bytes in as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any

from bot.config import Config
from bot.records import category_lines, counted, items_totals
from bot.attendance import Totals
from schedules.archive import archive_path, archive_stem
from schedules.weekdata import ISSUE_ZH, GridWeek, WeekData, ordered_units
from schedules.xlsx import Link, wall_time
from schedules.xlsx_rows import Block, write_block

ROLE_ZH = {"member": "网格员", "grid_leader": "网格长", "leader": "领导", "admin": "管理员"}
Keys = list[tuple[str, str]]  # (category, unit) columns, in the ledger's order


@dataclass
class GridRows:
    """One grid's rows in every ledger of the week."""
    details: Block  # 明细, with the week's number columns
    checkins: Block  # 打卡, the photos linked into the week's archive
    people: list[list[Any]]  # 人员: every cell


def week_keys(cfg: Config, data: WeekData) -> Keys:
    """The (category, unit) columns of every ledger of this week: whatever any grid counted (every
    category, unit-less, in a week with no work), so a grid's rows fit any of its ledgers."""
    keys = data.ledger_rows.get(())
    if keys is None:
        keys = data.ledger_rows[()] = (ordered_units(cfg, [g.totals for g in data.grids.values()])
                                       or [(c.id, "") for c in cfg.category_list])
    return keys


def week_stem(cfg: Config, data: WeekData) -> str:
    """The photo archive every ledger of the week links into: the street's, the one export writes."""
    return archive_stem(cfg, data.week)


def rows_of(cfg: Config, data: WeekData, g: GridWeek) -> GridRows:
    """This grid's rows, built the first time any ledger of this week asks for them."""
    rows = data.ledger_rows.get(g.id)
    if rows is None:
        rows = data.ledger_rows[g.id] = grid_rows(cfg, g, cfg.community_name(g.community) if g.community else "",
                                                  week_keys(cfg, data), week_stem(cfg, data))
    return rows


def grid_rows(cfg: Config, g: GridWeek, cname: str, keys: Keys, stem: str) -> GridRows:
    index = {k: i for i, k in enumerate(keys)}
    details = []
    for r in g.reports:
        counts: Totals = {}
        if counted(r):
            for it in r.get("items") or ():
                k = (it["category"], it["unit"])
                counts[k] = counts.get(k, 0) + it["quantity"]
        details.append(detail_row([r.get("id", ""), _day(r.get("work_date", "")), wall_time(cfg.tz, r.get("sent_at")),
                                   cname, g.name, r.get("name") or r.get("userid", ""), r.get("text", ""),
                                   r.get("corrected_text", ""), _items_text(cfg, r.get("items", [])),
                                   _report_status(r), "、".join(ISSUE_ZH.get(f, f) for f in r.get("flags", [])),
                                   _history_text(cfg, r.get("history", []))], counts, index))
    checkins = []
    for c in g.checkins:
        day = _day(c.get("date", ""))
        photo = archive_path("", g.name, c.get("date", ""), c["file"]) if c.get("file") else None
        checkins.append(checkin_row([c.get("id", ""), day, wall_time(cfg.tz, c.get("time")), cname, g.name,
                                     c.get("name") or c.get("userid", ""), _place(c),
                                     "是" if c.get("counted", True) else "否",
                                     "、".join(ISSUE_ZH.get(f, f) for f in c.get("flags", [])), c.get("reason") or ""],
                                    photo, stem))
    people = [[cname, g.name, p.name, ROLE_ZH.get(p.role, p.role), p.workdays, p.checkin_days, ratio(p.rate),
               len(p.missing_run), p.leave_days, p.reports] for p in g.people]
    return GridRows(write_block(details), write_block(checkins), people)


def detail_row(cells: list[Any], counts: Totals, index: dict[tuple[str, str], int]) -> list[Any]:
    """A report's row with the ledger's number columns (`index`: a column's place by its key): a
    number only where it counts."""
    nums: list[Any] = [None] * len(index)
    for k, q in counts.items():
        i = index.get(k)
        if i is not None:
            nums[i] = q
    return cells + nums


@lru_cache(maxsize=512)
def _day(text: str) -> Any:
    """A work date as a date (a week has seven: one object each), or the text if it is none."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        return text


def checkin_row(cells: list[Any], photo: str | None, stem: str) -> list[Any]:
    """A check-in's row, its photo linked into the archive folder `stem`."""
    if photo is None:
        return cells + [None]
    target = stem + photo
    return cells + [Link(target.split("/", 1)[1], target)]


# --- cell values --------------------------------------------------------------------------

def ratio(x: float | None) -> float | None:
    return None if x is None else round(x, 4)  # 0.88, not 0.8799999999999999


def _items_text(cfg: Config, items: list[dict]) -> str:
    return ";".join(f"{label} {qty}" for label, qty in category_lines(cfg, items_totals(items)))


def _history_text(cfg: Config, history: list[dict]) -> str:
    out = []
    for h in history or []:
        when = wall_time(cfg.tz, h.get("at"))
        stamp = f"{when:%m-%d %H:%M} " if when else ""
        who = h.get("by_name") or h.get("by", "")
        before = h.get("before") or {}
        if h.get("action") == "correct":
            out.append(f"{stamp}{who}更正,原为:{before.get('text', '')}")
        elif h.get("action") == "withdraw":
            out.append(f"{stamp}{who}撤回")
        elif h.get("action") == "confirm":
            out.append(f"{stamp}{who}核实")
        elif h.get("action") == "confirm_rejected":
            out.append(f"{stamp}{who}核实,不予计入")
        else:
            out.append(f"{stamp}{who}{h.get('action', '')}")
    return ";".join(out)


def _report_status(r: dict) -> str:
    if r.get("status") == "withdrawn":
        return "已撤回"
    if r.get("confirm_rejected"):
        return "核实后不予计入"
    return "待核实" if r.get("unconfirmed") else "有效"


def _place(c: dict) -> str:
    loc = c.get("location")
    if loc:
        label = loc.get("label") or ""
        return label or f"{loc.get('lat', 0):.5f},{loc.get('lng', 0):.5f}"
    gps = c.get("gps")
    if gps:
        return f"照片定位 {gps.get('lat', 0):.5f},{gps.get('lng', 0):.5f}"
    return ""
