"""`gridbot jobs list` and `gridbot jobs run NAME [--at ISO] [--dry-run]`.

`run` works while the bot is running: it reads the same data through a read-only store (which
replays the running bot's journal) and sends through the configured transport; in emulator
mode that is the running bot's emulator API. Workday rules apply as for scheduled runs.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import unicodedata
from datetime import datetime
from types import SimpleNamespace

from bot.clock import Clock, FakeClock
from bot.config import Config, Schedule
from bot.workdays import is_workday
from bot.attendance import zh_weekday
from bot.features import Command, all_jobs
from bot.scheduler import execute_job

WORKDAY_ONLY = {"daily_reminder", "checkin_nudge", "escalation", "ladder"}


def _width(s: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)


def _pad(s: str, width: int) -> str:
    return s + " " * max(0, width - _width(s))


def list_lines(cfg: Config, now: datetime) -> list[str]:
    from bot.crontab import cron_trigger
    rows = [("名称 / name", "任务 / job", "cron", "下次运行 / next run")]
    for s in cfg.schedules:
        if not s.enabled:
            nxt = "已停用 / disabled"
        else:
            t = cron_trigger(s.cron, cfg.tz).get_next_fire_time(None, now)
            if t is None:
                nxt = "—"
            else:
                nxt = f"{t:%Y-%m-%d %H:%M} {zh_weekday(t.date())}"
                if s.job in WORKDAY_ONLY and not is_workday(t.date(), cfg.calendar):
                    nxt += "(非工作日,不发送 / rest day, sends nothing)"
                elif s.job == "monthly_bulletin":
                    nxt += "(每月只在第一个工作日发送一次 / sends once, on the month's first workday)"
        rows.append((s.name, s.job, s.cron, nxt))
    widths = [max(_width(r[i]) for r in rows) for i in range(3)]
    return ["  ".join([_pad(r[0], widths[0]), _pad(r[1], widths[1]), _pad(r[2], widths[2]), r[3]]).rstrip()
            for r in rows]


def find_schedule(cfg: Config, name: str) -> Schedule | None:
    """By schedule name; a job name also works when it is unambiguous (or not scheduled)."""
    for s in cfg.schedules:
        if s.name == name:
            return s
    by_job = [s for s in cfg.schedules if s.job == name]
    if len(by_job) == 1:
        return by_job[0]
    if not by_job and name in all_jobs():
        return Schedule(name=name, job=name, cron="0 0 * * *")
    return None


def parse_at(text: str | None, cfg: Config) -> datetime | None:
    if not text:
        return None
    at = datetime.fromisoformat(text)
    return at if at.tzinfo else at.replace(tzinfo=cfg.tz)


def emulator_api_base(cfg: Config) -> str:
    host = cfg.server.host
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{cfg.server.port}/emulator/cgi-bin/"


async def run_once(cfg: Config, schedule: Schedule, at: datetime | None, dry_run: bool,
                   out=print) -> int:
    from bot.runtime import robot_url_for
    from bot.context import Bot
    from bot.store_choice import store_for
    from bot.dry_run import DryRunTransport
    from bot.transport import Transport
    from bot.wecom.api import WecomClient

    store = store_for(cfg, readonly=True)
    store.load()
    client = None
    if dry_run:
        transport: Transport = DryRunTransport(out)
    else:
        if cfg.wecom.mode == "emulator" and not cfg.server.port:
            out("模拟器模式下需要在 [server] 中设置固定端口,才能连接正在运行的机器人;"
                "或使用 --dry-run。/ emulator mode needs a fixed server.port (or use --dry-run)")
            return 2
        base = emulator_api_base(cfg) if cfg.wecom.mode == "emulator" else cfg.wecom.api_base
        client = WecomClient(base, cfg.wecom.corp_id, cfg.wecom.secret.get_secret_value(), cfg.wecom.agent_id)
        ref = SimpleNamespace(client=client, bot=None)
        # Few quick retries: from the command line a dead endpoint should fail fast.
        transport = Transport(client, robot_url_for(ref), max_attempts=2, backoff=0.5)
        # The enterprise-wide cap is shared with the running bot: a job run by hand keeps to it too.
        transport.pace.configure(cfg.transport.api_per_minute, cfg.transport.api_per_hour)
    clock = FakeClock(cfg.tz, at) if at else Clock(cfg.tz)
    bot = Bot(config=cfg, store=store, transport=transport, clock=clock)
    if client is not None:
        ref.bot = bot
    try:
        outcome = await execute_job(bot, schedule.name, schedule.job, at or clock.now())
        await transport.close(timeout=60)
    finally:
        if client is not None:
            await client.close()
    when = (at or clock.now()).strftime("%Y-%m-%d %H:%M")
    if not outcome.ok:
        out(f"任务“{schedule.name}”({schedule.job})运行失败 / failed: {outcome.error}")
        return 1
    out(f"任务“{schedule.name}”({schedule.job})按 {when} 运行 / ran as of {when}: {outcome.result or ''}")
    if transport.failed:
        out(f"有 {len(transport.failed)} 条消息未能发送(机器人是否在运行?)/ "
            f"{len(transport.failed)} message(s) not delivered (is the bot running?)")
        return 1
    if not dry_run:
        out(f"已发送 {transport.delivered} 条消息 / {transport.delivered} message(s) sent")
    return 0


def jobs_command(args, cfg: Config) -> int:
    if args.jobs_cmd == "list":
        if not cfg.schedules:
            print("配置中没有定时任务 / no [[schedules]] configured")
            return 0
        for line in list_lines(cfg, Clock(cfg.tz).now()):
            print(line)
        return 0
    schedule = find_schedule(cfg, args.name)
    if schedule is None:
        names = "、".join(s.name for s in cfg.schedules) or "(无)"
        print(f"没有名为“{args.name}”的定时任务。可用:{names} / no schedule named {args.name!r}",
              file=sys.stderr)
        return 2
    try:
        at = parse_at(getattr(args, "at", None), cfg)
    except ValueError:
        print(f"--at 需要 ISO-8601 时间,例如 2026-11-26T17:00 / --at needs an ISO-8601 datetime: {args.at!r}",
              file=sys.stderr)
        return 2
    return asyncio.run(run_once(cfg, schedule, at, bool(getattr(args, "dry_run", False))))


def _arguments(p: argparse.ArgumentParser) -> None:
    jsub = p.add_subparsers(dest="jobs_cmd", required=True)
    jl = jsub.add_parser("list", help="列出定时任务和下次运行时间 / list schedules")
    jl.add_argument("--config", default=argparse.SUPPRESS)
    jr = jsub.add_parser("run", help="立即运行一个定时任务 / run one schedule now")
    jr.add_argument("name")
    jr.add_argument("--at", help="ISO-8601 datetime")
    jr.add_argument("--dry-run", action="store_true")
    jr.add_argument("--config", default=argparse.SUPPRESS)


def _run(args: argparse.Namespace) -> int:
    from bot.cli import load_or_exit
    return jobs_command(args, load_or_exit(args.config))


COMMAND = Command("jobs", "定时任务 / scheduled jobs", _arguments, _run)
