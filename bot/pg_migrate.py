"""`gridbot migrate --to postgres`: a TinyDB data folder copied into PostgreSQL, resumable, verified.

The folder is read through the file store itself (read-only, with its journal's tail), one shard
table at a time: the main tables, each week's tables, and the raw messages (inbox, inbox_done).
Each (shard, table) is copied in one transaction that also records it in `migrated`: a run cut
short (kill -9, a lost connection) leaves every pair either whole or absent, and the next run
skips those recorded and copies the rest, doubling nothing. At the end every pair is counted on
both sides; a difference is printed and the command fails. The weeks' counts (bot.pg_counts) are
kept by the copy itself (the documents' triggers), then folded. Sequences are then set past the
highest R/C/P number copied, so the bot's next numbers follow on.

The bot must be stopped meanwhile: the data folder's lock is taken, so a running bot is named
rather than copied half-way.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Iterable, TextIO

import asyncpg

from bot import data_lock
from bot.checkin_digest import TABLE as CHECKINS
from bot.photos.pg_fingerprints import fingerprints_of_week
from bot.pg_bridge import PgBridge
from bot.pg_counts import fold
from bot.pg_schema import ensure_partition, ensure_sequence, migrate
from bot.store import Store
from bot.store_build import ID_NUMBER
from bot.store_cold import COLD
from bot.store_reads import MAIN
from bot.journal import dumps

BATCH = 20_000  # rows per COPY: a district's week of reports is half a million


def _pairs(store: Store) -> list[tuple[str, str]]:
    """Every (shard, table) of the folder, main first, then the weeks in order."""
    tables = {s: set(ts) for s, ts in store._files.items()}
    for s, t in store._loaded:
        tables.setdefault(s, set()).add(t)
    for s, t in store._cold.fresh:
        tables.setdefault(s, set()).add(t)
    return [(s, t) for s in sorted(tables, key=lambda s: (s != MAIN, s)) for t in sorted(tables[s])]


def _docs(store: Store, shard: str, table: str) -> Iterable[dict]:
    if table in COLD or shard == MAIN or store.held(shard, table):
        return store.docs(table, [shard])
    return store.read_passing(shard, table)  # one week at a time, not kept


async def _copy(conn: asyncpg.Connection, shard: str, table: str, docs: Iterable[dict],
                top: dict[str, int]) -> int:
    n = 0
    async with conn.transaction():
        cold = table in COLD
        if cold:
            await conn.execute("CREATE TEMP TABLE IF NOT EXISTS stage (tbl text, id text, shard text, doc json) "
                               "ON COMMIT DELETE ROWS")
        batch: list[tuple] = []

        async def flush() -> None:
            if not batch:
                return
            if cold:
                await conn.copy_records_to_table("stage", records=batch, columns=["tbl", "id", "shard", "doc"])
            else:
                await conn.copy_records_to_table("docs", records=batch, columns=["shard", "tbl", "id", "doc"])
            batch.clear()

        for doc in docs:
            key = doc["id"]
            text = dumps(doc).decode()
            batch.append((table, key, shard, text) if cold else (shard, table, key, text))
            m = ID_NUMBER.match(key)
            if m and not cold and int(m.group(2)) > top.get(m.group(1), 0):
                top[m.group(1)] = int(m.group(2))
            n += 1
            if len(batch) >= BATCH:
                await flush()
        await flush()
        if cold:
            await conn.execute("INSERT INTO messages (tbl, id, shard, doc) SELECT tbl, id, shard, doc FROM stage "
                               "ON CONFLICT (tbl, id) DO NOTHING")
        await conn.execute("INSERT INTO shard_tables (shard, tbl) VALUES ($1, $2) ON CONFLICT DO NOTHING", shard, table)
        if table == CHECKINS:  # the duplicate-photo search reads fingerprints from their own table
            await fingerprints_of_week(conn, shard)
        await conn.execute("INSERT INTO migrated (shard, tbl, rows) VALUES ($1, $2, $3)", shard, table, n)
    return n


async def _count(conn: asyncpg.Connection, shard: str, table: str) -> int:
    if table in COLD:
        return await conn.fetchval("SELECT count(*) FROM messages WHERE tbl = $1 AND shard = $2", table, shard)
    return await conn.fetchval("SELECT count(*) FROM docs WHERE shard = $1 AND tbl = $2", shard, table)


async def _advance(conn: asyncpg.Connection, top: dict[str, int]) -> None:
    for prefix, n in top.items():
        name = await ensure_sequence(conn, prefix)
        # Nothing else runs (the data folder is locked): setval is safe here, unlike at run time.
        await conn.execute(f"SELECT setval('{name}', greatest($1::bigint, "
                           f"(SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {name})))", n)


def migrate_to_postgres(data_dir: Path, dsn: str, out: TextIO = sys.stdout) -> int:
    """Copy, then verify; returns the exit code (0 when every count matches)."""
    data_lock.acquire(data_dir)
    try:
        return _migrate(data_dir, dsn, out)
    finally:
        data_lock.release(data_dir)


def _migrate(data_dir: Path, dsn: str, out: TextIO) -> int:
    started = time.monotonic()
    source = Store(data_dir, readonly=True)
    source.load(recent_weeks=0)
    pairs = _pairs(source)
    bridge = PgBridge(dsn, max_size=2)
    try:
        bridge.run(migrate)
        done = {(r[0], r[1]): r[2] for r in bridge.run(lambda c: c.fetch("SELECT shard, tbl, rows FROM migrated"))}
        top = dict(source._counters)
        print(f"数据目录 {data_dir}:{len(pairs)} 个表(按周分片),其中 {len(done)} 个上次已迁移", file=out)
        expected: dict[tuple[str, str], int] = {}
        for shard, table in pairs:
            if (shard, table) in done:
                expected[(shard, table)] = done[(shard, table)]
                continue
            t0 = time.monotonic()
            bridge.run(lambda c, s=shard: ensure_partition(c, s))
            docs = _docs(source, shard, table)
            n = bridge.run(lambda c, s=shard, t=table, d=docs: _copy(c, s, t, d, top))
            expected[(shard, table)] = n
            print(f"  已迁移 {shard}/{table}:{n} 条({time.monotonic() - t0:.1f} 秒)", file=out)
        for shard, table in pairs:
            if (shard, table) in done:  # numbers of the pairs copied by an earlier run
                for key in source.ids(table, [shard]) if table not in COLD else ():
                    m = ID_NUMBER.match(key)
                    if m and int(m.group(2)) > top.get(m.group(1), 0):
                        top[m.group(1)] = int(m.group(2))
        bridge.run(lambda c: _advance(c, top))
        # Each COPY batch added a row of counts per grid it held (bot.pg_counts): a district's copy
        # leaves some 200,000; summed to one per week, table and grid before the bot reads them.
        bridge.run(fold)
        # COPY leaves the planner without statistics until autovacuum comes by, a minute or more
        # later: a bot started at once planned its start-up question (which messages were never
        # handled) as a nested loop over the week's messages, 86 s for 50,000 of them.
        bridge.run(lambda c: c.execute("ANALYZE docs, messages"))
        bad = []
        for (shard, table), n in expected.items():
            got = bridge.run(lambda c, s=shard, t=table: _count(c, s, t))
            if got != n:
                bad.append(f"  {shard}/{table}:数据目录 {n} 条,数据库 {got} 条")
        total = sum(expected.values())
        if bad:
            print(f"核对不一致({len(bad)} 个表):", file=out)
            print("\n".join(bad), file=out)
            return 1
        print(f"核对完成:{len(expected)} 个表共 {total} 条,条数全部一致;"
              f"用时 {time.monotonic() - started:.1f} 秒", file=out)
        return 0
    finally:
        bridge.close()
