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

_ID = re.compile(r"^([A-Za-z]+)(\d+)$")


@dataclass
class BuiltTable:
    docs: dict[str, dict]
    index: dict[str, dict[Any, set[str]]]  # field -> value -> ids
    days: DayIndex = field(default_factory=DayIndex)
    top: dict[str, int] = field(default_factory=dict)  # id prefix -> highest number seen


def build_table(path: Path | None, table: str, shard: str, fields: tuple[str, ...]) -> BuiltTable:
    """Read a shard table (none: `path` is None) and index it; touches nothing shared."""
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
            m = _ID.match(key)
            if m and int(m.group(2)) > top.get(m.group(1), 0):
                top[m.group(1)] = int(m.group(2))
    return built
