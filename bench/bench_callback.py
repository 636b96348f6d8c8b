"""Callback throughput and latency under load, against a bare aiohttp handler in the same run.

    .venv/bin/python bench/bench_callback.py [--n 5000] [--rounds 5] [--concurrency 32] [--no-pin]
    .venv/bin/python bench/bench_callback.py --grow [--weeks 52] [--per-week 1150]   (bench/callback_growth.py)
    .venv/bin/python bench/bench_callback.py --postgres   (also (5): gridbot on PostgreSQL)

Servers under test: (1) a bare aiohttp handler (the baseline), (2) gridbot in live mode against a
WeCom stand-in in another process, on an empty store, (3) the same on a store that already holds
a year of a street's history (60,000 records over 52 weeks), and (4) gridbot serving its own
emulator, as `make run` does, and with --postgres (5) gridbot in live mode on an empty PostgreSQL
store (a throwaway server started here as the tests start theirs, with the server's own fsync on,
as in production). Every message is a real report: the bot parses, stores and answers
it (one message/send each). Every 200 must be a stored message (checked after each gridbot
stops), and in live mode every message must get its reply. Also times `gridbot stats --week` and
start-up on the big store. Exits non-zero when a target is missed.

How it stays fair on a small, shared machine:
- Pinning. With 2 or more cores, every server under test (the bare handler and gridbot alike) is
  pinned to core 0, the load generator (this process) and the WeCom stand-in to core 1, so each
  server gets the same one core (`--no-pin` turns this off).
- A light WeCom stand-in (bench/wecom_standin.py): real HTTP and real JSON answers (token and
  agentid checked), but no chat log or page, because real WeCom's CPU is not on the bot's machine.
  The bot runs unchanged, from the same `gridbot run` as in production.
- Interleaving. The machine's speed drifts (other work, the host); all servers stay up and each
  of `--rounds` rounds fires n/rounds messages at each in turn, after the previous one went idle
  (all replies received, no CPU in use), so drift hits all of them alike. The ratios against the
  bare handler are taken round by round (each gridbot round against the bare round just before
  it, on the same machine state) and the median of them is the figure checked against the
  target; the ratio of the whole runs' rates is printed beside it.
- Two generators. The issue's method is an async client: aiohttp's ClientSession with 32
  connections ("aiohttp client"). On one core it tops out near the bare handler's speed, so that
  baseline measures the generator as much as the handler. A raw-socket generator (HTTP/1.1
  keep-alive, prebuilt requests) costs a fraction of it and lets the bare handler run flat out;
  both baselines are printed, and the ratio against each.

"msg/s" is acknowledged callbacks per second of load (the bare handler gets three times as many
messages, so its rounds last about as long); "answered" counts until the stand-in had received
every reply, so background work cannot hide behind the acknowledgements; "server CPU" is the
server process's CPU time per message, from the start of a round until it is idle again, which
does not depend on the generator.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from statistics import median

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import street  # noqa: E402
from bot.clock import iso_week  # noqa: E402
from bot.emulator import cipher as crypto  # noqa: E402
from bot.store import Store  # noqa: E402

BARE = """
import sys
from aiohttp import web
try:
    import uvloop  # same event loop as gridbot run, for a fair baseline
    uvloop.install()
except ImportError:
    pass
async def h(request):
    await request.read()
    return web.Response(text="")
app = web.Application()
app.router.add_post("/wecom/callback", h)
app.router.add_get("/emulator/ui/state", lambda r: web.Response(text="ok"))
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""

# Cores for the servers under test and for everything else (generator, WeCom stand-in).
PIN: dict[str, set[int] | None] = {"server": None, "rest": None}


