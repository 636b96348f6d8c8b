"""Replies through WeCom's outages and the bot's crashes: the issue's faults, at their real size.

    .venv/bin/python bench/bench_outbox.py [--outage 90] [--kills 5]

A real `gridbot run` (live mode, the generated street, default [transport] settings) against a
WeCom stand-in in this process (tests/support/fake_wecom.py: real HTTP, message/send's documented
duplicate check, no regard for the Idempotency-Key, as WeCom):

  refused   WeCom refuses connections for --outage seconds while 30 people report; then it is
            back. Counted: replies delivered, doubled, lost; seconds from WeCom's return until
            the last reply; the bot's log lines about sending (WARNING and above).
  stalled   WeCom takes the first 30 replies but never answers (each call held past the bot's
            10 s timeout). Counted: delivered, doubled, lost; seconds until the last answer.
  kill -9   --kills rounds: 300 reports from 300 people at concurrency 16, the bot killed with
            SIGKILL after the 150th is acknowledged, started again. Counted over all rounds:
            acknowledged messages, each one's replies (its own reply or the notice for a reply
            lost in the crash), lost and doubled.

Prints one line per scenario and exits 1 if any acknowledged message is left without exactly
one reply. No option is needed; it runs as it is on the code before the outbox too (its config
has no [transport] section), which is how the figures before the fix were taken.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import street  # noqa: E402
from bot.emulator import cipher as crypto  # noqa: E402
from tests.support.fake_wecom import FakeWecom, free_port  # noqa: E402

ITEM = re.compile(r"· 小广告清理 (\d+)处")
NOTICE = re.compile(r"【补发回复】.*“清理小广告(\d+)处”")


def signed(uid: str, msgid: str, text: str) -> tuple[str, bytes]:
    now = int(time.time())
    xml = (f"<xml><ToUserName><![CDATA[{street.CORP_ID}]]></ToUserName><FromUserName><![CDATA[{uid}]]>"
           f"</FromUserName><CreateTime>{now}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
           f"<Content><![CDATA[{text}]]></Content><MsgId>{msgid}</MsgId>"
           f"<AgentID>{street.AGENT_ID}</AgentID></xml>")
    enc = crypto.encrypt(street.AES_KEY, street.CORP_ID, xml)
    ts, nonce = str(now), msgid[-8:]
    sig = crypto.signature(street.TOKEN, ts, nonce, enc)
    return (f"msg_signature={sig}&timestamp={ts}&nonce={nonce}",
            crypto.callback_envelope(street.CORP_ID, street.AGENT_ID, enc).encode())


class Bot:
    def __init__(self, folder: Path, wecom: FakeWecom):
        self.config = street.write_config(folder, 0, wecom_at=wecom.url)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log: list[str] = []

    async def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "run", "--config", str(self.config),
                                      "--port", str(self.port)], cwd=self.config.parent,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        # Read beside it, so a full pipe never blocks the bot.
        threading.Thread(target=lambda p=self.proc: self.log.extend(p.stderr), daemon=True).start()
        async with aiohttp.ClientSession() as s:
            for _ in range(600):
                try:
                    async with s.get(f"http://127.0.0.1:{self.port}/wecom/callback") as r:
                        await r.read()
                        return
                except aiohttp.ClientError:
                    await asyncio.sleep(0.05)
        raise SystemExit("gridbot did not start")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        time.sleep(0.2)  # the reader thread takes the last lines


async def post(session: aiohttp.ClientSession, port: int, uid: str, msgid: str, text: str) -> int:
    q, body = signed(uid, msgid, text)
    try:
        async with session.post(f"http://127.0.0.1:{port}/wecom/callback?{q}", data=body) as r:
            await r.read()
            return r.status
    except (aiohttp.ClientError, asyncio.TimeoutError):
        return 0


def tally(wecom: FakeWecom, expected: dict[int, str]) -> dict:
    """For each report number (its quantity), how many replies its sender received."""
    got: Counter = Counter()
    notices = 0
    for d in wecom.delivered:
        m = ITEM.search(d.content) or NOTICE.search(d.content)
        if m and expected.get(int(m.group(1))) == d.to:
            got[int(m.group(1))] += 1
            notices += bool(NOTICE.search(d.content))
    return {"acked": len(expected), "answered": sum(1 for n in expected if got[n] >= 1),
            "lost": sum(1 for n in expected if got[n] == 0), "doubled": sum(1 for n in expected if got[n] > 1),
            "notices": notices}


async def wait_for(cond, timeout: float) -> float:
    t0 = time.monotonic()
    while not cond() and time.monotonic() - t0 < timeout:
        await asyncio.sleep(0.1)
    return time.monotonic() - t0


async def refused(folder: Path, outage: float) -> dict:
    wecom = FakeWecom(corp_id=street.CORP_ID, secret=street.SECRET, agent_id=street.AGENT_ID)
    await wecom.up()
    bot = Bot(folder, wecom)
    await bot.start()
    ppl = [p[0] for p in street.people()][:30]
    await wecom.down()
    t_down = time.monotonic()
    expected = {}
    async with aiohttp.ClientSession() as s:
        for i, uid in enumerate(ppl, 1):
            expected[i] = uid
            assert await post(s, bot.port, uid, f"5100{i:04d}", f"清理小广告{i}处") == 200
    await asyncio.sleep(max(0.0, outage - (time.monotonic() - t_down)))
    await wecom.up()
    took = await wait_for(lambda: tally(wecom, expected)["answered"] == 30, 300)
    await asyncio.sleep(3)
    bot.stop()
    await wecom.down()
    r = tally(wecom, expected)
    r["recovery_s"] = took
    # What the log file says about sending (the readiness probe's refused callback check aside).
    log = (folder / "data" / "logs" / "bot.log").read_text(encoding="utf-8").splitlines()
    r["log_lines"] = sum(1 for line in log if ("| WARNING |" in line or "| ERROR" in line)
                         and ("bot.transport" in line or "bot.delivery" in line or "bot.outbox" in line))
    return r


async def stalled(folder: Path) -> dict:
    wecom = FakeWecom(corp_id=street.CORP_ID, secret=street.SECRET, agent_id=street.AGENT_ID)
    await wecom.up()
    bot = Bot(folder, wecom)
    await bot.start()
    wecom.stall_next("message/send", 30)
    ppl = [p[0] for p in street.people()][30:60]
    expected = {}
    t0 = time.monotonic()
    async with aiohttp.ClientSession() as s:
        for i, uid in enumerate(ppl, 1):
            expected[i] = uid
            assert await post(s, bot.port, uid, f"5200{i:04d}", f"清理小广告{i}处") == 200
    took = await wait_for(lambda: wecom.attempts["message/send"] >= 60 or tally(wecom, expected)["doubled"], 120)
    await asyncio.sleep(15)  # past the bot's timeout and a retry: any second copy shows
    bot.stop()
    await wecom.down()
    r = tally(wecom, expected)
    r["answered_s"] = min(took, time.monotonic() - t0)
    return r


async def kills(folder: Path, rounds: int) -> dict:
    wecom = FakeWecom(corp_id=street.CORP_ID, secret=street.SECRET, agent_id=street.AGENT_ID)
    await wecom.up()
    bot = Bot(folder, wecom)
    ppl = [p[0] for p in street.people()]
    expected: dict[int, str] = {}
    for rnd in range(rounds):
        await bot.start()
        acked: list[int] = []
        sem = asyncio.Semaphore(16)

        async with aiohttp.ClientSession() as s:
            async def one(i: int) -> None:
                n = rnd * 1000 + i + 1
                async with sem:
                    if await post(s, bot.port, ppl[i], f"53{n:06d}", f"清理小广告{n}处") == 200:
                        acked.append(n)
                        expected[n] = ppl[i]
                        if len(acked) == 150:
                            bot.kill()  # the rest are refused: not acknowledged, WeCom would resend
            await asyncio.gather(*(one(i) for i in range(300)))
        bot.kill()
    await bot.start()
    await wait_for(lambda: tally(wecom, expected)["answered"] == len(expected), 120)
    await asyncio.sleep(3)
    bot.stop()
    await wecom.down()
    r = tally(wecom, expected)
    r["rounds"] = rounds
    return r


def show(name: str, r: dict) -> None:
    extra = "  ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items()
                      if k not in ("acked", "answered", "lost", "doubled"))
    print(f"{name:<9} acknowledged {r['acked']:4d}  answered {r['answered']:4d}  lost {r['lost']:3d}  "
          f"doubled {r['doubled']:3d}  {extra}", flush=True)


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--outage", type=float, default=90.0, help="seconds WeCom refuses connections")
    ap.add_argument("--kills", type=int, default=5, help="kill -9 rounds")
    ap.add_argument("--only", choices=("refused", "stalled", "kills"), action="append",
                    help="run only this scenario (may be repeated)")
    a = ap.parse_args()
    only = set(a.only or ("refused", "stalled", "kills"))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in ("refused", "stalled", "kills"):
            (tmp / name).mkdir()
        if "refused" in only:
            results["refused"] = r = await refused(tmp / "refused", a.outage)
            show("refused", r)
        if "stalled" in only:
            results["stalled"] = r = await stalled(tmp / "stalled")
            show("stalled", r)
        if "kills" in only:
            results["kill -9"] = r = await kills(tmp / "kills", a.kills)
            show("kill -9", r)
    ok = all(r["lost"] == 0 and r["doubled"] == 0 for r in results.values())
    print("OK: every acknowledged message got exactly one reply" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
