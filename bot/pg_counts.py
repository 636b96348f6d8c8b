"""What `gridbot stats` counts in a week's table (bot.week_counts), kept by PostgreSQL.

The table `week_counts` (bot/migrations/0060_counts.sql) holds rows whose sum, per week and
table, is what count_reports and count_checkins give for the documents there: the transaction
that writes documents adds a row of the difference it made (their shares, less those of the
versions replaced or moved away), so a week's counts are a sum over a few rows, not a scan of its
documents. Folded hourly into one row per (week, table, grid).
"""

from __future__ import annotations

import asyncpg

FIELDS = {
    "reports": ("reports", "reports_counted", "items"),
    "checkins": ("checkins", "duplicates", "flagged_checkins"),
}


async def _sums(conn: asyncpg.Connection, source: str, week: str, table: str) -> dict[str, int]:
    sums = ", ".join(f"coalesce(sum({f}), 0) AS {f}" for f in FIELDS[table])
    row = await conn.fetchrow(f"SELECT {sums} FROM {source} WHERE shard = $1 AND tbl = $2", week, table)
    return {k: int(v) for k, v in row.items()}


async def week_counts(conn: asyncpg.Connection, week: str, table: str) -> dict[str, int]:
    return await _sums(conn, "week_counts", week, table)


async def recount(conn: asyncpg.Connection, week: str, table: str) -> dict[str, int]:
    """The same numbers counted from the week's documents (a check of the table)."""
    return await _sums(conn, "(SELECT d.shard, d.tbl, c.* FROM docs AS d, gridbot_doc_counts(d.tbl, d.doc::jsonb) AS c) "
                             "AS counted", week, table)


async def fold(conn: asyncpg.Connection) -> None:
    """The rows added by each write summed into one per (week, table, grid)."""
    await conn.execute("SELECT gridbot_fold_counts()")