def pin_cores(enabled: bool) -> str:
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if not enabled or len(cores) < 2:
        return "not pinned"
    PIN["server"], PIN["rest"] = {cores[0]}, {cores[1]}
    os.sched_setaffinity(0, PIN["rest"])
    return f"servers under test pinned to core {cores[0]}, load generator and WeCom stand-in to core {cores[1]}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_ready(port: int, timeout: float = 60, path: str = "/emulator/ui/state") -> float:
    t0 = time.monotonic()
    async with aiohttp.ClientSession() as s:
        while time.monotonic() - t0 < timeout:
            try:
                async with s.get(f"http://127.0.0.1:{port}{path}") as r:
                    if r.status < 500:
                        return time.monotonic() - t0
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise SystemExit("server did not start")


def bodies(n: int, offset: int, at: int | None = None,
           people: list[str] | None = None) -> list[tuple[str, str, bytes]]:
    """`n` reports from the street's people (or these userids), CreateTime `at` (now by default)."""
    ppl = people or [p[0] for p in street.people()]
    out = []
    now = at or int(time.time())
    for i in range(n):
        uid = ppl[i % len(ppl)]
        msgid = str(offset + i)
        xml = (f"<xml><ToUserName><![CDATA[{street.CORP_ID}]]></ToUserName><FromUserName><![CDATA[{uid}]]>"
               f"</FromUserName><CreateTime>{now}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
               f"<Content><![CDATA[清理小广告{i % 40 + 1}处,入户走访{i % 9 + 1}户]]></Content><MsgId>{msgid}</MsgId>"
               f"<AgentID>{street.AGENT_ID}</AgentID></xml>")
        enc = crypto.encrypt(street.AES_KEY, street.CORP_ID, xml)
        ts, nonce = str(now), str(i)
        sig = crypto.signature(street.TOKEN, ts, nonce, enc)
        out.append((msgid, f"msg_signature={sig}&timestamp={ts}&nonce={nonce}",
                    crypto.callback_envelope(street.CORP_ID, street.AGENT_ID, enc).encode()))
    return out


# --- load generators: both return (wall seconds, latencies, acked msgids, errors) -------------
async def aio_load(port: int | list[int], reqs, concurrency: int):
    """With several ports, each request goes to the next one in turn, as a round-robin load
    balancer in front of several workers would send it."""
    lat: list[float] = []
    acked: list[str] = []
    errors = 0
    ports = [port] if isinstance(port, int) else port
    it = iter((f"http://127.0.0.1:{ports[i % len(ports)]}/wecom/callback?{q}", msgid, body)
              for i, (msgid, q, body) in enumerate(reqs))
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn) as s:
        async def worker():
            nonlocal errors
            for url, msgid, body in it:
                t = time.perf_counter()
                try:
                    async with s.post(url, data=body) as r:
                        await r.read()
                        ok = r.status == 200
                except aiohttp.ClientError:
                    ok = False
                lat.append(time.perf_counter() - t)
                if ok:
                    acked.append(msgid)
                else:
                    errors += 1
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - t0, lat, acked, errors


async def raw_load(port: int, reqs, concurrency: int):
    """HTTP/1.1 keep-alive over plain sockets with prebuilt requests: cheap enough that the
    server, not the generator, sets the pace."""
    lat: list[float] = []
    acked: list[str] = []
    errors = 0
    it = iter([(msgid, f"POST /wecom/callback?{q} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                       f"Content-Type: text/xml\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
               for msgid, q, body in reqs])
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(concurrency)]

    async def worker(reader, writer):
        nonlocal errors
        try:
            for msgid, req in it:
                t = time.perf_counter()
                writer.write(req)
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if length:
                    await reader.readexactly(length)
                lat.append(time.perf_counter() - t)
                if head[9:12] == b"200":
                    acked.append(msgid)
                else:
                    errors += 1
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(r, w) for r, w in conns))
    return time.perf_counter() - t0, lat, acked, errors


# --- processes --------------------------------------------------------------------------------
def start(args: list[str], cwd: Path, cores: set[int] | None, stderr=subprocess.DEVNULL) -> subprocess.Popen:
    p = subprocess.Popen(args, cwd=cwd, stdout=subprocess.DEVNULL, stderr=stderr)
    if cores:
        os.sched_setaffinity(p.pid, cores)  # threads started later inherit it
    return p


