"""Benchmark: how far one machine goes — a street, a big street and a district.

    .venv/bin/python bench/bench_scale.py [--sizes street big] [--weeks 15] [--rate 50] [--keep DIR]
        [--built DIR] [--build-only]   (build the data once with --keep DIR --build-only, then
                                        measure copies of it with --built DIR)

For each size it builds a data folder as a bot that has run for `--weeks` weeks would have it
(the benches' own generators: bench/bench_digest.py's dense weeks for the last two, quieter weeks
before them with a quarter of the reports, an inbox copy and a done mark per message, problems
as bench/bench_digest.py makes them), starts gridbot on it as `gridbot run` does (live mode,
against bench/wecom_standin.py in another process, its clock set to Wednesday 2026-11-25 09:30)
and reports:

- data on disk, start-up (process start until the callback answers; the store's load apart)
  the first time and at a restart after the jobs, resident memory after start-up and at its peak;
- callback latency p50/p99/max at `--rate` messages a second (real encrypted text reports, each
  stored and answered): with no job running (the same run's baseline), then while each job fires
  in the running bot (latencies of the callbacks sent from the job's start until 2 s after its
  end), and how long each job took;
- `gridbot export` (the week's ledger, chart and photos) and `gridbot stats --week` run beside it.

The targets (from issue 23, for a district): p99 under 300 ms and no callback over 1 s while
every job fires; a restart under 10 s. Sizes: street = 40 grids × 10 people, big street =
240 × 10 (2,400 people), district = 1,000 × 24 (24,000 people).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bench_digest  # noqa: E402
from bench_callback import free_port, start, stop, wait_idle, wait_ready  # noqa: E402
import street  # noqa: E402
from bot.clock import Clock, iso_week  # noqa: E402
from bot.emulator import cipher as crypto  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 25, 9, 30, tzinfo=TZ)  # a Wednesday, as in the tests
SIZES = {"street": (40, 10), "big": (240, 10), "district": (1000, 24)}
SIZE_ZH = {"street": "街道", "big": "大街道", "district": "区"}
# Each job as the scheduler would fire it (the digest and tally on Monday about last week).
JOBS = [
    ("daily_reminder", datetime(2026, 11, 25, 8, 30, tzinfo=TZ)),
    ("ladder", datetime(2026, 11, 25, 10, 0, tzinfo=TZ)),
    ("checkin_nudge", datetime(2026, 11, 25, 17, 0, tzinfo=TZ)),
    ("escalation", datetime(2026, 11, 25, 20, 30, tzinfo=TZ)),
    ("overdue_problems", datetime(2026, 11, 25, 9, 0, tzinfo=TZ)),
    ("weekly_tally", datetime(2026, 11, 30, 9, 0, tzinfo=TZ)),
    ("weekly_digest", datetime(2026, 11, 30, 8, 30, tzinfo=TZ)),
    ("monthly_bulletin", datetime(2026, 12, 1, 9, 0, tzinfo=TZ)),
]
P99_TARGET_MS, MAX_TARGET_MS, STARTUP_TARGET_S = 300, 1000, 10
STARTUP_WAIT_S = 900  # how long a start may take before the bench gives up (a district loads for tens of seconds)


# --- the data ----------------------------------------------------------------------------------

def write_config(folder: Path, grids: int, per_grid: int, port: int, wecom_port: int) -> Path:
    """bench_digest's street (its people, communities of ten grids, a leader each, targets) in live
    mode against the stand-in, every grid with a robot webhook, no [[schedules]]: the bench fires
    the jobs itself."""
    bench_digest.make_config(folder, grids, per_grid)
    text = (folder / "config.toml").read_text(encoding="utf-8")
    api = f"http://127.0.0.1:{wecom_port}/cgi-bin/"
    rest = text.split("[[communities]]", 1)[1]
    head = street.head(port, "live", api, street="幸福街道") + "\n"
    body = "[[communities]]" + rest
    lines = []
    for line in body.splitlines():
        lines.append(line)
        if line.startswith("id = \"g"):
            lines.append(f'robot_webhook = "{api}webhook/send?key={line.split(chr(34))[1]}"')
            lines.append("households = 420")
    path = folder / "config.toml"
    path.write_text(head + "\n".join(lines) + "\n" + street.example_categories(), encoding="utf-8")
    return path


def with_messages(entries: list) -> list:
    """Each report and check-in with the inbox copy and the done mark its message left."""
    out = []
    for table, doc, week in entries:
        out.append((table, doc, week))
        if table in ("reports", "checkins"):
            ts = doc.get("sent_at") or doc.get("time")
            event = {"kind": "text" if table == "reports" else "image", "key": doc["msgid"], "sender": doc["userid"],
                     "create_time": ts, "agent_id": street.AGENT_ID, "via": "app", "chat_id": "",
                     "response_url": "", "thread": "", "parts": 1}
            if table == "reports":
                event.update(content=doc["text"], spoken=False)
            else:
                event.update(media_id=f"MEDIA_{doc['msgid']}", pic_url="", aes_key="")
            out.append(("inbox", {"id": doc["msgid"], "event": event, "received": ts + 0.2}, week))
            out.append(("inbox_done", {"id": doc["msgid"]}, week))
    return out


def quiet(entries: list, rng: random.Random) -> list:
    """A quieter week than bench_digest's busy one: every check-in, a quarter of the reports."""
    return [e for e in entries if e[0] != "reports" or rng.random() < 0.25]


