"""A real `gridbot run` for the multi-worker job tests: `python -m tests.support.job_worker run
--config …`. The scheduler's limits are made seconds instead of a minute, so a worker killed
with -9 is seen dead quickly; with JOB_WORKER_HANG=<job>=<file> that job writes its fire time to
the file and then hangs, standing for a job still running when its worker dies."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from bot import scheduler
from bot.cli import main
from bot.features import all_jobs

STALE_AFTER = 3.0
HEARTBEAT_EVERY = 0.5
SWEEP_EVERY = 0.5


def hang(job_name: str, marker: Path) -> None:
    async def stuck(bot, when):
        marker.write_text(when.isoformat(), encoding="utf-8")
        await asyncio.Event().wait()
    all_jobs()[job_name] = stuck


if __name__ == "__main__":
    scheduler.STALE_AFTER, scheduler.HEARTBEAT_EVERY, scheduler.SWEEP_EVERY = STALE_AFTER, HEARTBEAT_EVERY, SWEEP_EVERY
    if os.environ.get("JOB_WORKER_HANG"):
        job, marker = os.environ["JOB_WORKER_HANG"].split("=", 1)
        hang(job, Path(marker))
    sys.exit(main(sys.argv[1:]))
