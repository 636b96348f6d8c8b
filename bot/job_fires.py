"""Job fires claimed by the file store: one process (the data lock refuses a second), so a claim
lives in memory and only keeps a fire from running twice in this process (the scheduler's and
the catch-up's of the same time). A restart's catch-up reads the last runs in the `jobs` table.
The same methods on PostgreSQL (bot.pg_jobs) make several processes agree.
"""

from __future__ import annotations

from datetime import datetime, timedelta

FORGET_AFTER = timedelta(days=2)  # older fires are never claimed again (the catch-up stops at an hour)


class LocalFires:
    _fires: dict[tuple[str, datetime], bool]  # (schedule, fire time) → finished

    async def claim_fire(self, schedule: str, at: datetime, job: str, holder: str, stale_after: float) -> bool:
        fires = self.__dict__.setdefault("_fires", {})
        if (schedule, at) in fires:
            return False
        for key in [k for k in fires if k[1] < at - FORGET_AFTER]:
            del fires[key]
        fires[(schedule, at)] = False
        return True

    async def heartbeat_fire(self, schedule: str, at: datetime, holder: str) -> bool:
        return True

    async def finish_fire(self, schedule: str, at: datetime, holder: str, ok: bool) -> bool:
        self.__dict__.setdefault("_fires", {})[(schedule, at)] = True
        return True

    async def stale_fires(self, stale_after: float) -> list[tuple[str, datetime, str]]:
        return []  # a dead holder here is a dead bot: its restart catches up
