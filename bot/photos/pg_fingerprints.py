"""Check-in photos' fingerprints in PostgreSQL (table photo_prints, bot/migrations/0050_photos.sql):
the duplicate search of every bot process covers the photos all of them took in.

Each process keeps the window's fingerprints in its PhotoIndex (bot.photos.duplicates), the same
in-memory multi-index the file store uses, as a cache of the table: the table is the record.
A check is one transaction under one advisory lock (the search covers everyone's photos, so no
narrower scope would do): read the rows the others added since this process last looked
(seq > index.seen), search the index, insert this photo's row with its verdict, COMMIT. Rows are
inserted only under the lock and committed before it is let go, so they commit in seq order and
"seq > the last seen" misses none. Two people sending the same photo to two workers at the same
moment: the second to take the lock finds the first's row and is flagged, as on one worker.

The search itself stays in memory: at a district's 1.5 million photos the index answers in about
a millisecond, where the same multi-index probe in SQL reads tens of thousands of index entries
per photo, all while holding the one lock every worker waits for.

A message checked before (a worker died between this COMMIT and storing the check-in, and the
message came back) finds its row by the message key and gets the same verdict and check-in id.
When the check-in's write is refused instead, the row is deleted again (forget): this process
rebuilds its index from the table; another process that read the row in the meantime keeps it
until its own index is rebuilt (at most REBUILD_AFTER, or a restart), a rare and narrow case.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import asyncpg
from loguru import logger

from bot.photos.duplicates import Match, PhotoIndex

PHOTO_LOCK = 0x67726964_0050  # pg_advisory_xact_lock key (bot.pg_schema's numbering)
PAGE = 50_000  # rows per query when the window is read at start
COMMIT_WAIT = "off"  # a check's COMMIT does not wait for the WAL's flush (see claim); the bench sets "on"
_BIT63 = 1 << 63
_MASK = (1 << 64) - 1
COLUMNS = "seq, checkin, at, name, hashes"


def signed(h: int) -> int:
    """A 64-bit hash as PostgreSQL's bigint holds it."""
    return h - (1 << 64) if h >= _BIT63 else h


def _entry(row: Any) -> tuple[str, float, list[int], str]:
    return row[1], float(row[2]), [h & _MASK for h in row[4]], row[3]


@dataclass(frozen=True)
class Claim:
    checkin: str  # the check-in's id: the one given now, or the one a first attempt was given
    match: Match | None


def load_window(store: Any, covers_from: float) -> PhotoIndex:
    """The fingerprints of photos sent from `covers_from` on, read page by page (a district's 90
    days are 1.5 million rows: no single result that size). Run it in a thread."""
    bridge = store._open()
    first, last = bridge.run(lambda c: c.fetchrow(
        "SELECT (SELECT coalesce(min(seq), 0) FROM photo_prints WHERE at >= $1), "
        "(SELECT coalesce(max(seq), 0) FROM photo_prints)", covers_from))

    def rows() -> Iterator[tuple[str, float, list[int], str]]:
        after = first - 1
        while True:
            page = bridge.run(lambda c: c.fetch(
                f"SELECT {COLUMNS} FROM photo_prints WHERE seq > $1 AND seq <= $2 AND at >= $3 "
                "ORDER BY seq LIMIT $4", after, last, covers_from, PAGE))
            if not page:
                return
            for r in page:
                yield _entry(r)
            after = page[-1][0]
    index = PhotoIndex()
    index.add_many(rows())
    index.covers_from = covers_from
    # Every row up to `last` was committed when it was read (rows commit in seq order): the
    # next check reads only those after it.
    index.seen = last
    return index


async def claim(store: Any, index: PhotoIndex, *, key: str, checkin: str, userid: str, name: str,
                at: float, hashes: Sequence[int], distance: int, since: float) -> Claim:
    """Search and record one photo, serialized with every other process's; see the module's doc."""

    async def run(conn: asyncpg.Connection) -> tuple[Claim, int | None]:
        async with conn.transaction():
            # The lock is let go at COMMIT: not waiting there for the WAL's flush keeps every
            # other worker's wait short. Nothing is lost by it: the WAL is flushed in order, so
            # by the time the check-in of this photo, or of a copy judged against it, is stored
            # (a synchronous commit after this one) this row is on disk too; a crash before
            # that loses the row with the check-in, and the message is checked again.
            # One round trip each, as every other worker waits meanwhile: the setting and the
            # lock; then the rows added since this process last looked and this message's own.
            await conn.execute(f"SET LOCAL synchronous_commit = {COMMIT_WAIT}; "
                               f"SELECT pg_advisory_xact_lock({PHOTO_LOCK})")
            own = None
            for r in await conn.fetch(f"SELECT {COLUMNS}, msgid = $2, dup_of, dup_distance, dup_at, dup_name "
                                      "FROM photo_prints WHERE seq > $1 OR msgid = $2 ORDER BY seq",
                                      index.seen, key):
                if r[5]:
                    own = r
                if r[0] > index.seen:
                    if r[2] >= index.covers_from:
                        index.add(*_entry(r))
                    index.seen = r[0]
            if own is not None:
                match = Match(own[6], own[7] or 0, own[8] or 0.0, own[9] or "") if own[6] else None
                return Claim(own[1], match), None
            match = index.search(hashes, distance, since)
            seq = await conn.fetchval(
                "INSERT INTO photo_prints (msgid, checkin, userid, name, at, hashes, dup_of, dup_distance, "
                "dup_at, dup_name) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING seq",
                key, checkin, userid, name, at, [signed(h) for h in hashes],
                match.key if match else None, match.distance if match else None,
                match.time if match else None, match.name if match else None)
        return Claim(checkin, match), seq

    try:
        got, seq = await store._open().arun(run)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as e:
        # As a refused write of the store: nothing was committed, the message is not counted.
        raise OSError(f"PostgreSQL refused the photo check: {type(e).__name__}: {e}") from e
    if seq is not None:  # committed: this photo is one the next check must find
        index.add(checkin, at, hashes, name)
        index.seen = seq
    return got


async def forget(store: Any, key: str) -> None:
    """Take back the fingerprint of a message whose check-in was not stored after all (the write
    was refused): sent again, the photo is not "a copy" of a check-in that does not exist."""
    try:
        await store._open().arun(lambda c: c.execute("DELETE FROM photo_prints WHERE msgid = $1", key))
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as e:
        logger.warning("fingerprint of {} kept although its check-in was not stored: {}", key, e)


async def fingerprints_of_week(conn: asyncpg.Connection, shard: str) -> int:
    """The fingerprints of a week's check-ins copied as documents (gridbot migrate --to postgres)."""
    return await conn.fetchval("SELECT photo_prints_from_docs($1)", shard)
