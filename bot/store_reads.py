"""The Store's reading side: documents by id, by shard, by indexed field, and snapshots.

Split from bot.store (loading, writing, checkpoints) to keep each readable; the Store is one
class, these are its methods. Cold tables (raw messages, done marks) are read from their files
(bot.store_cold); the rest from memory, old shards loaded on first use.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

from bot.store_cold import COLD
from bot.store_main import stream_week_table
from bot.store_view import StoreView

MAIN = "main"
# Raw messages and their done marks: never read by the documents built from a snapshot.
UNSNAPPED = COLD


class StoreReads:
    def ensure(self, shard: str, table: str) -> None:
        """Read a shard's table from disk if it is there and not read yet."""
        if (shard, table) not in self._loaded and table in self._files.get(shard, ()):
            self._ensure(shard, table)

    def has_table(self, shard: str, table: str) -> bool:
        """Whether the shard holds the table, in memory or on disk (without reading it)."""
        return table in self._files.get(shard, ()) or table in self._shards.get(shard, {})

    def _locate(self, table: str, key: str) -> str | None:
        # Asked per person by the daily jobs (their leave): only the shards holding the table.
        for shard in self._holding.get(table, ()):
            if key in self._shards[shard][table]:
                return shard
        return None

    def held(self, shard: str, table: str) -> bool:
        """Whether the shard's table is in memory (read, or changed by the journal's tail)."""
        return (shard, table) in self._loaded

    def read_passing(self, shard: str, table: str) -> Iterator[dict]:
        """A week shard's documents streamed from disk for one look, none kept: how a command
        reads many weeks one after the other in the memory of a few documents."""
        if self.held(shard, table):
            yield from list(self._shards[shard][table].values())
            return
        if table in COLD or shard == MAIN or table not in self._files.get(shard, ()):
            raise KeyError(f"{shard}/{table}: not a week table of the store")
        yield from self._stream_week(shard, table)

    def _stream_week(self, shard: str, table: str) -> Iterator[dict]:
        """A week table not in memory, document by document (bot.store_pg: from the database)."""
        return stream_week_table(self.db_dir / shard, table)

    # --- reading -------------------------------------------------------------------
    def get(self, table: str, key: str, deep: bool = True) -> dict | None:
        """A document by id; `deep` also reads old shards not yet loaded (slow the first time)."""
        if table in COLD:
            shard = self.shard_of(table, key, deep)
            return self._cold.get(shard, table, key) if shard else None
        shard = self._locate(table, key)
        if shard is None and deep and self._unloaded.get(table):
            for s in sorted(self._unloaded[table]):
                self._ensure(s, table)
            shard = self._locate(table, key)
        return self._shards[shard][table][key] if shard else None

    def shard_of(self, table: str, key: str, deep: bool = False) -> str | None:
        if table in COLD:
            asked = self._cold.asked(table)
            more = [s for s in sorted(self._files) if table in self._files[s] and s not in asked] if deep else []
            return next((s for s in asked + more if key in self._cold.ids(s, table)), None)
        return self._locate(table, key)

    def has(self, table: str, key: str, shard: str) -> bool:
        """Whether the shard holds a document with this id (for a cold table, from its ids,
        read once per shard and kept)."""
        if table in COLD:
            return key in self._cold.ids(shard, table)
        self.ensure(shard, table)
        return key in self._shards.get(shard, {}).get(table, {})

    def ids(self, table: str, shards: Iterable[str]) -> set[str]:
        """The ids of a table's documents in these shards, without keeping cold ones read for it."""
        if table in COLD:
            return set().union(*(self._cold.ids(s, table, keep=False) for s in shards))
        return {d["id"] for d in self.docs(table, shards)}

    def unhandled(self, shard: str) -> set[str]:
        """Ids of the shard's raw messages (inbox) with no done mark (inbox_done)."""
        return self._cold.unhandled(shard)

    def docs(self, table: str, shards: Iterable[str] | None = None) -> Iterator[dict]:
        """Documents of a table in the given shards (every shard, old ones loaded, when None)."""
        if table in COLD:
            names = sorted(set(self._files) | set(self._cold.asked(table))) if shards is None else list(shards)
            for s in names:
                yield from list(self._cold.docs(s, table))
            return
        names = sorted(set(self._shards) | set(self._files)) if shards is None else list(shards)
        for s in names:
            if (s, table) in self._loaded or table in self._files.get(s, ()):
                yield from list(self._ensure(s, table).values())

    def docs_by(self, table: str, field: str, value: Any, shards: Iterable[str]) -> list[dict]:
        """Documents whose indexed `field` equals `value`, in the given shards."""
        index = self._index[(table, field)]
        out = []
        for s in shards:
            if (s, table) not in self._loaded and table in self._files.get(s, ()):
                self._ensure(s, table)
            docs = self._shards.get(s, {}).get(table, {})
            out.extend(docs[k] for k in index.get(s, {}).get(value, ()) if k in docs)
        return out

    def find(self, table: str, pred: Callable[[dict], bool], shards: Iterable[str] | None = None) -> list[dict]:
        return [d for d in self.docs(table, shards) if pred(d)]

    def snapshot(self, shards: Iterable[str] | None = None) -> StoreView:
        """A read-only copy of these shards (all when None; main always) for a thread to read:
        the tables' dicts are copied, their documents shared. The inbox tables are left out: no
        document is built from them, and they are the biggest."""
        names = set(self._shards) | set(self._files) if shards is None else {*shards, MAIN}
        tables = {s: {t: dict(docs) for t, docs in self._shards.get(s, {}).items()
                      if (s, t) in self._loaded and t not in UNSNAPPED} for s in names}
        on_disk = {s: {t for t in self._files.get(s, ()) if (s, t) not in self._loaded and t not in UNSNAPPED}
                   for s in names}
        return self._view(tables, on_disk)

    def _view(self, tables: dict, unread: dict) -> StoreView:
        """The snapshot over these copied tables, reading the `unread` ones where the Store keeps
        them (bot.store_pg: the database)."""
        return StoreView(self.db_dir, tables, unread, UNSNAPPED)

    def shards(self) -> list[str]:
        return sorted((set(self._shards) | set(self._files) | {s for s, _ in self._cold.fresh}) - {MAIN})

    def stats(self) -> dict[str, Any]:
        return {
            "shards": len(self._shards),
            "documents": sum(len(d) for s in self._shards.values() for d in s.values()),
            "journal_seq": self.journal.seq if self.journal else self._last_seq,
        }
