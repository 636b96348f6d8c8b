"""Benchmark: a city on PostgreSQL — 1, 2 and 3 callback workers, the database's CPU, job times,
and the same on TinyDB on one district's data, all in one run.

    flock /tmp/district.lock .venv/bin/python bench/bench_city.py [--workers 1,2,3] [--messages 6000]
        [--concurrency 48] [--city 4000x25] [--sizes district] [--built DIR] [--jobs ...] [--keep DIR]
    .venv/bin/python bench/bench_city.py --quick     (a street and a 1,000-person city: a few minutes)

It starts a throwaway PostgreSQL server of its own (tests/support/postgres.py, fsync on as in
production) and the WeCom stand-in (bench/wecom_standin.py). Every bot is a real `gridbot run`
(bench_scale.py's `--serve`: gridbot run plus a route that fires a job in the running bot) in live
mode, the clock at Wednesday 2026-11-25 09:30, each worker with its own port and data folder.

1. Per size of `--sizes` (bench_scale.py's street / big / district, copied from `--built` as
   `bench_scale.py --keep DIR --build-only` left it, or built here): one worker on the data folder
   (TinyDB: a folder is one process's), then `gridbot migrate --to postgres` of that folder (timed)
   and 1, 2, 3 workers on the database.
2. A city (`--city GRIDSxPEOPLE`: 4,000 grids of 25 = 100,000 people by default, a community and
   its leader per ten grids): one generated week (bench_digest.py's busy week with `--city-reports`
   of its reports: by default two a workday per person and a check-in most days, about 300,000
   messages a workday as issue 24 expects for a city, each with its raw message), built as files
   and migrated, then 1, 2, 3 workers on it.

For each count of workers: `--messages` real signed, encrypted text reports from the size's people,
sent round-robin across the workers' ports (as a load balancer spreads them) by an aiohttp client
with `--concurrency` connections. Reported: acknowledged per second (the 200s), handled per second
(until the stand-in has every reply), callback p50/p99/max, and CPU seconds of the database server
(the postmaster and its backends, from /proc), of each worker and of this generator. Then the other
workers stop and the first fires the jobs (`--jobs`: daily reminder, check-in nudge, weekly tally,
leaders' digest, as bench_scale.py fires them), alone: time, CPU, the database's CPU.

Nothing is pinned: workers, database and generator share the CPUs, as on one small server; the
load average is printed with every figure (the machine is shared). A worker is started only while
the machine has the memory for it (each holds the current week in memory), else that count is
skipped and said so. Two workers may take callbacks today although one sender's messages are not
yet kept in order across workers (issue 24's per-sender locks): that does not change what is
measured, and the bench depends on none of it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bench_scale  # noqa: E402
import street  # noqa: E402
from bench_callback import aio_load, bodies, cpu_seconds, free_port, start, stop, wait_idle, wait_ready  # noqa: E402
from bench_scale import JOBS, NOW, SIZES, TZ, ShiftedClock, build_data, rss_mb  # noqa: E402
from tests.support.postgres import PgServer  # noqa: E402

DSN_ENV = "GRIDBOT_STORE_DSN"
CITY_JOBS = ["daily_reminder", "checkin_nudge", "weekly_tally", "weekly_digest"]
WAIT_S = 1800  # a city's worker reads its week for minutes


def mem_available_mb() -> float:
    with open("/proc/meminfo") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("MemAvailable:")) / 1024


def load_text() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.1f}/{five:.1f} on {os.cpu_count()} CPUs"


# --- the database server ---------------------------------------------------------------------

def pg_cpu(server: PgServer) -> float:
    """CPU seconds of the server so far: the postmaster with its reaped children, and the
    processes it runs now (a backend per connection, the writer, the WAL writer…)."""
    pid = int((server.root / "data" / "postmaster.pid").read_text().split()[0])
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        if int(entry) == pid:
            total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
        elif int(fields[1]) == pid:
            total += int(fields[11]) + int(fields[12])
    return total / tick


async def db_size_mb(dsn: str) -> float:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval("SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
                                   "JOIN pg_namespace n ON n.oid = c.relnamespace "
                                   "WHERE n.nspname = current_schema() AND c.relkind = 'r'") / 2**20
    finally:
        await conn.close()


def build(config: Path, weeks: int, reports: float = 1.0) -> dict[str, int]:
    """bench_scale.py's weeks of data into the config's data folder (`reports`: the share of the
    busy weeks' reports kept), in a process of its own: a city's week is millions of documents,
    and the memory they took goes back with the process."""
    out = subprocess.run([sys.executable, __file__, "--build", str(config), str(weeks), str(reports)],
                         capture_output=True, text=True, env=subprocess_env())
    if out.returncode != 0:
        raise SystemExit(f"building the data failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.splitlines()[-1])


def subprocess_env() -> dict[str, str]:
    """This checkout's code in every process started here, whatever the venv has installed."""
    root = str(Path(__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}


def migrate(config: Path, dsn: str) -> float:
    """`gridbot migrate --to postgres` of the folder, the address from the environment."""
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "bot.cli", "migrate", "--to", "postgres", "--config", str(config)],
                         capture_output=True, text=True, cwd=config.parent, env={**subprocess_env(), DSN_ENV: dsn})
    if out.returncode != 0:
        raise SystemExit(f"gridbot migrate failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return time.perf_counter() - t


# --- workers ---------------------------------------------------------------------------------

def worker_configs(folder: Path, n: int, grids: int, per_grid: int, wport: int, backend: str) -> list[tuple[Path, int]]:
    """n configs of one deployment (bench_scale.py's, unpaced), each with its own port and data
    folder: what differs between the machines behind a load balancer."""
    port = free_port()
    first = folder / "w1"
    first.mkdir(parents=True, exist_ok=True)
    path = bench_scale.write_config(first, grids, per_grid, port, wport)
    extra = "\n[transport]\napi_per_minute = 0\n" if street.unpaced_field() else ""
    if backend == "postgres":
        extra += '\n[store]\nbackend = "postgres"\n'  # the address comes from GRIDBOT_STORE_DSN
    text = path.read_text(encoding="utf-8") + extra
    path.write_text(text, encoding="utf-8")
    out = [(path, port)]
    for i in range(2, n + 1):
        p = free_port()
        (folder / f"w{i}").mkdir(exist_ok=True)
        other = folder / f"w{i}" / "config.toml"
        other.write_text(text.replace(f"\nport = {port}\n", f"\nport = {p}\n", 1), encoding="utf-8")
        out.append((other, p))
    return out


class Worker:
    def __init__(self, config: Path, port: int, dsn: str | None):
        self.config, self.port = config, port
        self.log = open(config.parent / "stderr.txt", "wb")
        env = {k: v for k, v in subprocess_env().items() if k != DSN_ENV}
        if dsn:
            env[DSN_ENV] = dsn  # as a deployment gives it: the password stays out of the file
        self.proc = subprocess.Popen([sys.executable, bench_scale.__file__, "--serve", str(config)], cwd=config.parent,
                                     stdout=subprocess.DEVNULL, stderr=self.log, env=env)

    async def ready(self) -> dict:
        try:
            s = await wait_ready(self.port, timeout=WAIT_S, path="/wecom/callback")
        except SystemExit:
            raise SystemExit(f"worker {self.config.parent.name} did not start:\n{self.tail()}")
        await wait_idle(self.proc.pid, timeout=WAIT_S, every=0.5, share=0.04)  # last week read meanwhile
        return {"startup_s": s, "rss_mb": rss_mb(self.proc.pid)}

    def tail(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return (self.config.parent / "stderr.txt").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        stop(self.proc, wait=120)
        self.log.close()


async def fire_jobs(port: int, jobs: list[str], server: PgServer | None, label: str, limit: float) -> dict:
    out = {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=limit)) as s:
        for job, at in JOBS:
            if job not in jobs:
                continue
            db = pg_cpu(server) if server else 0.0
            try:
                async with s.post(f"http://127.0.0.1:{port}/bench/job",
                                  params={"name": job, "at": at.isoformat()}) as r:
                    res = await r.json()
            except asyncio.TimeoutError:  # still running: said, and the next job is not fired into it
                out[job] = {"seconds": None, "result": f"not done after {limit:.0f} s"}
                print(f"[{label}] {job:<15} not done after {limit:.0f} s  [{load_text()}]", flush=True)
                break
            res["db_cpu"] = pg_cpu(server) - db if server else None
            out[job] = res
            db_text = f", database {res['db_cpu']:.1f} s CPU" if server else ""
            print(f"[{label}] {job:<15} {res['seconds']:7.2f} s ({res['cpu']:.1f} s CPU{db_text}), extra memory "
                  f"{res['extra_mb']:.0f} MB — {res['result']}  [{load_text()}]", flush=True)
    return out


async def stand_in_count(wport: int) -> int:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://127.0.0.1:{wport}/count") as r:
            return (await r.json())["message/send"]


async def throughput(workers: list[Worker], server: PgServer | None, wport: int, people: list[str], n: int,
                     concurrency: int) -> dict:
    """n reports round-robin across the workers; acknowledged, then every reply received."""
    at = int(ShiftedClock(TZ, NOW).now().timestamp())
    # Senders spread over the size (a stride prime to it), not one grid after another.
    spread = [people[(i * 7919) % len(people)] for i in range(min(n, len(people)))]
    reqs = bodies(n, next(MSGIDS), at=at, people=spread)
    pids = [w.proc.pid for w in workers]
    db = (lambda: pg_cpu(server)) if server else (lambda: 0.0)  # noqa: E731
    cpu0, db0, gen0 = [cpu_seconds(p) for p in pids], db(), time.process_time()
    sent0 = await stand_in_count(wport)
    t0 = time.perf_counter()
    wall, lat, acked, errors = await aio_load([w.port for w in workers], reqs, concurrency)
    deadline = time.perf_counter() + 600
    while await stand_in_count(wport) - sent0 < len(acked) and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    handled_s = time.perf_counter() - t0
    answered = await stand_in_count(wport) - sent0
    for p in pids:
        await wait_idle(p, timeout=120, every=0.5, share=0.04)
    lat.sort()
    pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000  # noqa: E731
    return {"workers": len(workers), "messages": n, "acked": len(acked), "errors": errors, "answered": answered,
            "acked_per_s": len(acked) / wall, "handled_per_s": answered / handled_s,
            "p50": pick(0.5), "p99": pick(0.99), "max": lat[-1] * 1000,
            "db_cpu": db() - db0 if server else None, "worker_cpu": [cpu_seconds(p) - c for p, c in zip(pids, cpu0)],
            "generator_cpu": time.process_time() - gen0, "load": os.getloadavg()[0],
            "rss_mb": [rss_mb(p) for p in pids]}


def show_round(label: str, r: dict) -> None:
    db = f"database {r['db_cpu']:.1f}, " if r["db_cpu"] is not None else ""
    print(f"[{label}] {r['workers']} worker(s): {r['acked_per_s']:,.0f} msg/s acknowledged, {r['handled_per_s']:,.0f} "
          f"msg/s handled ({r['acked']}/{r['messages']} acknowledged, {r['answered']} answered, {r['errors']} errors); "
          f"callback p50 {r['p50']:.1f} ms p99 {r['p99']:.1f} ms max {r['max']:.1f} ms; CPU s: {db}workers "
          f"{' + '.join(f'{c:.1f}' for c in r['worker_cpu'])}, generator {r['generator_cpu']:.1f}; "
          f"RSS {' / '.join(f'{m:.0f}' for m in r['rss_mb'])} MB  [{load_text()}]", flush=True)


MSGIDS = iter(range(90_000_000, 2_000_000_000, 1_000_000))  # each round's MsgIds its own: no resend


# --- the phases -------------------------------------------------------------------------------

async def deployment(label: str, configs: list[tuple[Path, int]], dsn: str | None, server: PgServer | None,
                     wport: int, people: list[str], counts: list[int], a, res: dict) -> dict:
    """Each count of workers takes the load in turn (more are started as needed, while the
    machine has the memory for them); then the others stop and the first fires the jobs, alone
    (a job left running past --job-limit disturbs nothing measured after it)."""
    workers: list[Worker] = []
    res.update(startup=[], rounds=[])  # filled as measured: a run cut short still reports them
    try:
        for n in sorted(c for c in counts if c <= len(configs)):
            if workers and n > len(workers):
                # Each worker holds the week in memory: on a machine shared with others, a worker
                # that would not fit is not started (and said so) rather than pushing all into swap.
                need = res["startup"][0]["rss_mb"] * 1.3 * (n - len(workers)) + 2048
                if mem_available_mb() < need:
                    print(f"[{label}] {n} workers not measured: {mem_available_mb():,.0f} MB available, "
                          f"about {need:,.0f} MB needed", flush=True)
                    break
            while len(workers) < n:
                w = Worker(*configs[len(workers)], dsn)
                workers.append(w)
                up = await w.ready()
                res["startup"].append(up)
                print(f"[{label}] worker {len(workers)} start-up {up['startup_s']:.1f} s, RSS {up['rss_mb']:.0f} MB  "
                      f"[{load_text()}]", flush=True)
            if a.messages:
                res["rounds"].append(await throughput(workers, server, wport, people, a.messages, a.concurrency))
                show_round(label, res["rounds"][-1])
        while len(workers) > 1:
            stopped(workers.pop(), label)
        if a.jobs:
            if not workers:
                workers.append(Worker(*configs[0], dsn))
                res["startup"].append(await workers[0].ready())
            res["jobs"] = await fire_jobs(workers[0].port, a.jobs, server, label, a.job_limit)
    finally:
        for w in reversed(workers):
            stopped(w, label)
    return res


def stopped(w: Worker, label: str) -> None:
    w.stop()
    if w.proc.returncode not in (0, -15):
        print(f"[{label}] {w.config.parent.name} ended with {w.proc.returncode}:\n{w.tail()}")


def people_of(config: Path, dsn: str | None = None) -> list[str]:
    from bot.config_loading import load_config
    cfg = load_config(config, env={DSN_ENV: dsn} if dsn else {})
    return [p.userid for p in cfg.people if p.role in ("member", "grid_leader")]


async def compare(name: str, root: Path, built: Path | None, server: PgServer, wport: int, counts: list[int],
                  a, res: dict) -> dict:
    """One data folder on TinyDB (one worker: a data folder is one process's), then on
    PostgreSQL after `gridbot migrate`, with 1, 2, 3 workers."""
    grids, per_grid = SIZES[name]
    res.update(size=name, grids=grids, people=grids * per_grid, tinydb={}, postgres={})
    tiny = worker_configs(root / name / "tinydb", 1, grids, per_grid, wport, "tinydb")
    config = tiny[0][0]
    t = time.perf_counter()
    if built is not None:
        shutil.copytree(built / name / "data", config.parent / "data")
        docs = json.loads((built / name / "counts.json").read_text())
    else:
        docs = build(config, a.weeks)
    res["documents"] = sum(docs.values())
    print(f"[{name}] {grids} grids, {grids * per_grid:,} people: {res['documents']:,} documents "
          f"{'copied' if built else 'built'} in {time.perf_counter() - t:.0f} s", flush=True)
    people = people_of(config)
    await deployment(f"{name}/tinydb", tiny, None, None, wport, people, [1], a, res["tinydb"])
    dsn = await asyncio.to_thread(server.new_schema)
    res["migrate_s"] = migrate(config, dsn)
    res["db_mb"] = await db_size_mb(dsn)
    print(f"[{name}] gridbot migrate --to postgres {res['migrate_s']:.1f} s, database {res['db_mb']:,.0f} MB", flush=True)
    shutil.rmtree(config.parent, ignore_errors=True)
    pg = worker_configs(root / name / "pg", max(counts), grids, per_grid, wport, "postgres")
    await deployment(f"{name}/postgres", pg, dsn, server, wport, people, counts, a, res["postgres"])
    shutil.rmtree(root / name, ignore_errors=True)
    return res


async def city(root: Path, grids: int, per_grid: int, server: PgServer, wport: int, counts: list[int], a,
               res: dict) -> dict:
    """A city's generated week, built as files, migrated, then served by 1, 2, 3 workers."""
    res.update(grids=grids, people=grids * per_grid)
    (build_config, _), = worker_configs(root / "city" / "build", 1, grids, per_grid, wport, "tinydb")
    t = time.perf_counter()
    docs = build(build_config, 1, a.city_reports)  # the week of 2026-11-23
    res["documents"], res["build_s"] = sum(docs.values()), time.perf_counter() - t
    dsn = await asyncio.to_thread(server.new_schema)
    res["migrate_s"] = migrate(build_config, dsn)
    res["db_mb"] = await db_size_mb(dsn)
    shutil.rmtree(root / "city" / "build", ignore_errors=True)
    print(f"[city] {grids:,} grids, {grids * per_grid:,} people, {grids // 10 + 1} leaders: "
          f"{res['documents']:,} documents ({', '.join(f'{k} {v:,}' for k, v in docs.items())}) generated in "
          f"{res['build_s']:.0f} s, migrated in {res['migrate_s']:.0f} s; database {res['db_mb']:,.0f} MB", flush=True)
    configs = worker_configs(root / "city", max(counts), grids, per_grid, wport, "postgres")
    await deployment("city", configs, dsn, server, wport, people_of(configs[0][0], dsn), counts, a, res)
    return res


def rounds_table(label: str, rounds: list[dict]) -> None:
    for r in rounds:
        per = 1000 / max(1, r["answered"])  # CPU ms per message handled: what a bigger machine divides
        db = "—" if r["db_cpu"] is None else f"{r['db_cpu']:.1f}({r['db_cpu'] * per:.2f} ms/条)"
        print(f"| {label} | {r['workers']} | {r['acked_per_s']:,.0f} | {r['handled_per_s']:,.0f} | {r['p50']:.0f} / "
              f"{r['p99']:.0f} / {r['max']:.0f} ms | {db} | {' + '.join(f'{c:.1f}' for c in r['worker_cpu'])}"
              f"({sum(r['worker_cpu']) * per:.2f} ms/条) | {r['generator_cpu']:.1f} | {r['load']:.1f} |")


def jobs_cell(j: dict | None) -> str:
    if not j:
        return "—"
    if j["seconds"] is None:
        return j["result"]
    db = f",库 {j['db_cpu']:.1f} s" if j.get("db_cpu") is not None else ""
    return f"{j['seconds']:.2f} s(CPU {j['cpu']:.1f} s{db})"


def report(compared: list[dict], town: dict | None) -> None:
    print("\n| 部署 | 进程数 | 确认 条/秒 | 处理完 条/秒 | 回调 p50 / p99 / 最大 | 数据库 CPU 秒 | 各进程 CPU 秒 | 发生器 CPU 秒 | 负载 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for c in compared:
        rounds_table(f"{c['size']} TinyDB", c["tinydb"].get("rounds", []))
        rounds_table(f"{c['size']} PostgreSQL", c["postgres"].get("rounds", []))
    if town:
        rounds_table(f"city {town['people']:,} 人", town.get("rounds", []))
    print("\n| 部署 | 记录 | 迁移 | 库大小 | 启动 | 内存 | " + " | ".join(CITY_JOBS) + " |")
    print("|---|---|---|---|---|---|" + "---|" * len(CITY_JOBS))
    rows = [(f"{c['size']} {c['people']:,} 人 {b}", c, c[key]) for c in compared
            for b, key in (("TinyDB", "tinydb"), ("PostgreSQL", "postgres")) if c[key].get("startup")]
    rows += [(f"city {town['people']:,} 人 PostgreSQL", town, town)] if town.get("startup") else []
    for label, whole, d in rows:
        up = d["startup"][0] if d["startup"] else {"startup_s": 0, "rss_mb": 0}
        moved = ("— | —" if d is whole.get("tinydb")
                 else f"{whole.get('migrate_s', 0):.0f} s | {whole.get('db_mb', 0):,.0f} MB")
        print(f"| {label} | {whole.get('documents', 0):,} | {moved} | {up['startup_s']:.1f} s | {up['rss_mb']:.0f} MB | "
              + " | ".join(jobs_cell(d.get("jobs", {}).get(j)) for j in CITY_JOBS) + " |")
    print(f"\n{load_text()} at the end")


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", default="1,2,3", help="worker counts to measure, e.g. 1,2,3")
    ap.add_argument("--messages", type=int, default=6000, help="callbacks per worker count")
    ap.add_argument("--concurrency", type=int, default=48, help="connections of the load generator")
    ap.add_argument("--city", default="4000x25", help="GRIDSxPEOPLE of the generated city ('' for none)")
    ap.add_argument("--city-reports", type=float, default=0.5,
                    help="share of the busy week's reports in the city's week: 0.5 gives two a workday "
                         "and a check-in, about 300,000 messages a day for 100,000 people (issue 24's figure)")
    ap.add_argument("--sizes", nargs="*", default=["district"], choices=list(SIZES),
                    help="bench_scale sizes measured on TinyDB and on PostgreSQL")
    ap.add_argument("--built", help="copy the sizes' data from a bench_scale.py --keep DIR --build-only folder")
    ap.add_argument("--weeks", type=int, default=15, help="weeks of history when a size is built here")
    ap.add_argument("--jobs", nargs="*", default=CITY_JOBS, choices=[j for j, _ in JOBS])
    ap.add_argument("--job-limit", type=float, default=1200, help="seconds a job may take before the bench moves on")
    ap.add_argument("--keep", help="work in this folder (kept) instead of a temp one")
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--quick", action="store_true", help="a street and a 1,000-person city: a few minutes")
    a = ap.parse_args()
    if a.quick:
        a.sizes, a.city, a.weeks, a.messages, a.built = ["street"], "100x10", 2, min(a.messages, 800), None
    if a.built and a.keep and Path(a.built).resolve() == Path(a.keep).resolve():
        ap.error("--keep would overwrite the folders --built copies from: give it another folder")
    counts = [int(x) for x in a.workers.replace(" ", "").split(",") if x]
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, not pinned; {load_text()}", flush=True)
    root = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="gridbot-city-"))
    root.mkdir(parents=True, exist_ok=True)
    server = await asyncio.to_thread(PgServer.start, True)  # its helpers run a loop of their own
    standin_port = free_port()
    standin = start([sys.executable, str(Path(__file__).with_name("wecom_standin.py")), str(standin_port),
                     street.CORP_ID, street.SECRET, str(street.AGENT_ID)], root, None)
    compared: list[dict] = []
    town: dict = {}
    failed = False
    try:
        await wait_ready(standin_port, path="/count")
        for name in a.sizes:
            compared.append({})
            await compare(name, root, Path(a.built) if a.built else None, server, standin_port, counts, a,
                          compared[-1])
        if a.city:
            grids, per_grid = (int(x) for x in a.city.lower().split("x"))
            await city(root, grids, per_grid, server, standin_port, counts, a, town)
    except (Exception, KeyboardInterrupt, SystemExit) as e:  # what was measured until then is still reported
        print(f"stopped: {e!r}", flush=True)
        failed = True
    finally:
        stop(standin)
        server.stop()
        if not a.keep:
            shutil.rmtree(root, ignore_errors=True)
    if a.json:
        Path(a.json).write_text(json.dumps({"compared": compared, "city": town}, ensure_ascii=False, indent=1,
                                           default=str), encoding="utf-8")
    report([c for c in compared if c.get("tinydb")], town)
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--build":
        import random

        import bench_digest
        from bot.config_loading import load_config
        share, busy = float(sys.argv[4]), bench_digest.generate

        def thinned(cfg, week: str, rng: random.Random, with_photos: bool) -> tuple[list, int]:
            entries, photos = busy(cfg, week, rng, with_photos)
            return [e for e in entries if e[0] != "reports" or rng.random() < share], photos
        if share < 1:
            bench_digest.generate = thinned  # this process only: it builds and ends
        built = asyncio.run(build_data(Path(sys.argv[2]).parent, load_config(Path(sys.argv[2])), int(sys.argv[3])))
        print(json.dumps(built))
        sys.exit(0)
    sys.exit(asyncio.run(main()))