async def build_data(folder: Path, cfg, weeks: int) -> dict:
    from bot.store import Store
    rng = random.Random(2026)
    last = iso_week(NOW.date())
    counts: dict[str, int] = {}
    for back in range(weeks - 1, -1, -1):
        week = iso_week(NOW.date() - timedelta(weeks=back))
        entries, _ = bench_digest.generate(cfg, week, rng, with_photos=False)
        if back > 1:
            entries = quiet(entries, rng)
        entries = with_messages(entries)
        if week == last:
            entries += bench_digest.problems(cfg, rng, 5 * len(cfg.grids))
        store = Store(cfg.data_path)
        store.load(recent_weeks=0, today=NOW.date())
        await store.start()
        for i in range(0, len(entries), 20_000):
            await store.put_many(entries[i:i + 20_000])
        await store.close()
        for table, _, _ in entries:
            counts[table] = counts.get(table, 0) + 1
        del entries, store
    return counts


def disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


# --- the bot under test (run with --serve) --------------------------------------------------------

class ShiftedClock(Clock):
    """Real time passing, from Wednesday 2026-11-25 09:30 on."""

    def __init__(self, tz, start: datetime):
        super().__init__(tz)
        self.offset = start.timestamp() - time.time()

    def now(self) -> datetime:
        return datetime.fromtimestamp(time.time() + self.offset, self.tz)


def serve(config_path: str) -> None:
    """gridbot run, as bot.cli.cmd_run does it, plus two routes for the bench: fire a job in the
    running bot, and how long the store took to load."""
    from aiohttp import web

    from bot.app import RUNTIME_KEY, create_app
    from bot.cli import _run_loop, load_or_exit
    from bot.http_guard import serve as guarded
    from bot.log import setup_logging
    from bot.scheduler import execute_job

    cfg = load_or_exit(config_path)
    setup_logging(cfg.data_path / "logs", cfg.bot.log_level, tz=cfg.tz)
    app = create_app(cfg, clock=ShiftedClock(cfg.tz, NOW))
    rt = app[RUNTIME_KEY]
    timing: dict[str, float] = {}
    load = rt.store.load

    def timed_load(*a, **kw):
        t = time.perf_counter()
        load(*a, **kw)
        timing["load_s"] = time.perf_counter() - t
    rt.store.load = timed_load
    # When the checkpoint thread wrote (perf_counter is the same clock in every process here):
    # the callbacks sent meanwhile are told apart from the others.
    writes: list[tuple[float, float]] = []
    write_shards = rt.store._write_shards

    def timed_write(*a, **kw):
        t = time.perf_counter()
        try:
            return write_shards(*a, **kw)
        finally:
            writes.append((t, time.perf_counter()))
    rt.store._write_shards = timed_write

    async def job(request: web.Request) -> web.Response:
        name = request.query["name"]
        at = datetime.fromisoformat(request.query["at"])
        # The job's own peak: the high-water mark is reset to the current RSS first (clear_refs 5);
        # the peak so far goes back with the answer, for the bot's peak RSS.
        hwm = rss_mb(os.getpid(), "VmHWM")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = rss_mb(os.getpid())
        t, c = time.perf_counter(), time.process_time()
        outcome = await execute_job(rt.bot, name, name, at)
        return web.json_response({"seconds": time.perf_counter() - t, "cpu": time.process_time() - c,
                                  "extra_mb": rss_mb(os.getpid(), "VmHWM") - before, "hwm_before_mb": hwm,
                                  "ok": outcome.ok, "result": outcome.result or outcome.error})

    async def info(request: web.Request) -> web.Response:
        return web.json_response({**timing, "checkpoints": writes, "documents": rt.store.stats()["documents"],
                                  "queued": rt.transport.pending()})

    app.router.add_post("/bench/job", job)
    app.router.add_get("/bench/info", info)

    async def main() -> None:
        if os.environ.get("BENCH_STALLS"):
            watch_stalls(asyncio.get_running_loop(), float(os.environ["BENCH_STALLS"]))
        runner, guard = await guarded(app, cfg.server.host, cfg.server.port, cfg.server.read_timeout_seconds,
                                      cfg.server.max_connections)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await guard.close()
        await runner.cleanup()

    _run_loop(main())


