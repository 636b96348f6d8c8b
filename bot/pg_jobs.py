"""Job fires claimed in PostgreSQL: several bot processes on one database run each fire once.

A fire is (schedule, fire time). Claiming it inserts its row in `job_fires` (migration 0010);
ON CONFLICT the row is taken over only if it is unfinished and its heartbeat older than
`stale_after` seconds (its holder died), so of several processes claiming at once exactly one
gets it, and a finished fire is never claimed again. Heartbeats and staleness use the server's
clock (now()), never the workers': machines whose clocks drift still agree on who is dead.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

KEEP_DAYS = 30  # finished claims older than this are deleted by the sweep: nothing asks for them

_CLAIM = """
INSERT INTO job_fires (schedule, fire_at, job, holder) VALUES ($1, $2, $3, $4)
ON CONFLICT (schedule, fire_at) DO UPDATE
   SET holder = EXCLUDED.holder, claimed_at = now(), heartbeat = now(),
       takeovers = job_fires.takeovers + 1
 WHERE job_fires.finished_at IS NULL
   AND job_fires.heartbeat < now() - make_interval(secs => $5)
RETURNING takeovers
"""


async def claim(conn: asyncpg.Connection, schedule: str, at: datetime, job: str, holder: str,
                stale_after: float) -> int | None:
    """Claim a fire; None if another process holds it (alive) or finished it, else how many
    times it was taken over before (0: a fresh claim)."""
    return await conn.fetchval(_CLAIM, schedule, at, job, holder, float(stale_after))


async def heartbeat(conn: asyncpg.Connection, schedule: str, at: datetime, holder: str) -> bool:
    """Refresh the holder's claim; False if it is no longer this holder's (taken over)."""
    done = await conn.execute("UPDATE job_fires SET heartbeat = now() WHERE schedule = $1 AND fire_at = $2 "
                              "AND holder = $3 AND finished_at IS NULL", schedule, at, holder)
    return done.endswith(" 1")


async def finish(conn: asyncpg.Connection, schedule: str, at: datetime, holder: str, ok: bool) -> bool:
    done = await conn.execute("UPDATE job_fires SET finished_at = now(), ok = $4 WHERE schedule = $1 "
                              "AND fire_at = $2 AND holder = $3 AND finished_at IS NULL",
                              schedule, at, holder, ok)
    return done.endswith(" 1")


async def stale(conn: asyncpg.Connection, stale_after: float) -> list[tuple[str, datetime, str]]:
    """Unfinished fires whose holder stopped heartbeating; also forgets old finished ones."""
    await conn.execute("DELETE FROM job_fires WHERE finished_at < now() - make_interval(days => $1)", KEEP_DAYS)
    rows = await conn.fetch("SELECT schedule, fire_at, job FROM job_fires WHERE finished_at IS NULL "
                            "AND heartbeat < now() - make_interval(secs => $1) ORDER BY fire_at",
                            float(stale_after))
    return [(r["schedule"], r["fire_at"], r["job"]) for r in rows]


class PgFires:
    """The PostgreSQL store's side of the fire claims (bot.job_fires has the file store's)."""

    async def claim_fire(self, schedule: str, at: datetime, job: str, holder: str, stale_after: float) -> bool:
        taken = await self._open().arun(lambda c: claim(c, schedule, at, job, holder, stale_after))
        return taken is not None

    async def heartbeat_fire(self, schedule: str, at: datetime, holder: str) -> bool:
        return await self._open().arun(lambda c: heartbeat(c, schedule, at, holder))

    async def finish_fire(self, schedule: str, at: datetime, holder: str, ok: bool) -> bool:
        return await self._open().arun(lambda c: finish(c, schedule, at, holder, ok))

    async def stale_fires(self, stale_after: float) -> list[tuple[str, datetime, str]]:
        return await self._open().arun(lambda c: stale(c, stale_after))
