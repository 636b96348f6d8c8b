"""A week's counts kept beside its shard, so `gridbot stats` over many weeks parses no record.

When a checkpoint writes a week's reports or check-ins, it also writes their counts: the numbers
`gridbot stats` shows for that table, and the stamp (inode, size, time) of the file they were
counted from; per part, <week>/<table>/<part>.counts, since weeks are kept in parts
(bot.store_main), or <week>/<table>.counts beside a whole file of the earlier layout. A reader trusts them only while the stamp still matches the table's
file: a crash between the two writes, or a table written by an earlier version, leaves counts
that do not match, and the reader counts from the documents instead (and may keep what it
counted, see save_week_counts). Not a table: the name does not end in .json, so the Store
never loads it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from loguru import logger

from bot.day_index import counted
from bot.journal import dumps, loads
from bot.store_files import atomic_write, read_table

SUFFIX = ".counts"


def count_reports(docs: Iterable[dict]) -> dict[str, int]:
    out = {"reports": 0, "reports_counted": 0, "items": 0}
    for r in docs:
        if r.get("status") != "active":
            continue
        out["reports"] += 1
        out["reports_counted"] += counted(r)
        out["items"] += len(r.get("items", []))
    return out


def count_checkins(docs: Iterable[dict]) -> dict[str, int]:
    out = {"checkins": 0, "duplicates": 0, "flagged_checkins": 0}
    for c in docs:
        if c.get("counted"):
            out["checkins"] += 1
        else:
            out["flagged_checkins"] += 1
        out["duplicates"] += "duplicate" in c.get("flags", [])
    return out


COUNTERS = {"reports": count_reports, "checkins": count_checkins}


def _stamp(path: Path) -> list[int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return [st.st_ino, st.st_size, st.st_mtime_ns]


def write_week_counts(folder: Path, table: str, docs: list[dict], part: str | None = None) -> None:
    """After a week's table (or one `part` of it, in folder/table/) was written (in the
    checkpoint's thread): its counts beside it. Counted per part, so a checkpoint counts what
    it wrote, not the whole week again."""
    count = COUNTERS.get(table)
    if count is None:
        return
    if part is None:
        save_week_counts(folder, table, count(docs), _stamp(folder / f"{table}.json"))
    else:
        save_week_counts(folder / table, part, count(docs), _stamp(folder / table / f"{part}.json"))


def save_week_counts(folder: Path, table: str, counts: dict[str, int], stamp: list[int] | None) -> None:
    if stamp is None:
        return
    atomic_write(folder / f"{table}{SUFFIX}", dumps({"stamp": stamp, "counts": counts}))


def table_stamp(folder: Path, table: str) -> list[int] | None:
    """The stamp of a week's table file now (taken before it is read, so counts kept from that
    read never claim a newer file)."""
    return _stamp(folder / f"{table}.json")


def read_week_counts(folder: Path, table: str) -> dict[str, int] | None:
    """The counts kept for a week's table, if they were counted from the files there now: its
    whole file (the earlier layout), or each of its parts (bot.store_main), summed. A table in
    both (parts written over a whole file) is counted from its documents."""
    parts = folder / table
    if parts.is_dir():
        if (folder / f"{table}.json").exists():
            return None
        total: dict[str, int] = {}
        for path in sorted(parts.glob("*.json")):
            if path.name.startswith("."):
                continue
            kept = _read_counts(parts, path.stem)
            if kept is None:  # a part written without its counts (a crash between): counted alone
                stamp = _stamp(path)
                kept = COUNTERS[table](read_table(path, table, keep=False).values())
                try:
                    save_week_counts(parts, path.stem, kept, stamp)
                except OSError as e:  # a read-only or full disk: counted, not kept
                    logger.debug("{}: counts not kept ({})", path, e)
            for k, v in kept.items():
                total[k] = total.get(k, 0) + v
        return total
    return _read_counts(folder, table)


def _read_counts(folder: Path, table: str) -> dict[str, int] | None:
    try:
        kept = loads((folder / f"{table}{SUFFIX}").read_bytes())
    except FileNotFoundError:
        return None
    except ValueError as e:  # a file we did not write: count from the documents
        logger.warning("{}: unreadable counts ({}), counting from the records", folder / f"{table}{SUFFIX}", e)
        return None
    if not isinstance(kept, dict) or kept.get("stamp") != _stamp(folder / f"{table}.json"):
        return None
    return kept.get("counts")
