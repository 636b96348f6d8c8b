"""A bot that runs for months: its history grows through the callback in one running process.

Used by `bench_callback.py --grow`. The bench's usual flat-cost figure loads a year of history at
start; a bot that runs for months instead gets that year message by message, week after week,
with its inbox, indexes and caches growing inside the one process. This drives such a bot:

- The bot under test is the real `gridbot run`, started through a small launcher that shifts
  the bot's clock (bot.clock.Clock.now) `weeks` weeks into the past; each SIGUSR1 moves it one
  week on. So "today" inside the bot walks through the year as the messages do, and weekly
  work (new week shards, settled weeks) happens as it would.
- Each week gets `per_week` real reports (parsed, stored, answered), CreateTime in that week.
- During the growth, every fourth week's batch also goes to a fresh bot on the same walking clock
  (so it holds a quarter of the history), right after the grown bot's: the ratio of the two is
  taken on the same machine state. The rate of a probe round (fresh messages at the bot's "now",
  the same size for every target)
  is taken before the growth, after it, and after the bot went idle, interleaved with the same
  rounds on a fresh bot (empty store) and on a bot that loaded the same year at start.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

LAUNCHER = """
import signal, sys
from datetime import timedelta
import bot.clock as clock
shift = [timedelta(weeks=-int(sys.argv[1]))]
real_now = clock.Clock.now
clock.Clock.now = lambda self: real_now(self) + shift[0]
def next_week(*_):
    shift[0] += timedelta(weeks=1)
