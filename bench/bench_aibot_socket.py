"""The AI bot's two ways in, same run: messages per second over the long connection (WebSocket)
against the AI bot's HTTP callback.

    .venv/bin/python bench/bench_aibot_socket.py [--n 3000] [--rounds 5] [--concurrency 32] [--no-pin]

Two gridbot processes (`gridbot run`, live mode, the bench street of 40 grids and 400 people with
the example's categories), one with `[aibot] mode = "callback"`, one with `mode = "websocket"`.
Every message is a real group report (@网格助手 清理小广告N处,入户走访M户) from a grid member in
their grid's group: decrypted (callback) or read from the socket, deduplicated, journaled,
parsed, stored and answered. A message counts when its answer is back: over the callback, the
passive reply (a finished stream frame, decrypted and checked) of its own POST; over the socket,
the finished stream frame on its req_id, which the gateway acknowledges as WeCom does.
- The callback generator keeps `--concurrency` POSTs in flight (aiohttp client); the socket
  generator keeps as many messages unanswered on the one connection.
- The gateway is a light one in this process (subscribe, pings, acks, the frames counted), as
  WeCom's CPU is not on the bot's machine; the WeCom API stand-in (bench/wecom_standin.py)
  answers whatever the bots send to the API.
- Pinning and interleaving as in bench_callback.py: both bots on one core, the generators, the
  gateway and the stand-ins on the other; rounds alternate between the two ways so the machine's
  drift hits both alike; the ratio is taken round by round (median) and over the whole run.
After the rounds each bot is stopped and its store read: every answered message must be in the
journal once, and no message may be answered twice or not at all.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import street  # noqa: E402
from bench_callback import PIN, cpu_seconds, free_port, pin_cores, start, stop, wait_idle, wait_ready  # noqa: E402
from bot.emulator import cipher as crypto  # noqa: E402
from bot.store import Store  # noqa: E402

AI_TOKEN = "benchaibottoken"
AI_KEY = "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut"
BOT_ID = "aibBench0001"
WS_SECRET = "bench-ws-secret"


def aibot_section(mode: str, gateway: str = "") -> str:
    if mode == "callback":
        return f'\n[aibot]\nenabled = true\nmode = "callback"\ntoken = "{AI_TOKEN}"\nencoding_aes_key = "{AI_KEY}"\n'
    return (f'\n[aibot]\nenabled = true\nmode = "websocket"\nbot_id = "{BOT_ID}"\nsecret = "{WS_SECRET}"\n'
            f'ws_url = "{gateway}"\n')


def messages(n: int, offset: int) -> list[dict]:
    ppl = street.people()
    out = []
    for i in range(n):
        uid, _, grid = ppl[i % len(ppl)]
        out.append({"msgid": f"m{offset + i}", "aibotid": BOT_ID, "chatid": f"wr{grid}", "chattype": "group",
                    "from": {"userid": uid}, "response_url": "", "msgtype": "text",
                    "text": {"content": f"@网格助手 清理小广告{i % 40 + 1}处,入户走访{i % 9 + 1}户"}})
    return out


def answered(content: str) -> bool:
    return "已记录" in content


# --- the callback way ---------------------------------------------------------------------------
async def callback_round(port: int, msgs: list[dict], concurrency: int):
    prepared = []
    for i, m in enumerate(msgs):
        enc = crypto.encrypt(AI_KEY, "", json.dumps(m, ensure_ascii=False))
        ts, nonce = str(int(time.time())), f"n{i}"
        prepared.append((m["msgid"], nonce, f"msg_signature={crypto.signature(AI_TOKEN, ts, nonce, enc)}"
                         f"&timestamp={ts}&nonce={nonce}", json.dumps({"encrypt": enc}).encode()))
    lat: list[float] = []
    done: list[str] = []
    errors = 0
    it = iter(prepared)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as s:
        async def worker():
            nonlocal errors
            for msgid, nonce, q, body in it:
                t = time.perf_counter()
                try:
                    async with s.post(f"http://127.0.0.1:{port}/wecom/aibot?{q}", data=body) as r:
                        raw = await r.read()
                    env = json.loads(raw)
                    assert env["nonce"] == nonce
                    reply = json.loads(crypto.open_json(AI_TOKEN, AI_KEY, env))
                    ok = reply["stream"]["finish"] and answered(reply["stream"]["content"])
                except (aiohttp.ClientError, ValueError, KeyError, AssertionError):
                    ok = False
                lat.append(time.perf_counter() - t)
                if ok:
                    done.append(msgid)
                else:
                    errors += 1
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - t0, lat, done, errors


# --- the socket way: a light gateway in this process ------------------------------------------------
class Gateway:
    def __init__(self):
        self.ws: web.WebSocketResponse | None = None
        self.connected = asyncio.Event()
        self.waiting: dict[str, tuple[asyncio.Future, float, str]] = {}
        self.answers: dict[str, int] = {}  # msgid → finished answers received
        self.seq = 0

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=4 * 1024 * 1024)
        await ws.prepare(request)
        async for msg in ws:
            f = json.loads(msg.data)
            req_id, cmd, body = f["headers"]["req_id"], f.get("cmd"), f.get("body") or {}
            code = 0
            if cmd == "aibot_subscribe":
                code = 0 if (body.get("bot_id"), body.get("secret")) == (BOT_ID, WS_SECRET) else 853000
                if not code:
                    self.ws = ws
                    self.connected.set()
            elif cmd == "aibot_respond_msg":
                s = body.get("stream") or {}
                got = self.waiting.get(req_id)
                if got is None:
                    code = 846605
                elif s.get("finish"):
                    fut, t, msgid = self.waiting.pop(req_id)
                    self.answers[msgid] = self.answers.get(msgid, 0) + 1
                    if not fut.done():
                        fut.set_result(answered(str(s.get("content", ""))))
            await ws.send_str(json.dumps({"headers": {"req_id": req_id}, "errcode": code,
                                          "errmsg": "ok" if not code else "refused"}))
        return ws

    async def send(self, m: dict) -> asyncio.Future:
        self.seq += 1
        req_id = f"r{self.seq}"
        fut = asyncio.get_running_loop().create_future()
        self.waiting[req_id] = (fut, time.perf_counter(), m["msgid"])
        await self.ws.send_str(json.dumps({"cmd": "aibot_msg_callback", "headers": {"req_id": req_id},
                                           "body": m}, ensure_ascii=False))
        return fut


async def socket_round(gw: Gateway, msgs: list[dict], concurrency: int):
    lat: list[float] = []
    done: list[str] = []
    errors = 0
    it = iter(msgs)

    async def worker():
        nonlocal errors
        for m in it:
            t = time.perf_counter()
            fut = await gw.send(m)
            try:
                ok = await asyncio.wait_for(fut, 30)
            except asyncio.TimeoutError:
                ok = False
            lat.append(time.perf_counter() - t)
            if ok:
                done.append(m["msgid"])
            else:
                errors += 1
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - t0, lat, done, errors


# --- running it ---------------------------------------------------------------------------------
class Way:
    def __init__(self, name: str, proc: subprocess.Popen, data_dir: Path):
        self.name, self.proc, self.data_dir = name, proc, data_dir
        self.wall = self.cpu = 0.0
        self.sent = self.errors = 0
        self.lat: list[float] = []
        self.done: list[str] = []
        self.rates: list[float] = []
        self.missing = self.twice = None

    async def fire(self, round_fn, msgs: list[dict]) -> None:
        cpu0 = cpu_seconds(self.proc.pid)
        wall, lat, done, errors = await round_fn(msgs)
        self.rates.append(len(msgs) / wall)
        self.wall += wall
        self.lat += lat
        self.done += done
        self.errors += errors
        self.sent += len(msgs)
        await wait_idle(self.proc.pid)
        self.cpu += cpu_seconds(self.proc.pid) - cpu0

    def check_store(self) -> None:
        store = Store(self.data_dir, readonly=True)
        store.load()
        inbox = [d["id"] for d in store.docs("inbox")]
        self.missing = sum(1 for m in self.done if m not in set(inbox))
        self.twice = len(inbox) - len(set(inbox))

    def show(self) -> None:
        lat = sorted(self.lat)
        pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000  # noqa: E731
        print(f"{self.name:<34} {self.sent / self.wall:6.0f} msg/s answered  p50 {pct(.5):6.1f} ms  "
              f"p99 {pct(.99):6.1f} ms  server CPU {self.cpu / self.sent * 1000:.3f} ms/msg  "
              f"not answered {self.errors}  answered but not journaled {self.missing}")


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3000, help="messages per way")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--no-pin", action="store_true")
    a = ap.parse_args()
    pinning = pin_cores(not a.no_pin)
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; {a.n} messages per way in "
          f"{a.rounds} interleaved rounds, {a.concurrency} in flight; {pinning}")
    gw = Gateway()
    app = web.Application()
    app.router.add_get("/ws", gw.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    gport = free_port()
    await web.TCPSite(runner, "127.0.0.1", gport).start()
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ways = {}
        try:
            for mode in ("callback", "websocket"):
                folder = tmp / mode
                folder.mkdir()
                wport, port = free_port(), free_port()
                procs.append(start([sys.executable, str(Path(__file__).with_name("wecom_standin.py")), str(wport),
                                    street.CORP_ID, street.SECRET, str(street.AGENT_ID)], folder, PIN["rest"]))
                await wait_ready(wport, path="/count")
                config = street.write_config(folder, port, wecom_at=f"http://127.0.0.1:{wport}/cgi-bin/")
                with open(config, "a", encoding="utf-8") as f:
                    f.write(aibot_section(mode, f"ws://127.0.0.1:{gport}/ws"))
                p = start([sys.executable, "-m", "bot.cli", "run", "--config", str(config)], folder, PIN["server"])
                procs.append(p)
                await wait_ready(port, path="/wecom/callback")
                ways[mode] = Way(f"AI bot by {mode}", p, folder / "data")
                ways[mode].port = port
                await wait_idle(p.pid)
            await asyncio.wait_for(gw.connected.wait(), 30)
            per = a.n // a.rounds
            plan = [(ways["callback"], lambda m: callback_round(ways["callback"].port, m, a.concurrency)),
                    (ways["websocket"], lambda m: socket_round(gw, m, a.concurrency))]
            for r in range(a.rounds):
                # Alternate which way goes first, so neither always follows the other's leftovers.
                for i, (way, fn) in enumerate(plan if r % 2 == 0 else plan[::-1]):
                    await way.fire(fn, messages(per, 1_000_000 * (1 + (way is ways["websocket"])) + r * per))
            for p in procs[1::2]:
                stop(p)
            for way in ways.values():
                way.check_store()
        finally:
            for p in reversed(procs):
                if p.poll() is None:
                    stop(p)
            await runner.cleanup()
    cb, ws = ways["callback"], ways["websocket"]
    cb.show()
    ws.show()
    twice = [m for m, k in gw.answers.items() if k > 1]
    ratio = median(w / c for w, c in zip(ws.rates, cb.rates))
    print(f"\nsocket vs callback, answered messages per second: {ratio:.2f}x (median of {len(ws.rates)} rounds: "
          f"{' '.join(f'{w / c:.2f}' for w, c in zip(ws.rates, cb.rates))}; whole runs "
          f"{(ws.sent / ws.wall) / (cb.sent / cb.wall):.2f}x); CPU per message "
          f"{(ws.cpu / ws.sent) / (cb.cpu / cb.sent):.2f}x the callback's")
    print(f"answered twice over the socket: {len(twice)}; journal entries stored twice: callback {cb.twice}, "
          f"socket {ws.twice}")
    ok = (cb.errors == ws.errors == 0 and cb.missing == ws.missing == 0 and not twice
          and cb.twice == ws.twice == 0)
    print("every message answered once and journaled" if ok else "MESSAGES LOST OR ANSWERED TWICE")
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:
        sys.exit(asyncio.run(main()))
    sys.exit(uvloop.run(main()))
