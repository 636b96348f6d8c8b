"""A real `gridbot run` for the multi-worker job tests: `python -m tests.support.job_worker run
--config …`. The scheduler's limits (and the shared outbox's lease, bot.pg_drain) are made seconds
instead of a minute, so a worker killed with -9 is seen dead quickly; with JOB_WORKER_HANG=<job>=<file>
that job writes its fire time to the file and then hangs, standing for a job still running when
its worker dies (with JOB_WORKER_HANG_AFTER=1 it first runs for real: what it sent is in the outbox).
JOB_WORKER_APP_PER_MINUTE=<n> lowers WeCom's per-person cap, so a test can reach it in seconds."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from bot import pg_drain, scheduler, transport
from bot.cli import main
from bot.features import all_jobs

STALE_AFTER = 3.0
HEARTBEAT_EVERY = 0.5
SWEEP_EVERY = 0.5


def hang(job_name: str, marker: Path, after_real: bool = False) -> None:
    real = all_jobs()[job_name]

    async def stuck(bot, when):
        if after_real:
            await real(bot, when)
            await bot.transport.kept()
        marker.write_text(when.isoformat(), encoding="utf-8")
        await asyncio.Event().wait()
    all_jobs()[job_name] = stuck


if __name__ == "__main__":
    scheduler.STALE_AFTER, scheduler.HEARTBEAT_EVERY, scheduler.SWEEP_EVERY = STALE_AFTER, HEARTBEAT_EVERY, SWEEP_EVERY
    if os.environ.get("JOB_WORKER_HANG"):
        job, marker = os.environ["JOB_WORKER_HANG"].split("=", 1)
        hang(job, Path(marker), after_real=bool(os.environ.get("JOB_WORKER_HANG_AFTER")))
    pg_drain.LEASE, pg_drain.RENEW_EVERY = STALE_AFTER, HEARTBEAT_EVERY
    if os.environ.get("JOB_WORKER_APP_PER_MINUTE"):
        transport.APP_PER_MINUTE = int(os.environ["JOB_WORKER_APP_PER_MINUTE"])
    sys.exit(main(sys.argv[1:]))