signal.signal(signal.SIGUSR1, next_week)
from bot.cli import main
sys.exit(main(["run", "--config", sys.argv[2]]))
"""


def launcher_args(weeks: int, config: Path) -> list[str]:
    return [sys.executable, "-c", LAUNCHER, str(weeks), str(config)]


def next_week(pid: int) -> None:
    import os
    os.kill(pid, signal.SIGUSR1)


def week_start(weeks_ago: int) -> int:
    """A CreateTime `weeks_ago` weeks before now (the bot's clock is shifted the same way)."""
    return int(time.time()) - weeks_ago * 7 * 86400


async def start_shifted(bc, street, folder: Path, weeks: int, procs: list):
    """`gridbot run` on a clock `weeks` weeks back (SIGUSR1: a week on), with its own stand-in."""
    wport = bc.free_port()
    procs.append(bc.start([sys.executable, str(Path(bc.__file__).with_name("wecom_standin.py")), str(wport),
                           street.CORP_ID, street.SECRET, str(street.AGENT_ID)], folder, bc.PIN["rest"]))
    await bc.wait_ready(wport, path="/count")
    port = bc.free_port()
    config = street.write_config(folder, port, wecom_at=f"http://127.0.0.1:{wport}/cgi-bin/")
    p = bc.start(launcher_args(weeks, config), folder, bc.PIN["server"])
    procs.append(p)
    await bc.wait_ready(port, path="/wecom/callback")
    await bc.wait_idle(p.pid)
    return bc.Target(folder.name, p, port, data_dir=folder / "data", wecom_port=wport)


async def run(a) -> int:
    """The `--grow` measurement; `a` holds bench_callback's options (n, rounds, concurrency,
    weeks, per_week)."""
    import asyncio
    import tempfile
    from statistics import median

    import street
    bc = sys.modules["__main__"]  # bench_callback run as a script: its pinning is set there
    if not hasattr(bc, "start_gridbot"):
        import bench_callback as bc

    procs = []
    probe_n = max(200, a.n // a.rounds)
    every = 4  # the fresh bot gets one week in `every`: a quarter of the history, the same weeks
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(a.keep or tmp)
        for d in ("fresh", "loaded", "grown"):
            (tmp / d).mkdir(parents=True)
        t = time.perf_counter()
        n_hist = await street.fill_history(tmp / "loaded" / "data", weeks=a.weeks, total=a.weeks * a.per_week)
        print(f"loaded bot: {n_hist} history records over {a.weeks} weeks generated in "
              f"{time.perf_counter() - t:.1f} s")
        try:
            # The fresh bot walks the same clock as the grown one, so both answer messages of the
            # same week the same way; it gets a quarter of the weeks' traffic.
            fresh = await start_shifted(bc, street, tmp / "fresh", a.weeks, procs)
            grown = await start_shifted(bc, street, tmp / "grown", a.weeks, procs)
            loaded, startup = await bc.start_gridbot(tmp / "loaded", "loaded", live=True, procs=procs)
            offset = [20_000_000]

            def reqs(n: int, weeks_ago: int):
                start, offset[0] = offset[0], offset[0] + n
                return bc.bodies(n, start, at=week_start(weeks_ago))

            async def fire(target, batch) -> tuple[float, float]:
                answered0, wall0 = target.answer_wall, target.wall
                await target.fire(bc.aio_load, batch, a.concurrency)
                return len(batch) / (target.wall - wall0), len(batch) / (target.answer_wall - answered0)

            async def probe(stage: str, ago: int) -> dict:
                """Interleaved rounds on the three bots; each one's rates, round by round."""
                out: dict[str, tuple[list[float], list[float]]] = {}
                for _ in range(a.rounds):
                    for name, target, when in (("fresh", fresh, ago), ("loaded", loaded, 0), ("grown", grown, ago)):
                        r = await fire(target, reqs(probe_n, when))
                        out.setdefault(name, ([], []))[0].append(r[0])
                        out[name][1].append(r[1])
                return {stage: out}

            stages = {}
            stages.update(await probe("start", a.weeks))
            await asyncio.sleep(60)  # each person's minute, as below
            pairs = []  # (grown, fresh) rates of the same week's batch, one after the other
            # WeCom takes at most 30 messages a minute for one person and the bot keeps to it
            # (replies beyond are folded into one): a week's reports must not reach one person
            # faster than a real week would allow, or the bench measures that cap, not the bot.
            least = a.per_week / len(street.people()) * 60 / 25
            t = time.perf_counter()
            for i, ago in enumerate(range(a.weeks, 0, -1)):
                t_week = time.perf_counter()
                g = await fire(grown, reqs(a.per_week, ago))
                if i % every == 0:
                    pairs.append((g, await fire(fresh, reqs(a.per_week, ago))))
                for target in (grown, fresh):
                    next_week(target.proc.pid)
                await asyncio.sleep(max(0.05, least - (time.perf_counter() - t_week)))
            grow_s = time.perf_counter() - t
            await asyncio.sleep(60)  # each person's minute, as above
            stages.update(await probe("end", 0))
            await asyncio.sleep(5)
            await bc.wait_idle(grown.proc.pid)
            stages.update(await probe("idle again", 0))
            lost = {}
            for name, target in (("fresh", fresh), ("loaded", loaded), ("grown", grown)):
                target.stop()
                lost[name] = target.lost
        finally:
            for p in reversed(procs):
                if p.poll() is None:
                    bc.stop(p)

    print(f"grown bot: {a.weeks} weeks x {a.per_week} reports through the callback in {grow_s:.0f} s "
          f"(the fresh bot: one week in {every}); loaded bot's start-up {startup:.1f} s")
    ok = True
    quarter = max(1, len(pairs) // 4)
    for when, part in (("first", pairs[:quarter]), ("last", pairs[-quarter:])):
        ack = median(g[0] / f[0] for g, f in part)
        ans = median(g[1] / f[1] for g, f in part)
        if when == "last":
            ok &= ack >= 0.9 and ans >= 0.9
        print(f"  growing, {when} {len(part) * every} weeks: grown bot acknowledged "
              f"{median(g[0] for g, _ in part):5.0f} msg/s = {ack:.2f}x fresh, answered "
              f"{median(g[1] for g, _ in part):5.0f} msg/s = {ans:.2f}x fresh (each week's batch against the fresh "
              f"bot's batch of the same week, right after)")
    for stage, out in stages.items():
        fr, fa = out["fresh"]
        for name in ("loaded", "grown"):
            r, s = out[name]
            ack = median(x / y for x, y in zip(r, fr))
            ans = median(x / y for x, y in zip(s, fa))
            if stage != "start":
                ok &= ack >= 0.9 and ans >= 0.9
            print(f"  {stage:<11} {name:<6} acknowledged {median(r):5.0f} msg/s = {ack:.2f}x fresh "
                  f"({median(fr):.0f}); answered {median(s):5.0f} msg/s = {ans:.2f}x fresh ({median(fa):.0f})")
    print("  (at the start the grown bot is as empty as the fresh one: its ratio there is the machine's noise)")
    unanswered = {n: t.unanswered for n, t in (("fresh", fresh), ("loaded", loaded), ("grown", grown))}
    print(f"  messages acknowledged but not stored: {lost}; not answered: {unanswered}")
    ok &= all(v == 0 for v in lost.values()) and not any(unanswered.values())
    print("targets met (>= 0.9x fresh)" if ok else "TARGETS MISSED (< 0.9x fresh)")
    return 0 if ok else 1