def watch_stalls(loop, limit: float) -> None:
    """BENCH_STALLS=0.1: print where the event loop's thread was whenever it did not answer for
    `limit` seconds (a diagnostic: sampled from another thread, the loop is not slowed)."""
    import threading
    import traceback
    main = threading.main_thread().ident

    def watch() -> None:
        while True:
            answered = threading.Event()
            loop.call_soon_threadsafe(answered.set)
            if not answered.wait(limit):
                frames = sys._current_frames()
                me = threading.get_ident()
                # The loop's thread, and the others: a worker that held the GIL is caught just
                # after it let go, which names what held it.
                stack = "".join(f"-- thread {'loop' if t == main else t}:\n" + "".join(traceback.format_stack(f)[-8:])
                                for t, f in frames.items() if t != me)
                t = time.perf_counter()
                answered.wait()
                print(f"loop stalled {limit + time.perf_counter() - t:.2f} s at:\n{stack}", file=sys.stderr, flush=True)
            time.sleep(0.02)
    threading.Thread(target=watch, daemon=True).start()


# --- measuring ---------------------------------------------------------------------------------

def rss_mb(pid: int, field: str = "VmRSS") -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


class Load:
    """Callbacks at a fixed rate (open loop: the next one goes out on time whatever the last one
    does), each a text report from one of the size's people, with its latency and send time."""

    def __init__(self, port: int, people: list[str], rate: float, clock: ShiftedClock):
        self.port, self.people, self.rate, self.clock = port, people, rate, clock
        self.samples: list[tuple[float, float, bool]] = []  # (sent at, seconds, acknowledged)
        self.n = 0
        self._task: asyncio.Task | None = None

    def body(self) -> tuple[str, bytes]:
        i = self.n
        self.n += 1
        uid = self.people[(i * 7919) % len(self.people)]
        now = int(self.clock.now().timestamp())
        xml = (f"<xml><ToUserName><![CDATA[{street.CORP_ID}]]></ToUserName><FromUserName><![CDATA[{uid}]]>"
               f"</FromUserName><CreateTime>{now}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
               f"<Content><![CDATA[清理小广告{i % 40 + 1}处,入户走访{i % 9 + 1}户]]></Content>"
               f"<MsgId>{80_000_000 + i}</MsgId><AgentID>{street.AGENT_ID}</AgentID></xml>")
        enc = crypto.encrypt(street.AES_KEY, street.CORP_ID, xml)
        sig = crypto.signature(street.TOKEN, str(now), str(i), enc)
        return (f"msg_signature={sig}&timestamp={now}&nonce={i}",
                crypto.callback_envelope(street.CORP_ID, street.AGENT_ID, enc).encode())

    async def _one(self, session: aiohttp.ClientSession, q: str, body: bytes) -> None:
        t = time.perf_counter()
        try:
            async with session.post(f"http://127.0.0.1:{self.port}/wecom/callback?{q}", data=body) as r:
                await r.read()
                ok = r.status == 200
        except aiohttp.ClientError:
            ok = False
        self.samples.append((t, time.perf_counter() - t, ok))

    async def _run(self) -> None:
        tasks = set()
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as s:
            t0 = time.perf_counter()
            k = 0
            try:
                while True:
                    q, body = self.body()
                    task = asyncio.create_task(self._one(s, q, body))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                    k += 1
                    await asyncio.sleep(max(0.0, t0 + k / self.rate - time.perf_counter()))
            finally:
                if tasks:
                    await asyncio.wait(tasks, timeout=30)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    def window(self, a: float, b: float, during: list | None = None, inside: bool = True) -> dict:
        """Latencies of the callbacks sent between a and b (and, with `during`, of those whose
        time in flight overlapped one of these intervals, or with inside=False, none)."""
        def kept(s) -> bool:
            return a <= s[0] <= b and (during is None or inside == any(
                s[0] <= end and s[0] + s[1] >= start for start, end in during))
        lat = sorted(s[1] for s in self.samples if kept(s))
        if not lat:
            return {"n": 0, "p50": 0.0, "p99": 0.0, "max": 0.0, "errors": 0}
        pick = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000  # noqa: E731
        return {"n": len(lat), "p50": pick(0.5), "p99": pick(0.99), "max": lat[-1] * 1000,
                "errors": sum(1 for s in self.samples if kept(s) and not s[2])}


