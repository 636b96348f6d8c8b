"""The week's photo archive (资料归档): a zip of the check-in and problem photos, filed by grid and
day. The ledger's photo cells link to these same paths, so they open once the archive is
unzipped beside the xlsx."""

from __future__ import annotations

import re
import zipfile
from datetime import date, datetime
from pathlib import Path

from bot.config import Config
from bot.photos.media_store import media_for
from bot.store import atomic_file
from schedules.week_titles import week_label
from schedules.weekdata import WeekData, scope_name

_UNSAFE_PATH = re.compile(r'[\\/:*?"<>|\x00-\x1f]')


def archive_stem(cfg: Config, week: str, scope: list[str] | None = None) -> str:
    return f"{scope_name(cfg, scope)}{week_label(week)}照片归档"


def safe_part(s: str) -> str:
    return _UNSAFE_PATH.sub("_", s).strip(". ") or "_"


def photo_date(rel: str, fallback: date) -> str:
    """Stored photos are named <date>_<kind>_...; the folder in the archive is that date."""
    name = Path(rel).name
    try:
        return date.fromisoformat(name[:10]).isoformat()
    except ValueError:
        return fallback.isoformat()


def archive_path(stem: str, grid_name: str, day: str, rel: str) -> str:
    return f"{stem}/{safe_part(grid_name)}/{day}/{safe_part(Path(rel).name)}"


def opened_day(cfg: Config, data: WeekData, p: dict) -> date:
    """Where a problem's photo is filed when its name carries no date: the day the problem was
    opened (the week's Monday if that is unknown)."""
    ts = p.get("opened_at")
    return datetime.fromtimestamp(ts, cfg.tz).date() if ts else data.monday


def week_photos(cfg: Config, data: WeekData, grid_ids: list[str] | None = None,
                scope: list[str] | None = None) -> list[tuple[str, str]]:
    """(path relative to data_dir, path in the archive) for check-in and problem photos."""
    grids = data.grid_list(grid_ids)  # None: the street, records of removed grids too
    stem = archive_stem(cfg, data.week, scope)
    out: dict[str, str] = {}
    for g in grids:
        for c in g.checkins:
            if c.get("file"):
                out.setdefault(c["file"], archive_path(stem, g.name, c.get("date", ""), c["file"]))
    gnames = {g.id: g.name for g in grids}
    for p in data.problems_of(set(gnames)):
        fallback = opened_day(cfg, data, p)
        for rel in (p.get("photos_before") or []) + (p.get("photos_after") or []):
            out.setdefault(rel, archive_path(stem, gnames[p["grid"]], photo_date(rel, fallback), rel))
    return sorted(out.items(), key=lambda kv: kv[1])


def write_photo_zip(cfg: Config, data: WeekData, path: Path, grid_ids: list[str] | None = None) -> tuple[int, int]:
    """Write the archive atomically; returns (photos archived, photos missing on disk)."""
    media = media_for(cfg)
    added = missing = 0
    with atomic_file(path) as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as z:
        for rel, arc in week_photos(cfg, data, grid_ids):
            src = media.local_path(rel)
            if src is None:
                missing += 1
                continue
            z.write(src, arc)  # photos are compressed already: stored, not deflated
            added += 1
    return added, missing
