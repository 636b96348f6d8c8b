"""The PostgreSQL part of bench_photo_dup.py: the same photos in the fingerprint table.

Measured against a baseline in the same run: the window read at start from photo_prints against
the check-in documents it was read from before; a check through the table (lock, catch-up,
search, insert, COMMIT) against the in-memory search and add alone.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from types import SimpleNamespace
from typing import Sequence

from bot.journal import dumps
from bot.pg_bridge import PgBridge
from bot.pg_schema import ensure_partition, migrate
from bot.photos import duplicates
from bot.photos.hashing import hex64
from bot.photos import pg_fingerprints
from bot.photos.pg_fingerprints import claim, load_window
from bot.store_pg import fetch_table

from tests.support.postgres import PgServer

WEEK = "2026-W48"
DISTANCE = 6


def _ms(xs: Sequence[float]) -> str:
    xs = sorted(xs)
    return (f"median {statistics.median(xs) * 1e3:7.3f} ms   p95 {xs[int(0.95 * (len(xs) - 1))] * 1e3:7.3f} ms   "
            f"max {xs[-1] * 1e3:7.3f} ms")


async def _fill(conn, entries) -> None:
    """The photos as check-in documents, then their fingerprints by the migration's own function."""
    await ensure_partition(conn, WEEK)
    rows = [(WEEK, "checkins", key, dumps({
        "id": key, "msgid": f"m{key}", "userid": f"u{i % 2400}", "name": f"网格员{i % 2400}", "grid": "g1",
        "date": "2026-11-25", "time": t, "counted": True, "phash": hex64(hs[0]),
        "phash_crops": [hex64(h) for h in hs[1:]]}).decode()) for i, (key, t, hs) in enumerate(entries)]
    for start in range(0, len(rows), 20_000):
        await conn.copy_records_to_table("docs", records=rows[start:start + 20_000],
                                         columns=["shard", "tbl", "id", "doc"])
    await conn.execute("INSERT INTO shard_tables VALUES ($1, 'checkins') ON CONFLICT DO NOTHING", WEEK)