async def measure(name: str, folder: Path, weeks: int, rate: float, cores: dict, jobs: list[str],
                  built: Path | None = None, build_only: bool = False) -> dict:
    grids, per_grid = SIZES[name]
    port, wport = free_port(), free_port()
    config = write_config(folder, grids, per_grid, port, wport)
    from bot.config_loading import load_config
    cfg = load_config(config)
    res: dict = {"size": name, "grids": grids, "people": grids * per_grid, "weeks": weeks}
    t = time.perf_counter()
    if built is not None:  # a data folder built by an earlier --keep run: copied, so it stays as built
        shutil.copytree(built / name / "data", folder / "data")
        counts = json.loads((built / name / "counts.json").read_text())
    else:
        counts = await build_data(folder, cfg, weeks)
        (folder / "counts.json").write_text(json.dumps(counts))
    res["build_s"] = time.perf_counter() - t
    res["docs"] = counts
    res["disk_mb"] = disk_bytes(folder / "data") / 2**20
    print(f"[{name}] {grids} grids, {grids * per_grid} people, {weeks} weeks: "
          f"{sum(counts.values()):,} documents ({', '.join(f'{k} {v:,}' for k, v in counts.items())}), "
          f"{res['disk_mb']:.0f} MB on disk, {'copied' if built else 'built'} in {res['build_s']:.0f} s", flush=True)
    if build_only:
        return res

    procs = []
    try:
        procs.append(start([sys.executable, str(Path(__file__).with_name("wecom_standin.py")), str(wport),
                            street.CORP_ID, street.SECRET, str(street.AGENT_ID)], folder, cores["rest"]))
        await wait_ready(wport, timeout=STARTUP_WAIT_S, path="/count")
        # The bot's stderr is kept: its last lines are printed at the end.
        bot = start([sys.executable, __file__, "--serve", str(config)], folder, cores["server"], stderr=subprocess.PIPE)
        procs.append(bot)
        res["startup_s"] = await wait_ready(port, timeout=STARTUP_WAIT_S, path="/wecom/callback")
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{port}/bench/info") as r:
                info = await r.json()
        res["load_s"] = info.get("load_s")
        await wait_idle(bot.pid, timeout=300, every=0.5, share=0.04)
        res["rss_start_mb"] = rss_mb(bot.pid)
        print(f"[{name}] start-up {res['startup_s']:.1f} s (store load {res['load_s']:.1f} s), "
              f"RSS {res['rss_start_mb']:.0f} MB", flush=True)

        people = [p.userid for p in cfg.people if p.role in ("member", "grid_leader")]
        load = Load(port, people, rate, ShiftedClock(TZ, NOW))
        load.start()
        await asyncio.sleep(5)  # warm-up: the first callbacks read this week's message ids
        a = time.perf_counter()
        await asyncio.sleep(20)  # two checkpoints at least (every 10 s)
        res["baseline"] = load.window(a, time.perf_counter())
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{port}/bench/info") as r:
                writes = [w for w in (await r.json())["checkpoints"] if w[1] >= a]
        res["baseline_checkpoints"] = {
            "writes": len(writes), "write_s_max": max((e - b for b, e in writes), default=0.0),
            "during": load.window(a, time.perf_counter(), during=writes),
            "outside": load.window(a, time.perf_counter(), during=writes, inside=False)}
        res["jobs"] = {}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3600)) as s:
            for job, at in JOBS:
                if job not in jobs:
                    continue
                a = time.perf_counter()
                async with s.post(f"http://127.0.0.1:{port}/bench/job",
                                  params={"name": job, "at": at.isoformat()}) as r:
                    out = await r.json()
                b = time.perf_counter()
                await asyncio.sleep(2)
                out.update(load.window(a, b + 2))
                res["jobs"][job] = out
                print(f"[{name}] {job:<17} {out['seconds']:7.2f} s ({out['cpu']:.1f} s CPU)   callbacks meanwhile: p50 {out['p50']:6.1f} ms  "
                      f"p99 {out['p99']:7.1f} ms  max {out['max']:7.1f} ms  ({out['n']} callbacks, "
                      f"{out['errors']} errors), extra memory {out['extra_mb']:.0f} MB — {out['result']}", flush=True)
                await asyncio.sleep(3)
        await load.stop()
        res["rss_peak_mb"] = max([rss_mb(bot.pid, "VmHWM")] + [j["hwm_before_mb"] for j in res["jobs"].values()])
        b = res["baseline"]
        print(f"[{name}] no job running: p50 {b['p50']:.1f} ms  p99 {b['p99']:.1f} ms  max {b['max']:.1f} ms "
              f"({b['n']} callbacks); peak RSS {res['rss_peak_mb']:.0f} MB", flush=True)
        c = res["baseline_checkpoints"]
        print(f"[{name}] meanwhile {c['writes']} checkpoint write(s), the longest {c['write_s_max']:.2f} s; callbacks "
              f"in flight during one: p99 {c['during']['p99']:.1f} ms max {c['during']['max']:.1f} ms "
              f"({c['during']['n']}), during none: p99 {c['outside']['p99']:.1f} ms max {c['outside']['max']:.1f} ms "
              f"({c['outside']['n']})", flush=True)

        for label, args in (("export", ["export", "--week", "2026-W48", "--out", str(folder / "out")]),
                            ("stats", ["stats", "--week", "2026-W48", "--json"])):
            t = time.perf_counter()
            out = subprocess.run([sys.executable, "-m", "bot.cli", *args, "--config", str(config)],
                                 capture_output=True, text=True, cwd=folder)
            res[f"{label}_s"] = time.perf_counter() - t
            if out.returncode != 0:
                print(f"[{name}] gridbot {label} failed: {out.stderr[-2000:]}")
        print(f"[{name}] gridbot export --week {res['export_s']:.1f} s, gridbot stats --week {res['stats_s']:.1f} s "
              f"(beside the running bot)", flush=True)

        # A restart, as after an upgrade: the first start above also settled the old weeks.
        stop(bot, wait=120)
        # The bot's stderr is kept: its last lines are printed at the end.
        bot = start([sys.executable, __file__, "--serve", str(config)], folder, cores["server"], stderr=subprocess.PIPE)
        procs.append(bot)
        res["restart_s"] = await wait_ready(port, timeout=STARTUP_WAIT_S, path="/wecom/callback")
        await wait_idle(bot.pid, timeout=300, every=0.5, share=0.04)
        res["rss_restart_mb"] = rss_mb(bot.pid)
        print(f"[{name}] restart {res['restart_s']:.1f} s, RSS {res['rss_restart_mb']:.0f} MB", flush=True)
    finally:
        for p in reversed(procs):
            stop(p, wait=120)
        err = procs[-1].stderr.read().decode(errors="replace") if procs and procs[-1].stderr else ""
        if err.strip():
            print(f"[{name}] bot stderr: {err[-3000:]}")
    return res


