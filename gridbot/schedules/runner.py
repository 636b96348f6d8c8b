"""The scheduler: APScheduler 3 (AsyncIOScheduler) started and stopped with the app.

Jobs come from [[schedules]]; each runs through `run_job`, the one error path shared with
`gridbot jobs run`: a failing job is logged and reported to admins, the scheduler keeps going.
"""

from __future__ import annotations

from datetime import datetime
from typing import Awaitable, Callable

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from loguru import logger

from ..config import Config
from ..context import Bot
from ..crontab import cron_trigger

JobFn = Callable[[Bot, datetime], Awaitable[str | None]]
JOBS: dict[str, JobFn] = {}
MISFIRE_GRACE = 3600  # a job up to an hour late still runs (once: coalesced)


def job(name: str):
    def register(fn: JobFn) -> JobFn:
        JOBS[name] = fn
        return fn
    return register


def load_jobs() -> dict[str, JobFn]:
    from . import jobs  # noqa: F401  (registers the job functions)
    return JOBS


async def run_job(bot: Bot, schedule_name: str, job_name: str, at: datetime | None = None) -> str | None:
    """Run one job as if it were `at`; returns what it reports (or None)."""
    fn = load_jobs().get(job_name)
    if fn is None:
        logger.error("schedule {}: job {} is not available", schedule_name, job_name)
        return None
    at = at or bot.clock.now()
    try:
        result = await fn(bot, at)
    except Exception as e:
        logger.exception("job {} ({}) failed", schedule_name, job_name)
        for admin in bot.config.people_with_role("admin"):
            bot.transport.send_text(admin.userid, f"【网格助手】定时任务“{schedule_name}”运行失败:"
                                                  f"{type(e).__name__}。详情见日志。")
        return None
    try:
        await bot.store.put("jobs", {"id": f"run:{schedule_name}", "job": job_name,
                                     "last_run": at.isoformat(), "result": result})
    except RuntimeError:
        pass  # read-only store (gridbot jobs run from the command line)
    logger.info("job {} ({}) ran: {}", schedule_name, job_name, result)
    return result


def sync_schedules(scheduler: AsyncIOScheduler, bot: Bot, cfg: Config) -> None:
    """Add or replace jobs by stable id; remove those no longer configured (hot reload)."""
    wanted = set()
    for s in cfg.schedules:
        if not s.enabled:
            continue
        jid = f"schedule:{s.name}"
        wanted.add(jid)
        scheduler.add_job(run_job, cron_trigger(s.cron, cfg.tz), args=[bot, s.name, s.job], id=jid,
                          name=s.name, replace_existing=True, coalesce=True, max_instances=1,
                          misfire_grace_time=MISFIRE_GRACE)
    for j in scheduler.get_jobs():
        if j.id.startswith("schedule:") and j.id not in wanted:
            j.remove()


def attach_scheduler(app: web.Application, runtime) -> None:
    async def ctx(app: web.Application):
        bot = runtime.bot
        scheduler = AsyncIOScheduler(timezone=bot.config.tz)
        bot.extras["scheduler"] = scheduler
        sync_schedules(scheduler, bot, bot.config)
        scheduler.start()
        yield
        scheduler.shutdown(wait=False)
    app.cleanup_ctx.append(ctx)
