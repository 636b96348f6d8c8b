"""How a week is named in what the bot sends and writes: 第48周, 2026年第48周, the digest's title,
last week. Its own module so the digest, the ledger and the export command can all use it
without importing each other."""

from __future__ import annotations

from datetime import date, timedelta

from bot.clock import iso_week
from bot.config import Config
from schedules.weekdata import scope_name


def week_number(week: str) -> int:
    return int(week.upper().split("-W")[1])


def week_label(week: str) -> str:
    y, w = week.upper().split("-W")
    return f"{y}年第{int(w)}周"


def digest_title(cfg: Config, week: str, scope: list[str] | None) -> str:
    return f"{scope_name(cfg, scope)}第{week_number(week)}周工作简报"


def previous_week(d: date) -> str:
    return iso_week(d - timedelta(days=7))
