"""The PostgreSQL store's cold tables (raw messages and their done marks), in the `messages` table.

The same questions as bot.store_cold answers from its files (was this MsgId seen in a week, which
acknowledged messages were never handled), asked of the database instead: the rows are inserted
by the Store's own transaction (bot.store_pg), so nothing waits to be appended, and memory holds
only the id sets of the weeks asked about.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from bot.journal import loads
from bot.store_cold import ColdTables


class PgCold(ColdTables):
    def __init__(self, db_dir: Path, query: Callable[..., list]):
        super().__init__(db_dir)
        self._query = query  # (sql, *args) -> rows, synchronously (bot.pg_bridge)

    def _disk_docs(self, shard: str, table: str) -> dict[str, dict]:
        rows = self._query("SELECT id, doc::text FROM messages WHERE tbl = $1 AND shard = $2 ORDER BY received, id",
                           table, shard)
        return {r[0]: loads(r[1]) for r in rows}

    def _disk_ids(self, shard: str, table: str) -> set[str]:
        return {r[0] for r in self._query("SELECT id FROM messages WHERE tbl = $1 AND shard = $2", table, shard)}

    def put(self, shard: str, table: str, doc: dict) -> None:
        # Committed already: only the id set of a week asked about is kept current.
        ids = self._ids.get((shard, table))
        if ids is not None:
            ids.add(doc["id"])

    def get(self, shard: str, table: str, key: str) -> dict | None:
        rows = self._query("SELECT doc::text FROM messages WHERE tbl = $1 AND id = $2 AND shard = $3",
                           table, key, shard)
        return loads(rows[0][0]) if rows else None

    def unhandled(self, shard: str) -> set[str]:
        # Asked of the database at every start: the file store's kept list (bot.store_open) is
        # checked against its logs' sizes, which a database does not have, so it would be
        # trusted while stale and miss the messages acknowledged after it was written.
        rows = self._query("SELECT i.id FROM messages i WHERE i.tbl = 'inbox' AND i.shard = $1 AND NOT EXISTS "
                           "(SELECT 1 FROM messages d WHERE d.tbl = 'inbox_done' AND d.shard = $1 AND d.id = i.id)",
                           shard)
        return {r[0] for r in rows}

    def shard_of(self, table: str, key: str) -> str | None:
        rows = self._query("SELECT shard FROM messages WHERE tbl = $1 AND id = $2", table, key)
        return rows[0][0] if rows else None
