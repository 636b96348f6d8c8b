"""Memory under a hostile flood: thousands of bad callbacks, the server's RSS before and after.

    .venv/bin/python bench/bench_hostile.py [--waves 5] [--per-wave 2000] [--concurrency 16]

Fires waves of hostile requests at gridbot (live mode, the benchmark street, the WeCom stand-in
of bench_callback.py) and, in the same run, the same waves at the bare aiohttp handler: no query
string, garbage bytes, XXE, billion laughs, 100,000-deep nested XML, a valid signature over
garbage ciphertext, a message encrypted for another corp id, a bad message signature, a bad
echostr signature (GET), bodies just over the 1 MiB cap, and in every wave a few 20 MB bodies,
with and without Content-Length. Servers are pinned as in bench_callback.py.

Prints each server's resident memory (RSS) after start-up and after each wave. Targets: every
gridbot answer is a 4xx (a 20 MB upload the server cuts short counts as refused), nothing is
stored, every kind answered with p99 under 100 ms (20 MB uploads aside), and memory is bounded: RSS after the last wave
is within 20 MB of RSS after the first (the first wave warms allocator pools and caches).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import street  # noqa: E402
from bench_callback import BARE, PIN, free_port, pin_cores, start, start_gridbot, stop, wait_idle, wait_ready  # noqa: E402
from bot.emulator import cipher as crypto  # noqa: E402
from bot.store import Store  # noqa: E402

BIG = 20 * 1024 * 1024
MAX_GROWTH_MB = 20


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def signed(encrypted: str, nonce: str) -> str:
    ts = str(int(time.time()))
    return f"msg_signature={crypto.signature(street.TOKEN, ts, nonce, encrypted)}&timestamp={ts}&nonce={nonce}"


def valid_message(i: int, corp_id: str = street.CORP_ID) -> str:
    xml = (f"<xml><ToUserName><![CDATA[{street.CORP_ID}]]></ToUserName><FromUserName><![CDATA[u0101]]>"
           f"</FromUserName><CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
           f"<Content><![CDATA[清理小广告{i}处]]></Content><MsgId>{90_000_000 + i}</MsgId>"
           f"<AgentID>{street.AGENT_ID}</AgentID></xml>")
    return crypto.encrypt(street.AES_KEY, corp_id, xml)


LAUGHS = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
          + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10))
          + ']><xml><Encrypt>&lol9;</Encrypt></xml>')
XXE = ('<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
       '<xml><ToUserName>x</ToUserName><Encrypt>&xxe;</Encrypt></xml>')
NESTED = "<xml>" + "<a>" * 100_000 + "</a>" * 100_000 + "</xml>"


def hostile(kind: str, i: int, rnd: random.Random) -> tuple[str, str, str, bytes | None]:
    """(kind, method, query, body) of one hostile request."""
    nonce = str(i)
    if kind == "no query string":
        return kind, "POST", "", crypto.callback_envelope(street.CORP_ID, street.AGENT_ID, valid_message(i)).encode()
    if kind == "garbage bytes":
        return kind, "POST", signed("x", nonce), rnd.randbytes(rnd.randrange(1, 4096))
    if kind == "XXE":
        return kind, "POST", signed("x", nonce), XXE.encode()
    if kind == "billion laughs":
        return kind, "POST", signed("x", nonce), LAUGHS.encode()
    if kind == "deeply nested XML":
        return kind, "POST", signed("x", nonce), NESTED.encode()
    if kind == "signed garbage ciphertext":
        enc = base64.b64encode(rnd.randbytes(rnd.randrange(1, 64) * 16)).decode()
        return kind, "POST", signed(enc, nonce), crypto.callback_envelope(street.CORP_ID, street.AGENT_ID, enc).encode()
    if kind == "wrong corp id":
        enc = valid_message(i, corp_id="wwsomeoneelse0001")
        return kind, "POST", signed(enc, nonce), crypto.callback_envelope(street.CORP_ID, street.AGENT_ID, enc).encode()
    if kind == "bad signature":
        enc = valid_message(i)
        q = signed(enc, nonce).replace("msg_signature=", "msg_signature=0")
        return kind, "POST", q, crypto.callback_envelope(street.CORP_ID, street.AGENT_ID, enc).encode()
    if kind == "bad echostr signature":
        echo = crypto.encrypt(street.AES_KEY, street.CORP_ID, f"echo{i}")
        return kind, "GET", signed(echo + "x", nonce) + f"&echostr={echo}", None
    # just over the callback cap
    return kind, "POST", signed("x", nonce), b"<xml>" + b"a" * (1024 * 1024) + b"</xml>"


KINDS = ["no query string", "garbage bytes", "XXE", "billion laughs", "signed garbage ciphertext",
         "wrong corp id", "bad signature", "bad echostr signature"]
# Heavier kinds, a fixed number per wave: each moves 1 MiB or makes the parser work hard.
FEW = {"deeply nested XML": 10, "just over 1 MiB": 40}


async def big_body(chunked: bool):
    async def gen():
        chunk = b"A" * 65536
        for _ in range(BIG // len(chunk)):
            yield chunk
    return gen() if chunked else b"A" * BIG


async def wave(port: int, reqs, concurrency: int) -> tuple[collections.Counter, dict[str, list[float]]]:
    outcomes: collections.Counter = collections.Counter()
    lat: dict[str, list[float]] = collections.defaultdict(list)
    it = iter(reqs)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as s:
        async def worker():
            for kind, method, q, body in it:
                url = f"http://127.0.0.1:{port}/wecom/callback" + (f"?{q}" if q else "")
                t = time.perf_counter()
                try:
                    if kind.startswith("20 MB"):
                        body = await big_body(chunked="chunked" in kind)
                    async with s.request(method, url, data=body) as r:
                        await r.read()
                        outcomes[(kind, r.status)] += 1
                except (aiohttp.ClientError, ConnectionError):
                    outcomes[(kind, "cut short")] += 1
                lat[kind].append(time.perf_counter() - t)
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return outcomes, lat


def refused(status) -> bool:
    return status == "cut short" or (isinstance(status, int) and 400 <= status < 500)


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--waves", type=int, default=5)
    ap.add_argument("--per-wave", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=16)
    a = ap.parse_args()
    pinning = pin_cores(True)
    rnd = random.Random(7)
    waves = []
    for w in range(a.waves):
        reqs = [hostile(KINDS[i % len(KINDS)], w * a.per_wave + i, rnd) for i in range(a.per_wave)]
        reqs += [hostile(kind, i, rnd) for kind, n in FEW.items() for i in range(n)]
        reqs += [("20 MB, Content-Length", "POST", signed("x", "big"), None),
                 ("20 MB, chunked", "POST", signed("x", "big"), None)] * 2
        rnd.shuffle(reqs)
        waves.append(reqs)
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; {a.waves} waves of {len(waves[0])} "
          f"hostile requests ({a.per_wave} small, {sum(FEW.values())} heavy, 4 of 20 MB), "
          f"concurrency {a.concurrency}; {pinning}")

    procs: list[subprocess.Popen] = []
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        try:
            bport = free_port()
            bare = start([sys.executable, "-c", BARE, str(bport)], tmp, PIN["server"])
            procs.append(bare)
            await wait_ready(bport)
            (tmp / "bot").mkdir()
            bot, _ = await start_gridbot(tmp / "bot", "gridbot", live=True, procs=procs)
            servers = [("bare aiohttp handler", bare, bport), ("gridbot", bot.proc, bot.port)]
            rss = {name: [rss_mb(p.pid)] for name, p, _ in servers}
            totals = {name: collections.Counter() for name, _, _ in servers}
            lats = {name: collections.defaultdict(list) for name, _, _ in servers}
            t0 = time.perf_counter()
            for reqs in waves:
                for name, p, port in servers:
                    outcomes, lat = await wave(port, reqs, a.concurrency)
                    totals[name] += outcomes
                    for kind, values in lat.items():
                        lats[name][kind] += values
                    await wait_idle(p.pid)
                    rss[name].append(rss_mb(p.pid))
            elapsed = time.perf_counter() - t0
            bot.stop()
            store = Store(tmp / "bot" / "data", readonly=True)
            store.load()
            stored = sum(1 for _ in store.docs("inbox")) + sum(1 for _ in store.docs("reports"))
        finally:
            for p in reversed(procs):
                if p.poll() is None:
                    stop(p)

    print(f"{sum(len(w) for w in waves) * 2} requests in {elapsed:.1f} s\n")
    print("RSS (MB) after start-up, then after each wave:")
    for name in rss:
        growth = rss[name][-1] - rss[name][1]
        print(f"  {name:<22} " + " ".join(f"{m:6.1f}" for m in rss[name])
              + f"   last wave vs first: {growth:+.1f} MB")
    print("\ngridbot's answers by kind, and their latency (p50 / p99):")
    by_kind: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for (kind, status), n in totals["gridbot"].items():
        by_kind[kind][status] += n
    slow = []
    for kind in KINDS + list(FEW) + ["20 MB, Content-Length", "20 MB, chunked"]:
        lat = sorted(lats["gridbot"][kind])
        p50, p99 = lat[len(lat) // 2] * 1000, lat[int(0.99 * (len(lat) - 1))] * 1000
        if p99 >= 100 and not kind.startswith("20 MB"):
            slow.append(kind)
        answers = ", ".join(f"{s}: {n}" for s, n in sorted(by_kind[kind].items(), key=str))
        print(f"  {kind:<26} {answers:<16} {p50:7.1f} / {p99:7.1f} ms")
    bare_statuses = collections.Counter()
    for (_, status), n in totals["bare aiohttp handler"].items():
        bare_statuses[status] += n
    print("bare handler (accepts anything under 1 MiB): " + ", ".join(f"{s}: {n}" for s, n in sorted(bare_statuses.items(), key=str)))
    print(f"records stored by gridbot: {stored}")

    not_4xx = sum(n for (_, status), n in totals["gridbot"].items() if not refused(status))
    growth = rss["gridbot"][-1] - rss["gridbot"][1]
    ok = not_4xx == 0 and stored == 0 and growth < MAX_GROWTH_MB and not slow
    print(f"\nanswers that were not 4xx: {not_4xx}; gridbot RSS growth after the first wave: {growth:+.1f} MB "
          f"(target < {MAX_GROWTH_MB} MB); kinds with p99 over 100 ms: {', '.join(slow) or 'none'}")
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
