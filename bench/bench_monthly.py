"""Benchmark: the monthly bulletin (月通报) and `gridbot export --month` for a street of 40 grids
and 400 people, with a month of about 40,000 records.

    .venv/bin/python bench/bench_monthly.py [--grids 40] [--per-grid 10] [--keep DIR]

Generates November 2026 (about 34,000 reports and 7,500 check-ins, some duplicate or stale,
a few implausible counts withdrawn by the grid leader) and October at the same rate (the
month-over-month change reads it), 400 problems and some leave, into a temporary data folder
through the Store's API, then times each step. The baseline, measured in the same run, is the
time to iterate the month's records once. The budget: the job for every leader and grid group
together, and the export, under 10 s each. Memory is the process's resident set (VmRSS) and its
peak (VmHWM) from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import random
import shutil
import sys
import tempfile
import time
from contextlib import redirect_stdout
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.clock import iso_week  # noqa: E402
from bot.config_loading import parse_config  # noqa: E402
from bot.context import Bot  # noqa: E402
from bot.months import month_days, read_month  # noqa: E402
from bot.store import Store  # noqa: E402
from bot.workdays import is_workday  # noqa: E402

from bench.bench_digest import SAMPLES, CountingTransport, make_config  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")
MONTH, PREV = "2026-11", "2026-10"
BUDGET_S = 10.0


def memory() -> str:
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS", "VmHWM")):
                k, v = line.split(":")
                fields[k] = int(v.split()[0]) / 1024
    return f"RSS {fields.get('VmRSS', 0):.0f} MiB (peak {fields.get('VmHWM', 0):.0f} MiB)"


def generate(cfg, month: str, rng: random.Random) -> list:
    """(table, doc, shard) entries for one month: four reports a workday per person (fewer on rest
    days), a check-in most workdays."""
    entries = []
    people = [p for p in cfg.people if p.role in ("member", "grid_leader")]
    leaders = {p.grid: p for p in people if p.role == "grid_leader"}
    for d in month_days(month):
        workday = is_workday(d, cfg.calendar)
        week = iso_week(d)
        for p in people:
            for k in range(4 if workday else rng.choice((0, 0, 1))):
                text, cats = rng.choice(SAMPLES)
                a, b = rng.randint(1, 30), rng.randint(1, 20)
                items = [{"category": c, "quantity": float(v), "unit": u} for (c, u), v in zip(cats, (a, b))]
                sent = datetime(d.year, d.month, d.day, 9 + k * 2, rng.randint(0, 59), tzinfo=TZ)
                wrong = rng.random() < 0.005
                rid = f"R{month}_{len(entries) + 1}"
                history = [{"action": "withdraw", "by": leaders[p.grid].userid, "by_name": leaders[p.grid].name,
                            "at": int(sent.timestamp()) + 3600}] if wrong else []
                if any(c == "visit" for c, _ in cats) and rng.random() < 0.3:
                    # Some visits name their households, as the README asks: coverage then counts them once.
                    homes = "、".join(f"{rng.randint(1, 30)}栋{rng.randint(1, 4)}单元{rng.randint(1, 6)}0{rng.randint(1, 4)}"
                                     for _ in range(rng.randint(1, 3)))
                    text = text + ":" + homes
                entries.append(("reports", {
                    "id": rid, "msgid": rid, "userid": p.userid, "name": p.name, "grid": p.grid,
                    "work_date": d.isoformat(), "sent_at": int(sent.timestamp()), "text": text.format(a=a, b=b),
                    "items": items, "flags": ["implausible"] if wrong else [], "late": False, "unconfirmed": wrong,
                    "status": "withdrawn" if wrong or rng.random() < 0.02 else "active", "history": history}, week))
            if workday and rng.random() < 0.88:
                cid = f"C{month}_{len(entries) + 1}"
                bad = rng.random() < 0.02
                entries.append(("checkins", {
                    "id": cid, "msgid": cid, "userid": p.userid, "name": p.name, "grid": p.grid,
                    "date": d.isoformat(), "time": int(datetime(d.year, d.month, d.day, 8, tzinfo=TZ).timestamp()),
                    "counted": not bad, "flags": [rng.choice(("duplicate", "stale"))] if bad else [],
                    "reason": "", "file": "", "thumb": "", "sha256": cid, "phash": "0" * 16, "location": None,
                    "duplicate_of": None}, week))
    return entries


def problems(cfg, rng: random.Random, n: int) -> list:
    out = []
    start = datetime(2026, 10, 1, tzinfo=TZ)
    for i in range(1, n + 1):
        g = rng.choice(cfg.grids)
        opened = start + timedelta(days=rng.randint(0, 59), hours=rng.randint(8, 18))
        closed = rng.random() < 0.7
        late = rng.random() < 0.3
        closed_at = opened + timedelta(hours=60 if late else 30)
        history = []
        if closed and rng.random() < 0.05:
            history = [{"action": "reopened", "by": "street", "by_name": "街道主任", "at": int(closed_at.timestamp()) + 7200,
                        "note": "整改不到位", "previous": {"closed_by": f"u{g.id[1:]}_0"}}]
        out.append(("problems", {
            "id": f"P{i}", "grid": g.id, "reporter": f"u{g.id[1:]}_1", "reporter_name": "网格员",
            "text": f"幸福路{i}号楼下堆放建筑垃圾", "category": "sanitation", "opened_at": int(opened.timestamp()),
            "deadline": int((opened + timedelta(hours=48)).timestamp()), "status": "closed" if closed else "open",
            "closed_at": int(closed_at.timestamp()) if closed else None,
            "closed_by": f"u{g.id[1:]}_0" if closed else None, "closed_note": "已清理" if closed else "",
            "closed_without_photo": False, "photos_before": [], "photos_after": [], "location": None,
            "history": history}, "main"))
    return out


def timed(label: str, fn, rows: list):
    t, c = time.perf_counter(), time.process_time()
    result = fn()
    rows.append((label, time.perf_counter() - t, time.process_time() - c))
    return result


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grids", type=int, default=40)
    ap.add_argument("--per-grid", type=int, default=10)
    ap.add_argument("--keep", help="keep the generated data folder here")
    args = ap.parse_args()

    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="gridbot-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        cfg = make_config(folder, args.grids, args.per_grid)
        # The digest's street, with monthly targets and households (coverage) per grid.
        text = cfg.source.read_text(encoding="utf-8").replace(
            "targets = { visit = 60, ads = 40 }",
            "targets = { visit = 60, ads = 40 }\nmonthly_targets = { visit = 240, ads = 160 }\nhouseholds = 350")
        cfg.source.write_text(text, encoding="utf-8")
        cfg = parse_config(text, source=cfg.source)
        rng = random.Random(11)
        t = time.perf_counter()
        this, prev = generate(cfg, MONTH, rng), generate(cfg, PREV, rng)
        leave = [("leave", {"id": p.userid, "periods": [{"from": "2026-11-09", "until": "2026-11-13"}],
                            "until": "2026-11-13", "set_by": p.userid, "at": 0}, "main")
                 for p in rng.sample([p for p in cfg.people if p.role == "member"], 20)]
        store = Store(cfg.data_path)
        store.load()
        await store.start()
        for i in range(0, len(this + prev), 20000):
            await store.put_many((this + prev)[i:i + 20000])
        await store.put_many(problems(cfg, rng, 400) + leave)
        await store.close()
        print(f"generated {len(this)} records for {MONTH} and {len(prev)} for {PREV}, 400 problems, "
              f"{len(cfg.grids)} grids, {len(cfg.people)} people, in {time.perf_counter() - t:.1f} s")
        del this, prev

        from schedules.chart import configure_fonts
        from schedules.export_cli import export_month_command
        from schedules.month_chart import render_month_chart
        from schedules.month_data import collect_month
        from schedules.month_ledger import month_ledger
        from schedules.month_text import build_bulletin
        from schedules.monthly import monthly_bulletin
        from schedules.weekdata import scope_grid_ids
        from bot.scoring import month_standings
        configure_fonts()  # once per process, like the running bot; not part of a bulletin

        rows: list[tuple[str, float, float]] = []
        print(f"  memory before: {memory()}")
        ro = timed("open the store read-only, all shards (as gridbot export does)",
                   lambda: (s := Store(cfg.data_path, readonly=True), s.load(recent_weeks=None), s)[2], rows)
        as_of = datetime(2026, 12, 1, 9, 0, tzinfo=TZ)
        records = timed("baseline: iterate the month's records once", lambda: read_month(ro, MONTH), rows)
        n_records = len(records.reports) + len(records.checkins)
        data = timed("collect the month (attendance, points, the month before, the year)",
                     lambda: collect_month(cfg, ro, MONTH, as_of=as_of), rows)
        street = timed("build the street bulletin (markdown)", lambda: build_bulletin(cfg, data), rows)
        timed(f"build {len(cfg.communities)} community bulletins",
              lambda: [build_bulletin(cfg, data, scope_grid_ids(cfg, [c.id]), scope=[c.id]) for c in cfg.communities],
              rows)
        png = timed("render the chart (street, by community)",
                    lambda: render_month_chart(cfg, data, data.grid_list(), street["title"]), rows)
        xlsx = timed("build the month ledger (street, with 积分明细)", lambda: month_ledger(cfg, data), rows)
        timed("我的积分 for one person (scores the whole street to rank)",
              lambda: month_standings(cfg, ro, MONTH, datetime(2026, 11, 30, 18, tzinfo=TZ), ordered=False), rows)

        sink = io.StringIO()
        with redirect_stdout(sink):
            rc = timed("gridbot export --month (whole command, incl. store load)",
                       lambda: export_month_command(cfg, (s := Store(cfg.data_path, readonly=True),
                                                          s.load(recent_weeks=None), s)[2], MONTH, folder / "out",
                                                    now=as_of), rows)
        assert rc == 0, sink.getvalue()

        transport = CountingTransport()
        bot = Bot(config=cfg, store=ro, transport=transport, clock=None)  # type: ignore[arg-type]
        t, c = time.perf_counter(), time.process_time()
        result = await monthly_bulletin(bot, as_of)
        job = time.perf_counter() - t
        leaders = len(cfg.people_with_role("leader"))
        rows.append((f"monthly_bulletin job: {len(cfg.grids)} grid groups and all {leaders} leaders "
                     "(bulletin, chart, ledger each)", job, time.process_time() - c))

        width = max(len(r[0]) for r in rows)
        print()
        print(f"  {'step':<{width}}  {'wall':>9}     {'cpu':>9}")
        for label, secs, cpu in rows:
            print(f"  {label:<{width}}  {secs * 1000:9.1f} ms  {cpu * 1000:9.1f} ms")
        export_s = next(r[1] for r in rows if r[0].startswith("gridbot export"))
        base = rows[1][1]
        print()
        print(f"  records in {MONTH}: {n_records} ({len(records.reports)} reports, {len(records.checkins)} check-ins); "
              f"points entries: {len(data.standings.entries)}; bulletin parts: {len(street['parts'])} "
              f"(max {max(len(p.encode()) for p in street['parts'])} bytes)")
        print(f"  chart: {len(png) / 1024:.0f} KiB; xlsx: {len(xlsx) / 1024:.0f} KiB; messages queued by the job: "
              f"{len(transport.sent)}; job said: {result}")
        print(f"  job / baseline: {job / base:.0f}x; export / baseline: {export_s / base:.0f}x")
        print(f"  memory after: {memory()}")
        load = os.getloadavg()[0]
        ok = job < BUDGET_S and export_s < BUDGET_S
        print(f"  monthly bulletin for everyone {job:.2f} s, export {export_s:.2f} s (budget {BUDGET_S:.0f} s each) — "
              f"{'OK' if ok else 'OVER BUDGET'}; load average {load:.1f} on {os.cpu_count()} CPUs")
        return 0 if ok else 1
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
