"""What `gridbot stats` counts in a week's table (bot.week_counts), counted by PostgreSQL.

The same numbers as count_reports and count_checkins, without reading a document into Python:
a week's partition is scanned by the server. Python's truthiness of a JSON value is spelled out
(`TRUTHY`), so a count here is the count there.
"""

from __future__ import annotations

import asyncpg


def _truthy(field: str) -> str:
    return (f"(doc->>'{field}' IS NOT NULL AND doc->>'{field}' NOT IN ('false', '0', '0.0', '', '[]', '{{}}'))")


def _array(field: str) -> str:
    return f"(CASE WHEN json_typeof(doc->'{field}') = 'array' THEN doc->'{field}' ELSE '[]'::json END)"


ACTIVE = "(doc->>'status' = 'active')"
SQL = {
    "reports": f"""
        SELECT count(*) FILTER (WHERE {ACTIVE}) AS reports,
               count(*) FILTER (WHERE {ACTIVE} AND NOT {_truthy('unconfirmed')}) AS reports_counted,
               coalesce(sum(json_array_length({_array('items')})) FILTER (WHERE {ACTIVE}), 0) AS items
        FROM docs WHERE shard = $1 AND tbl = 'reports'""",
    "checkins": f"""
        SELECT count(*) FILTER (WHERE {_truthy('counted')}) AS checkins,
               count(*) FILTER (WHERE EXISTS (SELECT 1 FROM json_array_elements_text({_array('flags')}) AS f
                                             WHERE f = 'duplicate')) AS duplicates,
               count(*) FILTER (WHERE NOT {_truthy('counted')}) AS flagged_checkins
        FROM docs WHERE shard = $1 AND tbl = 'checkins'""",
}


async def week_counts(conn: asyncpg.Connection, week: str, table: str) -> dict[str, int]:
    row = await conn.fetchrow(SQL[table], week)
    return {k: int(v) for k, v in row.items()}
