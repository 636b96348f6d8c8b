"""The PostgreSQL store's cold tables (raw messages and their done marks), in the `messages` table.

The same questions as bot.store_cold answers from its files: was this MsgId seen in a week, which
acknowledged messages were never handled. Nothing is held but the id sets of the weeks asked
about; the rows are inserted by the Store's own transaction (bot.store_pg), so `put` only keeps
those sets current.
"""

from __future__ import annotations

from typing import Callable, Iterable

from bot.journal import loads

Key = tuple[str, str]  # (shard, table)


class PgCold:
    def __init__(self, query: Callable[..., list]):
        self._query = query  # (sql, *args) -> rows, synchronously (bot.pg_bridge)
        self.fresh: dict[Key, dict[str, dict]] = {}  # never anything: rows are in the database
        self._ids: dict[Key, set[str]] = {}

    def put(self, shard: str, table: str, doc: dict) -> None:
        ids = self._ids.get((shard, table))
        if ids is not None:
            ids.add(doc["id"])

    def ids(self, shard: str, table: str, keep: bool = True) -> set[str]:
        known = self._ids.get((shard, table))
        if known is None:
            rows = self._query("SELECT id FROM messages WHERE tbl = $1 AND shard = $2", table, shard)
            known = {r[0] for r in rows}
            if keep:
                self._ids[(shard, table)] = known
        return known

    def asked(self, table: str) -> list[str]:
        return sorted({s for s, t in self._ids if t == table})

    def get(self, shard: str, table: str, key: str) -> dict | None:
        rows = self._query("SELECT doc::text FROM messages WHERE tbl = $1 AND id = $2 AND shard = $3",
                           table, key, shard)
        return loads(rows[0][0]) if rows else None

    def docs(self, shard: str, table: str) -> Iterable[dict]:
        rows = self._query("SELECT doc::text FROM messages WHERE tbl = $1 AND shard = $2 ORDER BY received, id",
                           table, shard)
        return [loads(r[0]) for r in rows]

    def shard_of(self, table: str, key: str) -> str | None:
        rows = self._query("SELECT shard FROM messages WHERE tbl = $1 AND id = $2", table, key)
        return rows[0][0] if rows else None

    def forget_before(self, week: str) -> None:
        for key in [k for k in self._ids if k[0] < week and k[0][:1].isdigit()]:
            del self._ids[key]

    def pending(self) -> dict[Key, list[dict]]:
        return {}
