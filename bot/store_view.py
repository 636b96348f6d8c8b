"""A read-only copy of the Store at one moment, for work off the event loop.

The weekly digest, the tally and the monthly bulletin read a week or a month of records and
build documents from them: seconds of CPU for a big street. On the loop that freezes every
callback; in a thread over the live Store it would race the writes (a dict changing size under
an iteration, or half of an update seen). So the loop takes a snapshot — the table dicts copied,
which costs a few milliseconds, the documents shared (they are replaced whole, never mutated) —
and the thread reads only that. Shards the bot has not read are read from their files by the
view itself, so a month of old weeks does not stay in the bot's memory after the document is
built; and only the last few of them stay in the view's, since the monthly bulletin walks every
month of the year (a district's year of weeks held at once was gigabytes).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable, Iterator

from bot.store_main import read_main_table, read_week_table, stream_week_table

MAIN = "main"
# Tables read from disk kept at once: a month's walk reads a week's reports, then its check-ins,
# and the week at a month's edge again for the next month.
KEEP_READ = 4


class StoreView:
    """The Store's reading API (docs, docs_by, get, shards, shard_of) over a snapshot."""
    readonly = True

    def __init__(self, db_dir: Path, tables: dict[str, dict[str, dict[str, dict]]],
                 on_disk: dict[str, set[str]], left_out: frozenset[str] = frozenset()):
        self._db_dir = db_dir
        self._tables = tables  # shard -> table -> key -> doc, copied on the loop
        self._on_disk = on_disk  # shard -> tables on disk the Store had not read when copied
        self._left_out = left_out  # tables not copied: asking for one is a mistake, not "empty"
        self._read: OrderedDict[tuple[str, str], dict[str, dict]] = OrderedDict()  # from disk, newest last

    def _table(self, shard: str, table: str) -> dict[str, dict]:
        if table in self._left_out:
            raise KeyError(f"table {table!r} is not in this snapshot of the store")
        docs = self._tables.get(shard, {}).get(table)
        if docs is not None or table not in self._on_disk.get(shard, ()):
            return docs or {}
        if shard == MAIN:  # long-lived tables are asked for again and again: kept
            docs = self._tables.setdefault(shard, {})[table] = self._read_table(shard, table)
            return docs
        key = (shard, table)
        docs = self._read.get(key)
        if docs is None:
            docs = self._read[key] = self._read_table(shard, table)
            while len(self._read) > KEEP_READ:
                self._read.popitem(last=False)
        self._read.move_to_end(key)
        return docs

    def _read_table(self, shard: str, table: str) -> dict[str, dict]:
        """A table the Store had not read, from where it keeps them (bot.store_pg: the database)."""
        if shard == MAIN:
            return read_main_table(self._db_dir / MAIN, table, keep=False)
        return read_week_table(self._db_dir / shard, table, keep=False)

    def _names(self) -> set[str]:
        return set(self._tables) | set(self._on_disk)

    def docs(self, table: str, shards: Iterable[str] | None = None) -> Iterator[dict]:
        names = sorted(self._names()) if shards is None else list(shards)
        for s in names:
            yield from self._table(s, table).values()

    def has_table(self, shard: str, table: str) -> bool:
        return table in self._tables.get(shard, {}) or table in self._on_disk.get(shard, ())

    def read_passing(self, shard: str, table: str) -> Iterator[dict]:
        """A week table's documents one by one, as Store.read_passing gives them: from the copy,
        or streamed from its file and none kept, so a walk over a district's weeks holds a few
        documents, not the weeks."""
        if table in self._left_out:
            raise KeyError(f"table {table!r} is not in this snapshot of the store")
        docs = self._tables.get(shard, {}).get(table)
        if docs is None:
            docs = self._read.get((shard, table))
        if docs is not None:
            yield from docs.values()
        elif table in self._on_disk.get(shard, ()):
            yield from self._stream(shard, table)

    def _stream(self, shard: str, table: str) -> Iterator[dict]:
        """A week table the Store had not read, document by document (bot.store_pg: the database)."""
        return stream_week_table(self._db_dir / shard, table)

    def docs_by(self, table: str, field: str, value: Any, shards: Iterable[str]) -> list[dict]:
        return [d for d in self.docs(table, shards) if d.get(field) == value]

    def find(self, table: str, pred, shards: Iterable[str] | None = None) -> list[dict]:
        return [d for d in self.docs(table, shards) if pred(d)]

    def get(self, table: str, key: str, deep: bool = True) -> dict | None:
        # Long-lived tables live in main: look there first, as nearly every get is for them.
        for s in [MAIN, *sorted(self._names() - {MAIN})]:
            if not deep and table not in self._tables.get(s, {}) and (s, table) not in self._read:
                continue
            doc = self._table(s, table).get(key)
            if doc is not None:
                return doc
        return None

    def shard_of(self, table: str, key: str) -> str | None:
        for s in sorted(self._names()):
            if key in self._table(s, table):
                return s
        return None

    def shards(self) -> list[str]:
        return sorted(self._names() - {MAIN})
