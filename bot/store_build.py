"""One shard table read from disk with what the Store keeps beside it: its documents, its field
index and its day aggregates, built apart from the Store so that it may happen in a thread.

A district's week of reports is half a million documents: two seconds of parsing and one of
indexing. At start only this week is read before the bot answers; last week is built here in a
thread right after, and the loop only adopts the result (bot.store: Store._adopt), which costs
O(grids), not O(documents).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.day_index import DayIndex
from bot.store_files import no_cyclic_gc, read_table

ID_NUMBER = re.compile(r"^([A-Za-z]+)(\d+)$")
# Fields looked up on every message (a person's week, a grid's day): indexed per shard so the
# cost stays flat as a week fills up.
INDEXED = {"reports": ("userid", "grid"), "checkins": ("userid", "grid"),
           # The few problems not closed yet, among a year's (the ladder job, every list of them).
           "problems": ("status",)}
WEEK_SHARD = re.compile(r"^\d{4}-W\d{2}$")
# Reports and check-ins before last week are read by no daily job and no message as documents
# (the weekly and monthly documents read from a snapshot, which reads old weeks from disk): not
# loaded at start, nor kept. What photo duplicates (90 days) and streaks (60) need of older
# check-ins comes from their digests (bot.store_digest): a district's start held 2.7 GB of them.
RECENT_BY_TABLE = {"reports": 1, "checkins": 1}
# Of those, read before the bot answers: this week's reports (every report's reply adds up the
# person's week). This week's check-ins (a district's 1.5 s) and last week's tables (its half a
# million reports, 3 s) are read in a thread right after start (Store._warm_recent), newest
# first, or when first asked (a photo before then: its reply waits, its acknowledgement does
# not). -1: no week, not even this one.
START_BY_TABLE = {"reports": 0, "checkins": -1}


@dataclass
class BuiltTable:
    docs: dict[str, dict]
    index: dict[str, dict[Any, set[str]]]  # field -> value -> ids
    days: DayIndex = field(default_factory=DayIndex)
    top: dict[str, int] = field(default_factory=dict)  # id prefix -> highest number seen


def build_table(path: Path | None, table: str, shard: str, fields: tuple[str, ...],
                docs: dict[str, dict] | None = None) -> BuiltTable:
    """Read a shard table (none: `path` is None; or its `docs`, read already) and index it;
    touches nothing shared."""
    if docs is None:
        docs = read_table(path, table) if path is not None else {}
    built = BuiltTable(docs, {f: {} for f in fields})
    with no_cyclic_gc():
        indexes = list(built.index.items())
        add = built.days.add
        for key, doc in docs.items():
            for name, by_value in indexes:
                value = doc.get(name)
                ids = by_value.get(value)
                if ids is None:
                    ids = by_value[value] = set()
                ids.add(key)
            add(table, shard, doc)
        top = built.top
        for key in docs:
            m = ID_NUMBER.match(key)
            if m and int(m.group(2)) > top.get(m.group(1), 0):
                top[m.group(1)] = int(m.group(2))
    return built