def measure_postgres(entries, queries, found, memory_took: Sequence[float], checks: int) -> None:
    server = PgServer.start(durable=True)
    bridge = PgBridge(server.dsn)
    try:
        bridge.run(migrate)
        t = time.perf_counter()
        bridge.run(lambda c: _fill(c, entries))
        filled = time.perf_counter() - t
        t = time.perf_counter()
        n = bridge.run(lambda c: c.fetchval("SELECT photo_prints_from_docs(NULL)"))
        backfill = time.perf_counter() - t
        bridge.run(lambda c: c.execute("VACUUM ANALYZE"))
        size = bridge.run(lambda c: c.fetchval("SELECT pg_total_relation_size('photo_prints')"))
        print(f"\nPostgreSQL: {len(entries):,} check-in documents copied in {filled:.1f} s; their fingerprints "
              f"into photo_prints ({n:,} rows, {size / 2**20:.0f} MiB with indexes) in {backfill:.1f} s")

        store = SimpleNamespace(_open=lambda: bridge)
        t = time.perf_counter()
        docs = bridge.run(lambda c: fetch_table(c, WEEK, "checkins"))
        old = duplicates.build_index(docs.values(), 0.0)
        before = time.perf_counter() - t
        del docs, old
        t = time.perf_counter()
        index = load_window(store, 0.0)
        after = time.perf_counter() - t
        print(f"  the window read at start: from check-in documents (before) {before:.2f} s; "
              f"from photo_prints {after:.2f} s ({before / after:.1f}× faster)")

        picked = [i % len(queries) for i in range(checks)]
        took: dict[str, list[float]] = {"on": [], "off": []}
        agree = 0

        async def run() -> None:
            nonlocal agree
            for n, i in enumerate(picked):
                # Alternately: COMMIT waiting for the WAL's flush (baseline) and not (the bot's).
                wait = pg_fingerprints.COMMIT_WAIT = ("on", "off")[n % 2]
                t0 = time.perf_counter()
                got = await claim(store, index, key=f"q{n}", checkin=f"Q{n}", userid="lisi", name="李四",
                                  at=2e9 + n, hashes=queries[i], distance=DISTANCE, since=0.0)
                took[wait].append(time.perf_counter() - t0)
                want = found[i]
                agree += (got.match and got.match.key) == (want and want.key) or n >= len(queries)
        try:
            asyncio.run(run())
        finally:
            pg_fingerprints.COMMIT_WAIT = "off"
        print(f"  a check through the table ({checks} checks: lock, others' new rows, search, insert, COMMIT):")
        print(f"    COMMIT not waiting for the flush (the bot): {_ms(took['off'])}")
        print(f"    COMMIT waiting for the flush (baseline):    {_ms(took['on'])}")
        print(f"  the same search in memory alone (baseline, the file store's check): {_ms(memory_took)}")
        print(f"  verdicts equal to the index's on {agree}/{checks}")
        for workers in (1, 4):
            rate = _together(server.dsn, queries, workers, max(50, checks // 4))
            print(f"  {workers} worker(s) checking at once, one lock for the whole deployment: {rate:,.0f} checks a second")
        sql_took = bridge.run(lambda c: _sql_probe(c, entries, queries[: min(100, len(queries))], found))
        print(f"  not chosen: the same multi-index probe in SQL (a row per hash, an index per band), "
              f"{len(sql_took)} searches: {_ms(sql_took)}")
    finally:
        bridge.close()
        server.stop()


def _together(dsn: str, queries, workers: int, each: int) -> float:
    """Checks a second when `workers` processes' stores (each its own pool and index) check at once."""
    bridges = [PgBridge(dsn) for _ in range(workers)]
    try:
        stores = [SimpleNamespace(_open=lambda b=b: b) for b in bridges]
        indexes = [load_window(st, 0.0) for st in stores]

        async def one(w: int) -> None:
            for n in range(each):
                await claim(stores[w], indexes[w], key=f"w{workers}-{w}-{n}", checkin=f"W{w}-{n}", userid="wangwu",
                            name="王五", at=3e9 + n, hashes=queries[(w * each + n) % len(queries)],
                            distance=DISTANCE, since=0.0)

        async def run() -> float:
            t0 = time.perf_counter()
            await asyncio.gather(*(one(w) for w in range(workers)))
            return time.perf_counter() - t0
        return workers * each / asyncio.run(run())
    finally:
        for b in bridges:
            b.close()


def _bands(h: int) -> list[int]:
    return [(h >> (16 * j)) & 0xFFFF for j in range(4)]


def _probes(h: int) -> list[list[int]]:
    """Per band: the values within one bit (distance 6 // 4 bands) of h's."""
    return [[v] + [v ^ (1 << b) for b in range(16)] for v in _bands(h)]


async def _sql_probe(conn, entries, queries, found) -> list[float]:
    """The search done by the server instead, to show what it would cost under the one lock."""
    from bot.photos.hashing import match_distance
    from bot.photos.pg_fingerprints import signed
    await conn.execute("CREATE TABLE photo_hashes (checkin text, whole boolean, h bigint, "
                       "b0 int, b1 int, b2 int, b3 int)")
    rows = [(key, n == 0, signed(h), *_bands(h)) for key, _t, hs in entries for n, h in enumerate(hs)]
    await conn.copy_records_to_table("photo_hashes", records=rows)
    for j in range(4):
        await conn.execute(f"CREATE INDEX ON photo_hashes (b{j})")
    await conn.execute("VACUUM ANALYZE photo_hashes")
    hashes_of = {key: hs for key, _t, hs in entries}
    times = {key: t for key, t, _hs in entries}
    took = []
    for q, want in zip(queries, found):
        t0 = time.perf_counter()
        whole = _probes(q[0])
        crops = [_probes(h) for h in q[1:]]
        near = " OR ".join(f"b{j} = ANY(${j + 1}::int[])" for j in range(4))
        crop_near = " OR ".join(f"b{j} = ANY(${j + 6}::int[])" for j in range(4))
        got = await conn.fetch(
            f"SELECT DISTINCT checkin FROM photo_hashes WHERE ({near}) "
            f"AND bit_count(($5::bigint # h)::bit(64)) <= {DISTANCE} "
            f"UNION SELECT checkin FROM photo_hashes WHERE whole AND ({crop_near}) "
            f"AND EXISTS (SELECT 1 FROM unnest($10::bigint[]) q WHERE bit_count((q # h)::bit(64)) <= {DISTANCE})",
            *whole, signed(q[0]), *[sum((c[j] for c in crops), []) for j in range(4)], [signed(h) for h in q[1:]])
        hits = [(times[r[0]], r[0]) for r in got if match_distance(q, hashes_of[r[0]], DISTANCE) is not None]
        took.append(time.perf_counter() - t0)
        assert (min(hits)[1] if hits else None) == (want and want.key)
    await conn.execute("DROP TABLE photo_hashes")
    return took
