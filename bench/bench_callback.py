"""Callback throughput and latency under load, against a bare aiohttp handler in the same run.

    .venv/bin/python bench/bench_callback.py [--n 3000] [--concurrency 32]

Phases: (1) a bare aiohttp handler (the baseline), (2) gridbot serving its own emulator, as
`make run` does, (3) gridbot in live mode with WeCom played by an emulator in another process, on
an empty store, and (4) the same on a store that already holds a year of a street's history
(60,000 records over 52 weeks). Every message is a real report: the bot parses, stores and
answers it. Every 200 must be a stored message (checked after each gridbot phase). Also times
`gridbot stats --week` and start-up on the big store. Exits non-zero when a target is missed.
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
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import street  # noqa: E402
from gridbot.clock import iso_week  # noqa: E402
from gridbot.emulator import crypto  # noqa: E402
from gridbot.store import Store  # noqa: E402

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


def bodies(n: int, offset: int) -> list[tuple[str, str, bytes]]:
    ppl = street.people()
    out = []
    now = int(time.time())
    for i in range(n):
        uid = ppl[i % len(ppl)][0]
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


async def load(port: int, reqs, concurrency: int) -> dict:
    lat: list[float] = []
    acked: list[str] = []
    errors = 0
    it = iter(reqs)
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn) as s:
        async def worker():
            nonlocal errors
            for msgid, q, body in it:
                t = time.perf_counter()
                try:
                    async with s.post(f"http://127.0.0.1:{port}/wecom/callback?{q}", data=body) as r:
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
        wall = time.perf_counter() - t0
    lat.sort()
    pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000  # noqa: E731
    return {"rate": len(reqs) / wall, "p50_ms": pct(0.50), "p99_ms": pct(0.99), "errors": errors, "acked": acked}


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(args, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(p: subprocess.Popen) -> None:
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(60)
    except subprocess.TimeoutExpired:
        p.kill()


def check_stored(data_dir: Path, acked: list[str]) -> int:
    store = Store(data_dir, readonly=True)
    store.load()
    inbox = {d["id"] for d in store.docs("inbox")}
    return sum(1 for m in acked if m not in inbox)


async def gridbot_phase(folder: Path, reqs, concurrency: int, *, separate_wecom: bool) -> tuple[dict, float]:
    """The bot under load. With `separate_wecom` it runs in live mode and WeCom's side (the
    emulator answering message/send) is another process, as in a deployment; otherwise the
    bot serves its own emulator in-process (the `make run` setup)."""
    port = free_port()
    procs = []
    try:
        if separate_wecom:
            wecom_dir = folder / "wecom"
            wecom_dir.mkdir(exist_ok=True)
            wport = free_port()
            wconf = street.write_config(wecom_dir, wport)
            procs.append(start([sys.executable, "-m", "gridbot.cli", "run", "--config", str(wconf)], wecom_dir))
            await wait_ready(wport)
            config = street.write_config(folder, port, wecom_at=f"http://127.0.0.1:{wport}")
        else:
            config = street.write_config(folder, port)
        procs.append(start([sys.executable, "-m", "gridbot.cli", "run", "--config", str(config)], folder))
        startup = await wait_ready(port, path="/wecom/callback")
        res = await load(port, reqs, concurrency)
        await asyncio.sleep(1)
    finally:
        for p in reversed(procs):
            stop(p)
    res["lost"] = check_stored(folder / "data", res["acked"])
    return res, startup


def show(name: str, r: dict) -> None:
    print(f"{name:<34} {r['rate']:8.0f} msg/s   p50 {r['p50_ms']:6.1f} ms   p99 {r['p99_ms']:6.1f} ms   "
          f"errors {r['errors']}" + (f"   lost {r['lost']}" if "lost" in r else ""))


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=32)
    a = ap.parse_args()
    reqs1, reqs2 = bodies(a.n, 10_000_000), bodies(a.n, 20_000_000)
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; {a.n} messages, concurrency {a.concurrency}")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        port = free_port()
        p = start([sys.executable, "-c", BARE, str(port)], tmp)
        await wait_ready(port)
        bare = await load(port, bodies(a.n, 30_000_000), a.concurrency)
        stop(p)
        show("bare aiohttp handler (baseline)", bare)

        inproc_dir = tmp / "inproc"
        inproc_dir.mkdir()
        inproc, _ = await gridbot_phase(inproc_dir, bodies(a.n, 40_000_000), a.concurrency, separate_wecom=False)
        show("gridbot + in-process emulator", inproc)

        empty_dir = tmp / "empty"
        empty_dir.mkdir()
        empty, _ = await gridbot_phase(empty_dir, reqs1, a.concurrency, separate_wecom=True)
        show("gridbot live mode, empty store", empty)

        big_dir = tmp / "year"
        big_dir.mkdir()
        t = time.perf_counter()
        n = await street.fill_history(big_dir / "data")
        print(f"generated {n} history records over 52 weeks in {time.perf_counter() - t:.1f} s")
        big, startup = await gridbot_phase(big_dir, reqs2, a.concurrency, separate_wecom=True)
        show("gridbot live mode, a year of history", big)

        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "gridbot.cli", "stats", "--json", "--week",
                              iso_week(__import__("datetime").date.today()), "--config", str(big_dir / "config.toml")],
                             capture_output=True, text=True, cwd=big_dir)
        stats_s = time.perf_counter() - t
        assert out.returncode == 0, out.stderr
        print(f"gridbot stats --week on that store: {stats_s:.2f} s ({json.loads(out.stdout)['reports']} reports that week)")
        print(f"start-up on that store: {startup:.2f} s")

    ratio_bare = empty["rate"] / bare["rate"]
    ratio_flat = big["rate"] / empty["rate"]
    print(f"\nrate vs bare handler: {ratio_bare:.2f}x (target >= 0.25x); "
          f"with the emulator in-process: {inproc['rate'] / bare['rate']:.2f}x")
    print(f"rate with a year of history vs empty: {ratio_flat:.2f}x (target >= 0.8x)")
    ok = (ratio_bare >= 0.25 and ratio_flat >= 0.8 and empty["p99_ms"] < 100 and big["p99_ms"] < 100
          and empty["lost"] == 0 and big["lost"] == 0 and inproc["lost"] == 0 and stats_s < 2 and startup < 3)
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