def report(results: list[dict]) -> bool:
    print("\n| 规模 | 网格 / 人 | 周数 | 文档数 | 磁盘 | 启动(首次/重启) | 内存(启动/峰值) | 无任务时回调 p99 | 任务期间回调最差 p99 / 最大 | 最慢任务 | 周报 | 导出 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    ok = True
    for r in results:
        jobs = r["jobs"]
        worst_p99 = max((j["p99"] for j in jobs.values()), default=0)
        worst_max = max((j["max"] for j in jobs.values()), default=0)
        slow = max(jobs.items(), key=lambda kv: kv[1]["seconds"]) if jobs else ("—", {"seconds": 0})
        digest = jobs.get("weekly_digest", {}).get("seconds")
        print(f"| {SIZE_ZH[r['size']]} | {r['grids']} / {r['people']:,} | {r['weeks']} | {sum(r['docs'].values()):,} | "
              f"{r['disk_mb']:.0f} MB | {r['startup_s']:.1f} / {r.get('restart_s', 0):.1f} s | "
              f"{r['rss_start_mb']:.0f} / {r['rss_peak_mb']:.0f} MB | "
              f"{r['baseline']['p99']:.0f} ms | {worst_p99:.0f} / {worst_max:.0f} ms | {slow[0]} {slow[1]['seconds']:.1f} s | "
              f"{'—' if digest is None else f'{digest:.1f} s'} | {r['export_s']:.1f} s |")
        ok = (ok and worst_p99 < P99_TARGET_MS and worst_max < MAX_TARGET_MS
              and r.get("restart_s", r["startup_s"]) < STARTUP_TARGET_S)
    print(f"\ntargets (p99 < {P99_TARGET_MS} ms, max < {MAX_TARGET_MS} ms while jobs fire, start-up < "
          f"{STARTUP_TARGET_S} s): {'met' if ok else 'MISSED'}; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs")
    return ok


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=["street", "big"], choices=list(SIZES))
    ap.add_argument("--weeks", type=int, default=15, help="weeks of history (the last two busy)")
    ap.add_argument("--rate", type=float, default=50, help="callbacks a second during the measurement")
    ap.add_argument("--jobs", nargs="+", default=[j for j, _ in JOBS], help="which jobs to fire")
    ap.add_argument("--keep", help="keep the data folders here")
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--built", help="copy the data folders from an earlier --keep run instead of building them")
    ap.add_argument("--build-only", action="store_true", help="build the data folders (with --keep) and stop")
    ap.add_argument("--no-pin", action="store_true")
    a = ap.parse_args()
    if a.built and a.keep and Path(a.built).resolve() == Path(a.keep).resolve():
        ap.error("--keep would overwrite the folders --built copies from: give it another folder")
    cores = {"server": None, "rest": None}
    avail = sorted(os.sched_getaffinity(0))
    if not a.no_pin and len(avail) >= 2:
        cores = {"server": {avail[0]}, "rest": {avail[1]}}
        os.sched_setaffinity(0, cores["rest"])
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; "
          f"{'bot pinned to one core, load and stand-in to another' if cores['server'] else 'not pinned'}; "
          f"{a.rate:g} callbacks/s", flush=True)
    results = []
    root = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="gridbot-scale-"))
    try:
        for name in a.sizes:
            folder = root / name
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
            results.append(await measure(name, folder, a.weeks, a.rate, cores, a.jobs,
                                         Path(a.built) if a.built else None, a.build_only))
            if not a.keep:
                shutil.rmtree(folder, ignore_errors=True)
    finally:
        if not a.keep:
            shutil.rmtree(root, ignore_errors=True)
    if a.json:
        Path(a.json).write_text(json.dumps(results, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    if a.build_only:
        return 0
    return 0 if report(results) else 1


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        serve(sys.argv[2])
        sys.exit(0)
    sys.exit(asyncio.run(main()))
