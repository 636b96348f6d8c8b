"""Benchmark: the escalation ladder job (逐级督办) on a year of a street's problems.

    .venv/bin/python bench/bench_ladder.py [--per-day 15] [--years 1 3] [--runs 7]

A street of 40 grids registers `per-day` problems a day for a year (about 5,500 with 6–9 history
lines each: registered, photos, fixes, checks, rejections, earlier escalation steps); those of the
last days are still open, half of them overdue and part-way up their ladder. The job's question,
"which ladder steps are due now and not yet sent", is timed two ways on the same store, in the same
run:

- the ladder (bot.ladder.problem_rungs): the open problems through the store's status index, the
  workday hours from a prefix sum over the calendar, the steps already sent on the problem;
- the baseline, the straightforward way: per grid, scan every problem for the open overdue ones,
  count the workday hours day by day, and find the steps already sent in each problem's history;
- and, to show what the index alone buys, the ladder's rules over one scan of every problem.

Both must give the same steps. Then the whole job runs once (planning, one durable write of the
updated problems, the messages counted instead of sent). With --years 1 3 the street's history is
tripled to show which way grows with it: the ladder's cost should not.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, time as dtime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.config_loading import load_config  # noqa: E402
from bot.context import Bot  # noqa: E402
from bot.ladder import WorkHours, problem_rungs  # noqa: E402
from bot.oversight import first_people_from  # noqa: E402
from bot.store import Store  # noqa: E402
from bot.transport import Transport  # noqa: E402
from bot.workdays import is_workday  # noqa: E402
from street import write_config  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=TZ)  # a Wednesday, fixed: the same street every run
TEXTS = ["幸福路{}号楼下堆放建筑垃圾", "和平街{}号门前占道经营", "{}号楼楼道堆放杂物", "阳光小区{}栋旁垃圾桶满溢",
         "新华路{}号共享单车乱停", "向阳街{}号墙面小广告"]


def entry(action: str, at: float, by: str = "u0101", **extra) -> dict:
    return {"action": action, "by": by, "by_name": "网格员", "at": at, "note": "", "msgid": f"m{at}{action}", **extra}


def street_problems(cfg, per_day: int, days: int, rng: random.Random) -> list[dict]:
    """A year (or more) of problems, the recent ones still open and part-way up their ladder."""
    hours = WorkHours(cfg.calendar, TZ)
    steps = cfg.ladder.problems
    out = []
    n = 0
    for back in range(days, -1, -1):
        day = NOW.date() - timedelta(days=back)
        for _ in range(per_day):
            n += 1
            opened = datetime.combine(day, dtime(8), TZ).timestamp() + rng.randrange(10 * 3600)
            if opened >= NOW.timestamp():
                continue
            grid = f"g{rng.randrange(1, 41)}"
            deadline = opened + 48 * 3600
            hist = [entry("opened", opened), entry("photo_before", opened + 60, photo=f"media/p{n}.jpg")]
            recent = back <= 6
            status = rng.choice(["open", "open", "pending_check", "closed"]) if recent else \
                ("withdrawn" if rng.random() < 0.04 else "closed")
            doc = {"id": f"P{n}", "msgid": f"m{n}", "grid": grid, "reporter": "u0101", "reporter_name": "网格员",
                   "text": rng.choice(TEXTS).format(rng.randrange(1, 30)), "category": "sanitation",
                   "opened_at": int(opened), "deadline": int(deadline), "status": status, "photos_before": [],
                   "photos_after": [], "location": None, "history": hist, "ladder": None}
            if status == "closed":
                fixed = opened + rng.randrange(3600, 96 * 3600)
                if rng.random() < 0.2:  # a fix sent back once
                    hist += [entry("close_requested", fixed - 7200), entry("fix_submitted", fixed - 7000),
                             entry("check_rejected", fixed - 3600, by="u0100")]
                hist += [entry("close_requested", fixed - 120), entry("fix_submitted", fixed),
                         entry("check_passed", fixed + 3600, by="u0100")]
                doc.update(closed_at=int(fixed + 3600), fixed_at=int(fixed), closed_by="u0100")
            elif status == "open" and deadline < NOW.timestamp():
                # Overdue: the steps due a while ago were sent (on the problem and in its history).
                elapsed_h = hours.between(deadline, NOW.timestamp() - 30 * 3600) / 3600
                sent = [i for i, s in enumerate(steps) if elapsed_h >= s.after_hours]
                for i in sent:
                    hist.append(entry("escalated", deadline + steps[i].after_hours * 3600, by="", step=i))
                doc["ladder"] = {"sent": sent, "told": [], "top": sent[-1:] == [len(steps) - 1]} if sent else None
            out.append(doc)
    return out


def baseline_rungs(cfg, store, now_ts: float) -> list[tuple[str, int]]:
    """The straightforward way: per grid a scan of every problem, hours day by day, sent steps from history."""
    steps = cfg.ladder.problems
    out = []
    for grid in cfg.grids:
        for p in store.docs("problems"):
            if p.get("grid") != grid.id or p.get("status") != "open" or p["deadline"] >= now_ts:
                continue
            elapsed, t = 0.0, p["deadline"]
            while t < now_ts:
                day = datetime.fromtimestamp(t, TZ).date()
                end = datetime.combine(day + timedelta(days=1), dtime(0), TZ).timestamp()
                if is_workday(day, cfg.calendar):
                    elapsed += min(end, now_ts) - t
                t = end
            sent = {h["step"] for h in p["history"] if h.get("action") == "escalated"}
            for i, s in enumerate(steps):
                if i not in sent and elapsed / 3600 >= s.after_hours:
                    first_people_from(cfg, s.notify, p["grid"])
                    out.append((p["id"], i))
    return sorted(out)


def one_scan_rungs(cfg, store, now_ts: float) -> list[tuple[str, int]]:
    """The ladder's own rules, but one scan of every problem instead of the status index."""
    hours = WorkHours(cfg.calendar, TZ)
    steps = cfg.ladder.problems
    out = []
    for p in store.docs("problems"):
        if p.get("status") != "open" or p["deadline"] >= now_ts:
            continue
        elapsed = hours.between(p["deadline"], now_ts) / 3600
        sent = (p.get("ladder") or {}).get("sent", [])
        for i, s in enumerate(steps):
            if i not in sent and elapsed >= s.after_hours:
                first_people_from(cfg, s.notify, p["grid"])
                out.append((p["id"], i))
    return sorted(out)


