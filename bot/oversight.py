"""Levels of oversight (一级抓一级): who stands above a grid, from its own leaders up to the street.

The same ladder answers two questions: who checks a fix before a problem is closed
(bot.problem_review) and who is told, step by step, of an overdue problem or a member who has
stopped checking in (bot.ladder). The levels, lowest first:

- "grid_leader": the grid's own grid leaders;
- "community": leaders whose scope names the grid or its community (the community secretary);
- "street": leaders with no scope, who oversee the whole street;
- "admin": the system's admins.

Someone at a level may also act for every level below it, but only over grids in their view.
"""

from __future__ import annotations

from bot.config import Config, Person

LEVELS = ("grid_leader", "community", "street", "admin")
LEVEL_ZH = {"grid_leader": "网格长", "community": "社区领导", "street": "街道领导", "admin": "管理员"}


def _covers(cfg: Config, person: Person, grid_id: str) -> bool:
    grid = cfg.grid(grid_id)
    return grid_id in person.scope or (grid is not None and bool(grid.community) and grid.community in person.scope)


def level_of(cfg: Config, person: Person, grid_id: str) -> str | None:
    """The highest level at which `person` oversees `grid_id`, or None (a member, an outsider)."""
    if person.role == "admin":
        return "admin"
    if person.role == "leader":
        if not person.scope:
            return "street"
        return "community" if _covers(cfg, person, grid_id) else None
    if person.role == "grid_leader" and person.grid == grid_id:
        return "grid_leader"
    return None


def rank(level: str | None) -> int:
    """0 for grid_leader … 3 for admin; -1 for no level (or "none")."""
    return LEVELS.index(level) if level in LEVELS else -1


def people_at(cfg: Config, level: str, grid_id: str) -> list[Person]:
    """Everyone at exactly `level` over `grid_id`, in config order."""
    # Asked for every step of every ladder: remembered per people list (as Config.person is),
    # since a hot reload replaces the list and the answers with it.
    people = cfg.people
    cached = cfg.__dict__.get("_oversight_index")
    if cached is None or cached[0] is not people or cached[1] is not cfg.grids:
        # Above a grid's own leaders only leaders and admins can stand: a few among a
        # district's 24,000 people, who are not walked once per grid.
        cached = (people, cfg.grids, {}, [p for p in people if p.role in ("leader", "admin")])
        cfg.__dict__["_oversight_index"] = cached
    key = (level, grid_id)
    if key not in cached[2]:
        if level == "grid_leader":
            cached[2][key] = cfg.grid_leaders(grid_id)
        else:
            cached[2][key] = [p for p in cached[3] if level_of(cfg, p, grid_id) == level]
    return cached[2][key]


def first_people_from(cfg: Config, level: str, grid_id: str, exclude: set[str] = frozenset()) -> tuple[str, list[Person]]:
    """The people at `level` over the grid, or, when there is nobody there (but those excluded), at
    the next level up that has someone: (the level found, its people). ("", []) when nobody."""
    for lv in LEVELS[max(rank(level), 0):]:
        found = [p for p in people_at(cfg, lv, grid_id) if p.userid not in exclude]
        if found:
            return lv, found
    return "", []


def names(people: list[Person]) -> str:
    return "、".join(p.name for p in people)
