"""The 红榜 and 黑榜 of a month: who they name, and the one-line reason beside each name.

Grids are ranked by points per member (small grids compete fairly), people by their points.
Each list names at most its configured number and at most half of those ranked, and nobody is
on both. A tie at a list's edge takes the whole tie in (并列) unless that would break the
half rule, when the tie stays off the list: two grids with equal points are not one red, one
black. People go on the 黑榜 only when [monthly] black_list_people allows it (a local policy).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, TypeVar

from bot.attendance import pct
from bot.config import Config
from bot.scoring import RULES, PersonPoints, Tally, fmt_points
from schedules.month_data import GridMonth

T = TypeVar("T")


@dataclass
class Honour:
    name: str  # "1号网格" or "李四"
    grid: str  # the person's grid ("" for a grid)
    points: str  # "人均42.3分" or "45分"
    reason: str  # one line: where the points came from, or where they were lost

    def short(self) -> str:
        """"1号网格(人均16分)", "张三(1号网格,25分)"."""
        return f"{self.name}({self.grid + ',' if self.grid else ''}{self.points})"

    def line(self) -> str:
        """"1号网格:人均16分。打卡率88%,…", "张三(1号网格):25分。打卡19天、…"."""
        return f"{self.name}{f'({self.grid})' if self.grid else ''}:{self.points}。{self.reason}"


@dataclass
class Honours:
    red_grids: list[Honour]
    red_people: list[Honour]
    black_grids: list[Honour]
    black_people: list[Honour]
    ranked_grids: int  # how many grids were ranked (too few, or all tied: no lists)

    @property
    def empty(self) -> bool:
        return not (self.red_grids or self.red_people or self.black_grids or self.black_people)


def _edge(ranked: list[T], k: int, key: Callable[[T], float], limit: int) -> list[T]:
    """The first k of `ranked` (best first), a tie at the edge taken whole, never more than `limit`."""
    k = min(k, limit, len(ranked))
    if k <= 0:
        return []
    edge = key(ranked[k - 1])
    chosen = [x for x in ranked if key(x) >= edge]
    if len(chosen) > limit:
        chosen = [x for x in ranked if key(x) > edge]
    return chosen


def pick(ranked: list[T], key: Callable[[T], float], red: int, black: int) -> tuple[list[T], list[T]]:
    """(red, black) from a best-first list: black from the bottom, never anyone on red."""
    half = len(ranked) // 2
    top = _edge(ranked, red, key, half)
    rest = [x for x in ranked if x not in top]
    bottom = _edge(list(reversed(rest)), black, lambda x: -key(x), half)
    # Someone tied with a red-listed name cannot be black-listed.
    floor = min((key(x) for x in top), default=None)
    bottom = [x for x in bottom if floor is None or key(x) < floor]
    return top, bottom


def _parts(tally: Tally, positive: bool, n: int = 3, grid: bool = False) -> list[str]:
    """The rules that gave (or took) the most points, as "打卡21天" ("打卡46人天" for a grid)."""
    rows = [(r, c, p) for r, (c, p) in tally.by_rule.items() if (p > 0 if positive else p < 0)]
    rows.sort(key=lambda rcp: (-abs(rcp[2]), list(RULES).index(rcp[0])))
    unit = {**{r: u for r, (_, u) in RULES.items()}, **({"checkin_day": "人天"} if grid else {})}
    return [f"{RULES[r][0]}{int(c)}{unit[r]}" for r, c, _ in rows[:n]]


def grid_reason(g: GridMonth, red: bool) -> str:
    parts = _parts(g.points.tally, positive=red, grid=True) or ([] if red else [f"有效上报{g.reports}条"])
    return f"打卡率{pct(g.rate)};" + "、".join(parts)


def person_reason(p: PersonPoints, expected: int, checked: int, red: bool) -> str:
    if red:
        return "、".join(_parts(p.tally, positive=True))
    lost = _parts(p.tally, positive=False)
    return "、".join([f"打卡{checked}/{expected}天"] + lost)


def honours(cfg: Config, grids: list[GridMonth]) -> Honours:
    """The lists among these grids (a leader's scope, or the street)."""
    rules = cfg.monthly
    ranked = sorted((g for g in grids if g.per_member is not None), key=lambda g: (-g.per_member, g.points.rank))
    red_g, black_g = pick(ranked, lambda g: round(g.per_member, 6), rules.red_list, rules.black_list)
    red_g = [g for g in red_g if g.per_member > 0]
    names = {g.id: g.name for g in grids}
    scored = sorted(((g.person_points[pm.userid], pm) for g in grids for pm in g.people if pm.userid in g.person_points),
                    key=lambda t: (-t[0].total, t[0].rank))
    red_p, black_p = pick(scored, lambda s: round(s[0].total, 6), rules.red_list,
                          rules.black_list if rules.black_list_people else 0)
    red_p = [s for s in red_p if s[0].total > 0]
    return Honours(
        red_grids=[Honour(g.name, "", f"人均{fmt_points(g.per_member)}分", grid_reason(g, True)) for g in red_g],
        red_people=[Honour(pp.name, names[pp.grid], f"{fmt_points(pp.total)}分",
                           person_reason(pp, len(pm.expected), len(pm.checkin_days), True)) for pp, pm in red_p],
        black_grids=[Honour(g.name, "", f"人均{fmt_points(g.per_member)}分", grid_reason(g, False)) for g in black_g],
        black_people=[Honour(pp.name, names[pp.grid], f"{fmt_points(pp.total)}分",
                             person_reason(pp, len(pm.expected), len(pm.checkin_days), False))
                      for pp, pm in black_p],
        ranked_grids=len(ranked))