class CountingTransport(Transport):
    """Counts what the job would send; nothing leaves the process."""

    def __init__(self):
        super().__init__(client=None, robot_url=lambda g: "")  # type: ignore[arg-type]
        self.sent = 0

    def _enqueue(self, msg) -> None:
        self.sent += 1


def median_ms(fn, runs: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        t = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), result


async def one_size(folder: Path, years: int, per_day: int, runs: int) -> dict:
    cfg = load_config(write_config(folder))
    rng = random.Random(20 + years)
    docs = street_problems(cfg, per_day, 365 * years, rng)
    store = Store(cfg.data_path)
    store.load(today=NOW.date())
    await store.start()
    for i in range(0, len(docs), 5000):
        await store.put_many([("problems", d, None) for d in docs[i:i + 5000]])
    await store.checkpoint()
    now_ts = NOW.timestamp()
    fast_ms, fast = median_ms(lambda: sorted((r.subject["id"], r.step) for r in
                                             problem_rungs(cfg, store, now_ts, WorkHours(cfg.calendar, TZ))), runs)
    slow_ms, slow = median_ms(lambda: baseline_rungs(cfg, store, now_ts), runs)
    scan_ms, scan = median_ms(lambda: one_scan_rungs(cfg, store, now_ts), runs)
    assert fast == slow == scan, "the ladder and the baselines disagree"
    from schedules.supervise import ladder
    transport = CountingTransport()
    bot = Bot(config=cfg, store=store, transport=transport, clock=None)  # type: ignore[arg-type]
    t = time.perf_counter()
    result = await ladder(bot, NOW)
    job_ms = (time.perf_counter() - t) * 1000
    await store.close()
    return {"years": years, "problems": len(docs), "open": sum(d["status"] == "open" for d in docs),
            "history": sum(len(d["history"]) for d in docs), "due": len(fast), "fast": fast_ms, "slow": slow_ms, "scan": scan_ms,
            "job": job_ms, "messages": transport.sent, "result": result}


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-day", type=int, default=15)
    ap.add_argument("--years", type=int, nargs="+", default=[1, 3])
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    rows = []
    for years in args.years:
        folder = Path(tempfile.mkdtemp(prefix="gridbot-ladder-"))
        try:
            rows.append(await one_size(folder, years, args.per_day, args.runs))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    print(f"escalation ladder, 40 grids, {args.per_day} problems a day, now = {NOW:%Y-%m-%d %H:%M} "
          f"(median of {args.runs} runs each)")
    for r in rows:
        print(f"\n{r['years']} year(s): {r['problems']:,} problems ({r['open']} open), {r['history']:,} history lines;"
              f" {r['due']} steps due now")
        print(f"  ladder (status index, prefix-sum hours, state on the problem): {r['fast']:8.2f} ms")
        print(f"  baseline (scan per grid, hours day by day, history scan):      {r['slow']:8.2f} ms"
              f"  ({r['slow'] / r['fast']:.0f}× the ladder)")
        print(f"  the ladder's rules with one scan of all problems (no index):   {r['scan']:8.2f} ms"
              f"  ({r['scan'] / r['fast']:.0f}× the ladder)")
        print(f"  whole job (plan, one durable write, {r['messages']} messages counted): {r['job']:.1f} ms — {r['result']}")
    if len(rows) > 1:
        a, b = rows[0], rows[-1]
        print(f"\nhistory ×{b['problems'] / a['problems']:.1f}: ladder ×{b['fast'] / a['fast']:.2f}, "
              f"baseline ×{b['slow'] / a['slow']:.2f}, one scan ×{b['scan'] / a['scan']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
