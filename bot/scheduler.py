"""The scheduler: APScheduler 3 (AsyncIOScheduler) started and stopped with the app.

Jobs come from [[schedules]] and the features' job functions; each runs through `run_job`,
shared with `gridbot jobs run`: a failing job goes down the one error path (bot.errors) and
the scheduler keeps going.
Each schedule's last run is kept in the store (table "jobs", id "run:<name>") so a run missed
while the bot was down is caught up once at start if it is less than an hour late.

Every process of a deployment has its own APScheduler, so every fire (schedule, fire time) is
claimed in the store before it runs, the scheduler's and the catch-up's alike: on PostgreSQL
(bot.pg_jobs) the first process to claim it runs it and the others skip it; the holder
heartbeats while the job runs, and a fire whose holder stopped heartbeating for STALE_AFTER
seconds is taken over by whichever process sweeps first. The file store has one process and
claims in memory (bot.job_fires).
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
import weakref
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from loguru import logger

from bot.background import cancel_and_wait
from bot.config import Config
from bot.context import Bot
from bot.crontab import cron_trigger
from bot.errors import report_failure
from bot.features import all_jobs
from bot.outgoing import FIRE, FireParts

MISFIRE_GRACE = 3600  # a job up to an hour late still runs (once: coalesced)
JOB_ID_PREFIX = "schedule:"
ORIGIN_WAIT = 30.0  # seconds a catch-up run waits for the emulator to know its address
STALE_AFTER = 60.0  # seconds without a heartbeat after which a fire's holder counts as dead
HEARTBEAT_EVERY = 10.0  # well inside STALE_AFTER: a busy loop or a slow query is not a death
SWEEP_EVERY = 20.0  # how often each process looks for fires whose holder died
CLAIM_ATTEMPTS = 6  # a claim that fails is tried again HEARTBEAT_EVERY apart, about a minute in all
FINISH_ATTEMPTS = 30  # finishing retried (heartbeating meanwhile) for HEARTBEAT_EVERY × this


@dataclass
class JobOutcome:
    ok: bool
    result: str | None
    error: str | None = None


async def execute_job(bot: Bot, schedule_name: str, job_name: str, at: datetime | None = None) -> JobOutcome:
    """Run one job as if it were `at`; never raises (the shared error path)."""
    fn = all_jobs().get(job_name)
    if fn is None:
        logger.error("schedule {}: job {} is not available", schedule_name, job_name)
        return JobOutcome(False, None, f"没有名为 {job_name} 的任务")
    at = at or bot.clock.now()
    try:
        result = await fn(bot, at)
        outcome = JobOutcome(True, result)
    except Exception as e:
        report_failure(bot, f"job:{schedule_name}", e, f"定时任务“{schedule_name}”运行失败")
        outcome = JobOutcome(False, None, f"{type(e).__name__}: {e}")
    # A failed run is recorded too: catching it up at the next start would only fail again.
    try:
        await bot.store.put("jobs", {"id": f"run:{schedule_name}", "job": job_name,
                                     "last_run": at.isoformat(), "ok": outcome.ok,
                                     "result": outcome.result if outcome.ok else outcome.error})
    except RuntimeError:
        pass  # read-only store (gridbot jobs run from the command line)
    if outcome.ok:
        logger.info("job {} ({}) ran: {}", schedule_name, job_name, outcome.result)
    return outcome


async def run_job(bot: Bot, schedule_name: str, job_name: str, at: datetime | None = None) -> str | None:
    """Run one job as if it were `at`; returns what it reports (None if it failed)."""
    return (await execute_job(bot, schedule_name, job_name, at)).result


# --- one run per fire across processes ------------------------------------------------------

_HOLDERS: "weakref.WeakKeyDictionary[object, str]" = weakref.WeakKeyDictionary()


def holder_of(bot: Bot) -> str:
    """Who claims fires for this bot: host and pid say which worker to look at, the random part
    keeps two bots of one process (the tests' runtimes) apart."""
    holder = _HOLDERS.get(bot.store)
    if holder is None:
        holder = _HOLDERS[bot.store] = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    return holder


async def fire(bot: Bot, schedule_name: str, job_name: str, at: datetime,
               run_at: datetime | None = None) -> JobOutcome | None:
    """Run the fire (schedule_name, at) if this process can claim it, as if it were `run_at`
    (now if None); None if another process holds it or ran it already."""
    holder = holder_of(bot)
    claimed = await _claim(bot, schedule_name, at, job_name, holder)
    if not claimed:
        logger.info("schedule {} ({}) at {}: run by another worker", schedule_name, job_name, at.isoformat())
        return None
    lost = asyncio.Event()
    # The run's messages are keyed by the fire: a takeover's re-run does not send them again (bot.pg_outbox).
    keyed = FIRE.set(FireParts(schedule_name, int(at.timestamp())))
    try:
        run = asyncio.create_task(execute_job(bot, schedule_name, job_name, run_at), name=f"job:{schedule_name}")
    finally:
        FIRE.reset(keyed)
    beat = asyncio.create_task(_keep_claim(bot, schedule_name, at, holder, run, lost))
    try:
        try:
            outcome = await run
        except asyncio.CancelledError:
            if not lost.is_set():
                raise  # this process stopping: the claim stays open, another takes it over
            return None
        await _finish(bot, schedule_name, at, holder, outcome.ok)  # heartbeating until finished
        return outcome
    finally:
        beat.cancel()


async def _claim(bot: Bot, name: str, at: datetime, job_name: str, holder: str) -> bool:
    # The database away for a moment must not cost a weekly bulletin: tried again for about as
    # long as a holder may be silent, then said to the admins (the fire is not run).
    for attempt in range(CLAIM_ATTEMPTS):
        try:
            return await bot.store.claim_fire(name, at, job_name, holder, STALE_AFTER)
        except Exception as e:
            if attempt == CLAIM_ATTEMPTS - 1:
                report_failure(bot, f"job:{name}", e, f"定时任务“{name}”本次没有运行,登记运行时出错")
                return False
            logger.warning("schedule {} at {}: claiming the run failed ({}); trying again", name,
                           at.isoformat(), type(e).__name__)
            await asyncio.sleep(HEARTBEAT_EVERY)
    return False


async def _keep_claim(bot: Bot, name: str, at: datetime, holder: str, run: asyncio.Task,
                      lost: asyncio.Event) -> None:
    while True:
        await asyncio.sleep(HEARTBEAT_EVERY)
        try:
            mine = await bot.store.heartbeat_fire(name, at, holder)
        except Exception as e:  # the database away for a moment: the others cannot claim either
            logger.warning("schedule {} at {}: heartbeat failed ({}); trying again", name, at.isoformat(),
                           type(e).__name__)
            continue
        if not mine:
            # This process stalled longer than STALE_AFTER and another took the fire over:
            # stop, so the job does not run in two places at once.
            logger.error("schedule {} at {}: another worker took this run over; stopping it here",
                         name, at.isoformat())
            lost.set()
            run.cancel()
            return


async def _finish(bot: Bot, name: str, at: datetime, holder: str, ok: bool) -> None:
    # Until the claim is marked finished another process could take the fire over and run it
    # again, so a failure here is retried while the heartbeat goes on.
    for attempt in range(FINISH_ATTEMPTS):
        try:
            await bot.store.finish_fire(name, at, holder, ok)
            return
        except Exception as e:
            if attempt == FINISH_ATTEMPTS - 1:
                report_failure(bot, f"job:{name}", e, f"定时任务“{name}”已运行,但未能记下已完成,可能被再运行一次")
                return
            await asyncio.sleep(HEARTBEAT_EVERY)


async def take_over_stale(bot: Bot) -> list[str]:
    """Claim and run, as of their fire time, the fires whose holder stopped heartbeating (its
    process died mid-run); returns the names of those run here."""
    taken = []
    for name, at, job_name in await bot.store.stale_fires(STALE_AFTER):
        at = at.astimezone(bot.config.tz)
        logger.warning("schedule {} ({}) at {}: its worker stopped mid-run; taking it over",
                       name, job_name, at.isoformat())
        if await fire(bot, name, job_name, at, run_at=at) is not None:
            taken.append(name)
    return taken


async def _sweep_loop(bot: Bot) -> None:
    await _api_ready(bot, "takeover")
    while True:
        try:
            await take_over_stale(bot)
        except Exception as e:
            logger.warning("looking for stopped job runs failed ({}); trying again in {} s",
                           type(e).__name__, SWEEP_EVERY)
        await asyncio.sleep(SWEEP_EVERY)


def fire_time(cron: str, bot: Bot, now: datetime) -> datetime:
    """The fire APScheduler is running now: the cron's latest time not after now (a late run
    within the grace is still that fire), so every process names it alike."""
    trigger = cron_trigger(cron, bot.config.tz)
    latest = last_fire_between(trigger, now - timedelta(seconds=MISFIRE_GRACE), now + timedelta(seconds=1))
    return latest or now.replace(second=0, microsecond=0)  # run by hand (next_run_time moved)


async def run_scheduled(bot: Bot, schedule_name: str, job_name: str, cron: str) -> None:
    """What APScheduler calls at a cron time."""
    await fire(bot, schedule_name, job_name, fire_time(cron, bot, bot.clock.now()))


def job_id(schedule_name: str) -> str:
    return JOB_ID_PREFIX + schedule_name


def sync_schedules(scheduler: AsyncIOScheduler, bot: Bot, cfg: Config) -> None:
    """Add or replace jobs by stable id; remove those no longer configured (hot reload)."""
    wanted = set()
    for s in cfg.schedules:
        if not s.enabled:
            continue
        jid = job_id(s.name)
        wanted.add(jid)
        scheduler.add_job(run_scheduled, cron_trigger(s.cron, cfg.tz), args=[bot, s.name, s.job, s.cron], id=jid,
                          name=s.name, replace_existing=True, coalesce=True, max_instances=1,
                          misfire_grace_time=MISFIRE_GRACE)
    for j in scheduler.get_jobs():
        if j.id.startswith(JOB_ID_PREFIX) and j.id not in wanted:
            j.remove()


# --- catching up after downtime -------------------------------------------------------------


def last_fire_between(trigger: BaseTrigger, start: datetime, end: datetime) -> datetime | None:
    """The latest fire time t of the trigger with start <= t < end."""
    last, t = None, trigger.get_next_fire_time(None, start)
    while t is not None and t < end:
        last = t
        t = trigger.get_next_fire_time(t, t + timedelta(seconds=1))
    return last


def last_run(bot: Bot, schedule_name: str) -> datetime | None:
    doc = bot.store.get("jobs", f"run:{schedule_name}")
    try:
        return datetime.fromisoformat(doc["last_run"]) if doc else None
    except (KeyError, TypeError, ValueError):
        return None


def first_start(bot: Bot) -> datetime | None:
    doc = bot.store.get("meta", "first_start")
    try:
        return datetime.fromisoformat(doc["at"]) if doc else None
    except (KeyError, TypeError, ValueError):
        return None


async def record_first_start(bot: Bot) -> None:
    if bot.store.get("meta", "first_start") is None:
        await bot.store.put("meta", {"id": "first_start", "at": bot.clock.now().isoformat()})


def missed_runs(bot: Bot, now: datetime | None = None) -> list[tuple[str, str, datetime]]:
    """Schedules whose last fire time before `now` is after their last run and less than
    MISFIRE_GRACE seconds ago: (schedule name, job, fire time). Older misses are logged."""
    cfg = bot.config
    now = now or bot.clock.now()
    grace_start = now - timedelta(seconds=MISFIRE_GRACE)
    due = []
    for s in cfg.schedules:
        if not s.enabled:
            continue
        trigger = cron_trigger(s.cron, cfg.tz)
        ran = last_run(bot, s.name)
        if ran is None:
            # Never ran: only a fire time after the bot first started was missed (a fresh
            # install owes nothing; a schedule added later does, within the hour).
            first = first_start(bot) or now
            start = max(grace_start, first)
        else:
            start = grace_start if ran < grace_start else ran + timedelta(seconds=1)
        fire = last_fire_between(trigger, start, now)
        if fire is not None:
            due.append((s.name, s.job, fire))
        elif ran is not None:
            missed = trigger.get_next_fire_time(None, ran + timedelta(seconds=1))
            if missed is not None and missed < grace_start:
                logger.warning("schedule {} ({}) missed its run at {} while the bot was down; "
                               "more than an hour late, skipped", s.name, s.job, missed.isoformat())
    return due


async def catch_up(bot: Bot, now: datetime | None = None) -> list[str]:
    """Run, once each, the schedules missed by less than an hour; returns their names."""
    due = missed_runs(bot, now)
    if due:
        bot.spawn(_run_missed(bot, due), name="catch-up")
    return [name for name, _, _ in due]


async def _api_ready(bot: Bot, what: str) -> None:
    # In emulator mode the API lives in this very server, whose address the emulator learns
    # once the server listens; sending before that would go to the public WeCom host.
    try:
        await asyncio.wait_for(bot.api_ready.wait(), ORIGIN_WAIT)
    except asyncio.TimeoutError:
        logger.warning("{}: the WeCom API address is still unknown; running anyway", what)


async def _run_missed(bot: Bot, due: list[tuple[str, str, datetime]]) -> None:
    await _api_ready(bot, "catch-up")
    for name, job_name, at in due:
        logger.info("schedule {} ({}) missed its run at {}; running it now", name, job_name, at.isoformat())
        await fire(bot, name, job_name, at, run_at=at)


def attach_scheduler(app: web.Application, runtime) -> None:
    async def ctx(app: web.Application):
        bot = runtime.bot
        scheduler = AsyncIOScheduler(timezone=bot.config.tz)
        bot.scheduler = scheduler
        sync_schedules(scheduler, bot, bot.config)
        scheduler.start()
        await record_first_start(bot)
        await catch_up(bot)
        sweeper = asyncio.create_task(_sweep_loop(bot), name="job-takeover")
        yield
        await cancel_and_wait(sweeper)
        scheduler.shutdown(wait=False)
    app.cleanup_ctx.append(ctx)
