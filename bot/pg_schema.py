"""The PostgreSQL store's schema: versioned migrations applied at start, and partitions on demand.

A plain ordered list of SQL files (bot/migrations/NNNN_name.sql, shipped as package data) and a
`schema_version` table, not Alembic: the project has no SQLAlchemy, its schema is a handful of
tables, and an ordered list is all the bookkeeping it needs. They are applied under an advisory
lock, in one transaction, so several processes starting together apply each file once.
"""

from __future__ import annotations

import re
from pathlib import Path

import asyncpg

from bot.store_build import WEEK_SHARD

MIGRATIONS = Path(__file__).with_name("migrations")
_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
# pg_advisory_xact_lock keys: any fixed numbers, the same in every process of a deployment.
MIGRATION_LOCK = 0x67726964_0001
PARTITION_LOCK = 0x67726964_0002
SEQUENCE_LOCK = 0x67726964_0003


def migration_files(folder: Path = MIGRATIONS) -> list[tuple[int, Path]]:
    found = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := _FILE.match(p.name)))
    versions = [v for v, _ in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"{folder}: two migration files share a version number")
    return found


async def migrate(conn: asyncpg.Connection, folder: Path = MIGRATIONS) -> list[str]:
    """Apply the migrations not applied yet; returns the names of those applied now."""
    applied: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_version ("
                           "version int PRIMARY KEY, name text NOT NULL, "
                           "applied_at timestamptz NOT NULL DEFAULT now())")
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_version")}
        for version, path in migration_files(folder):
            if version in done:
                continue
            try:
                await conn.execute(path.read_text(encoding="utf-8"))
            except asyncpg.PostgresError as e:
                raise RuntimeError(f"{path}: {e}") from e
            await conn.execute("INSERT INTO schema_version (version, name) VALUES ($1, $2)", version, path.name)
            applied.append(path.name)
    return applied


def partition_name(shard: str) -> str | None:
    """The partition of a week shard (docs_2026_w48); None for the shards that have none of their
    own (main has one made by the first migration, anything else goes to the default)."""
    if not WEEK_SHARD.match(shard):
        return None
    return "docs_" + shard.lower().replace("-", "_")


async def ensure_partition(conn: asyncpg.Connection, shard: str) -> None:
    name = partition_name(shard)
    if name is None:
        return
    async with conn.transaction():
        # Two processes creating the same week at once: the second waits, then finds it there.
        await conn.execute("SELECT pg_advisory_xact_lock($1)", PARTITION_LOCK)
        if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", name):
            return
        # The shard is a checked week name (WEEK_SHARD): safe as a literal.
        await conn.execute(f"CREATE TABLE {name} PARTITION OF docs FOR VALUES IN ('{shard}')")


def sequence_name(prefix: str) -> str:
    if not re.fullmatch(r"[A-Za-z]{1,20}", prefix):
        raise ValueError(f"not an id prefix: {prefix!r}")
    return f"ids_{prefix.lower()}"


async def ensure_sequence(conn: asyncpg.Connection, prefix: str) -> str:
    name = sequence_name(prefix)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", SEQUENCE_LOCK)
        await conn.execute(f"CREATE SEQUENCE IF NOT EXISTS {name}")
    return name


async def next_number(conn: asyncpg.Connection, name: str, above: int) -> int:
    """The next number of a sequence, above `above` (the highest this process has seen in its
    documents). Never setval: nextval alone is atomic across processes, so numbers are skipped
    past `above` by taking them, and no two callers can ever get the same one."""
    n = await conn.fetchval(f"SELECT nextval('{name}')")
    if n <= above:
        n = await conn.fetchval(f"SELECT max(v) FROM (SELECT nextval('{name}') AS v "
                                "FROM generate_series(1, $1)) AS taken", above - n + 1)
    return n