def stop(p: subprocess.Popen, wait: float = 60) -> None:
    if p.poll() is not None:
        return
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(wait)
    except subprocess.TimeoutExpired:
        p.kill()


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def wait_idle(pid: int, timeout: float = 60, every: float = 0.2, share: float = 0.03) -> None:
    """Until the process used under `share` of a core over `every` seconds: its background work
    is done and will not slow the next server's round."""
    deadline = time.monotonic() + timeout
    last = cpu_seconds(pid)
    while time.monotonic() < deadline:
        await asyncio.sleep(every)
        now = cpu_seconds(pid)
        if now - last < share * every:
            return
        last = now


class Target:
    """One server under test and what was measured against it."""

    def __init__(self, name: str, proc: subprocess.Popen, port: int, *, data_dir: Path | None = None,
                 wecom_port: int | None = None, dsn: str | None = None):
        self.name, self.proc, self.port, self.dsn = name, proc, port, dsn
        self.data_dir, self.wecom_port = data_dir, wecom_port
        self.wall = 0.0
        self.answer_wall = 0.0
        self.lat: list[float] = []
        self.acked: list[str] = []
        self.errors = 0
        self.sent = 0
        self.unanswered = 0
        self.cpu = 0.0
        self.lost: int | None = None
        self.round_rates: list[float] = []

    async def replies(self) -> int:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{self.wecom_port}/count") as r:
                return (await r.json())["message/send"]

    async def fire(self, gen, reqs, concurrency: int) -> None:
        before = await self.replies() if self.wecom_port else 0
        cpu0 = cpu_seconds(self.proc.pid)
        t0 = time.perf_counter()
        wall, lat, acked, errors = await gen(self.port, reqs, concurrency)
        self.round_rates.append(len(reqs) / wall)
        self.wall += wall
        self.lat += lat
        self.acked += acked
        self.errors += errors
        self.sent += len(reqs)
        if self.wecom_port:
            # Every message is a report that gets one reply: wait for all of them.
            deadline = time.perf_counter() + 120
            while (got := await self.replies() - before) < len(acked) and time.perf_counter() < deadline:
                await asyncio.sleep(0.01)
            self.answer_wall += time.perf_counter() - t0
            self.unanswered += max(0, len(acked) - got)
        await wait_idle(self.proc.pid)
        self.cpu += cpu_seconds(self.proc.pid) - cpu0

    def result(self) -> dict:
        lat = sorted(self.lat)
        pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000  # noqa: E731
        return {"rate": self.sent / self.wall, "p50_ms": pct(0.50), "p99_ms": pct(0.99), "errors": self.errors,
                "cpu_ms": self.cpu / self.sent * 1000,
                "lost": self.lost, "answered_rate": self.sent / self.answer_wall if self.answer_wall else None,
                "unanswered": self.unanswered}

    def stop(self) -> None:
        stop(self.proc)
        if self.data_dir is not None:
            if self.dsn:
                from bot.store_pg import PgStore
                store = PgStore(self.data_dir, self.dsn, readonly=True)
            else:
                store = Store(self.data_dir, readonly=True)
            store.load()
            inbox = {d["id"] for d in store.docs("inbox")}
            self.lost = sum(1 for m in self.acked if m not in inbox)


async def start_gridbot(folder: Path, name: str, *, live: bool, procs: list,
                        dsn: str | None = None) -> tuple[Target, float]:
    port = free_port()
    wport = None
    if live:
        wport = free_port()
        procs.append(start([sys.executable, str(Path(__file__).with_name("wecom_standin.py")), str(wport),
                            street.CORP_ID, street.SECRET, str(street.AGENT_ID)], folder, PIN["rest"]))
        await wait_ready(wport, path="/count")
        config = street.write_config(folder, port, wecom_at=f"http://127.0.0.1:{wport}/cgi-bin/")
    else:
        config = street.write_config(folder, port)
    if dsn:
        with config.open("a", encoding="utf-8") as f:
            f.write(f'\n[store]\nbackend = "postgres"\ndsn = "{dsn}"\n')
    p = start([sys.executable, "-m", "bot.cli", "run", "--config", str(config)], folder, PIN["server"])
    procs.append(p)
    startup = await wait_ready(port, path="/wecom/callback")
    target = Target(name, p, port, data_dir=folder / "data", wecom_port=wport, dsn=dsn)
    await wait_idle(p.pid)
    return target, startup


def show(name: str, r: dict) -> None:
    line = (f"{name:<45} {r['rate']:5.0f} msg/s  p50 {r['p50_ms']:5.1f} ms  p99 {r['p99_ms']:5.1f} ms"
            f"  server CPU {r['cpu_ms']:.3f} ms/msg  errors {r['errors']}")
    if r.get("lost") is not None:
        line += f"  lost {r['lost']}"
    if r.get("answered_rate"):
        line += f"  answered {r['answered_rate']:.0f} msg/s ({r['unanswered']} not)"
    print(line)


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000, help="messages per server and generator")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--no-pin", action="store_true", help="let the OS place the processes on cores")
    ap.add_argument("--grow", action="store_true", help="only the months-long run: history grown through the "
                    "callback in one process vs loaded at start vs fresh (bench/callback_growth.py)")
    ap.add_argument("--weeks", type=int, default=52, help="--grow: weeks of history")
    ap.add_argument("--per-week", type=int, default=1150, help="--grow: reports per week")
    ap.add_argument("--keep", help="--grow: work in this (new) folder and keep it, logs included")
    ap.add_argument("--postgres", action="store_true", help="also gridbot on PostgreSQL (a throwaway server)")
    a = ap.parse_args()
    pinning = pin_cores(not a.no_pin)
    if a.grow:
        import callback_growth
        print(f"machine: {os.cpu_count()} cores; {pinning}")
        return await callback_growth.run(a)
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; {a.n} messages per server "
          f"in {a.rounds} interleaved rounds, concurrency {a.concurrency}; {pinning}")

    procs: list[subprocess.Popen] = []
    pg_server = None
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for d in ("empty", "year", "inproc", "pg"):
            (tmp / d).mkdir()
        t = time.perf_counter()
        n_hist = await street.fill_history(tmp / "year" / "data")
        print(f"generated {n_hist} history records over 52 weeks in {time.perf_counter() - t:.1f} s")
        try:
            bport = free_port()
            bp = start([sys.executable, "-c", BARE, str(bport)], tmp, PIN["server"])
            procs.append(bp)
            await wait_ready(bport)
            bare_aio, bare_raw = Target("bare aiohttp handler", bp, bport), Target("bare", bp, bport)
            empty, _ = await start_gridbot(tmp / "empty", "live, empty store", live=True, procs=procs)
            empty_raw = Target("live, empty store (raw)", empty.proc, empty.port, wecom_port=empty.wecom_port)
            year, startup = await start_gridbot(tmp / "year", "live, a year of history", live=True, procs=procs)
            inproc, _ = await start_gridbot(tmp / "inproc", "in-process emulator", live=False, procs=procs)
            plan = [(bare_aio, aio_load), (bare_raw, raw_load), (empty, aio_load), (empty_raw, raw_load),
                    (year, aio_load), (inproc, aio_load)]
            if a.postgres:
                from tests.support.postgres import PgServer
                pg_server = await asyncio.to_thread(PgServer.start, True)  # it runs a loop of its own
                pg, _ = await start_gridbot(tmp / "pg", "live, PostgreSQL", live=True, procs=procs,
                                            dsn=await asyncio.to_thread(pg_server.new_schema))
                plan.append((pg, aio_load))
            for i, (target, _) in enumerate(plan):
                # The bare handler is several times faster: more messages, so its rounds last
                # about as long as gridbot's and a hiccup weighs as little.
                n = a.n * (3 if target.proc is bp else 1) // a.rounds * a.rounds
                target.reqs = bodies(n, 10_000_000 * (i + 1))
            for r in range(a.rounds):
                for target, gen in plan:
                    per = len(target.reqs) // a.rounds
                    await target.fire(gen, target.reqs[r * per:(r + 1) * per], a.concurrency)
            empty.acked += empty_raw.acked  # the same bot: its store must hold both
            for target in (empty, year, inproc) + ((pg,) if a.postgres else ()):
                target.stop()
        finally:
            for p in reversed(procs):
                if p.poll() is None:
                    stop(p)
            if pg_server is not None:
                pg_server.stop()

        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "bot.cli", "stats", "--json", "--week",
                              iso_week(date.today()), "--config", str(tmp / "year" / "config.toml")],
                             capture_output=True, text=True, cwd=tmp / "year")
        stats_s = time.perf_counter() - t
        assert out.returncode == 0, out.stderr
        week_reports = json.loads(out.stdout)["reports"]

    res = {k: t.result() for k, t in [("bare_aio", bare_aio), ("bare_raw", bare_raw), ("empty", empty),
                                       ("empty_raw", empty_raw), ("year", year), ("inproc", inproc)]}
    show("bare aiohttp handler, aiohttp client", res["bare_aio"])
    show("bare aiohttp handler, raw-socket generator", res["bare_raw"])
    show("gridbot live mode, empty store", res["empty"])
    show("gridbot live mode, empty store, raw generator", res["empty_raw"])
    show("gridbot live mode, a year of history", res["year"])
    show("gridbot + in-process emulator", res["inproc"])
    print(f"gridbot stats --week on the year's store: {stats_s:.2f} s ({week_reports} reports that week)")
    print(f"start-up on that store: {startup:.2f} s")
    if a.postgres:
        res["pg"] = pg.result()
        show("gridbot live mode, empty PostgreSQL store", res["pg"])
        print(f"PostgreSQL vs bare handler: "
              f"{median(g / b for g, b in zip(pg.round_rates, bare_aio.round_rates)):.2f}x, vs the file store: "
              f"{median(g / f for g, f in zip(pg.round_rates, empty.round_rates)):.2f}x (medians of the rounds)")

    ratio_bare = median(g / b for g, b in zip(empty.round_rates, bare_aio.round_rates))
    ratio_raw = median(g / b for g, b in zip(empty_raw.round_rates, bare_raw.round_rates))
    whole_bare = res["empty"]["rate"] / res["bare_aio"]["rate"]
    ratio_cpu = res["bare_raw"]["cpu_ms"] / res["empty"]["cpu_ms"]
    ratio_flat = res["year"]["rate"] / res["empty"]["rate"]
    print(f"\nrate vs bare handler, same aiohttp-client generator: {ratio_bare:.2f}x (target >= 0.25x; "
          f"median of {len(empty.round_rates)} rounds: "
          f"{' '.join(f'{g / b:.2f}' for g, b in zip(empty.round_rates, bare_aio.round_rates))}; "
          f"whole runs {whole_bare:.2f}x)")
    print(f"rate vs bare handler flat out, raw-socket generator: {ratio_raw:.2f}x; "
          f"bare handler's CPU per message / gridbot's: {ratio_cpu:.2f}x")
    print(f"rate with a year of history vs empty: {ratio_flat:.2f}x (target >= 0.8x); "
          f"with the emulator in-process vs live: {res['inproc']['rate'] / res['empty']['rate']:.2f}x")
    live = [res["empty"], res["year"]]
    ok = (ratio_bare >= 0.25 and ratio_flat >= 0.8 and all(r["p99_ms"] < 100 for r in live)
          and all(r["lost"] == 0 for r in (res["empty"], res["year"], res["inproc"]))
          and all(r["unanswered"] == 0 for r in live + [res["empty_raw"]])
          and all(r["errors"] == 0 for r in res.values()) and stats_s < 2 and startup < 3)
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        import uvloop  # the generator on the same loop as the servers
    except ImportError:
        sys.exit(asyncio.run(main()))
    sys.exit(uvloop.run(main()))
