"""kill -9 under load: every acknowledged message is stored exactly once after restart."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from bot.emulator import cipher as indep
from bot.store import Store

from tests.support.factories import AES_KEY, CORP_ID, TOKEN, write_config
from tests.support.stores import reader_of

PEOPLE = ["lisi", "wangwu", "zhouba", "zhangsan", "sunqi"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_bot(config: Path, port: int, stderr=subprocess.DEVNULL) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bot.cli", "run", "--config", str(config), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=stderr, cwd=config.parent, text=True)


async def stop_cleanly(proc: subprocess.Popen, after: float) -> None:
    """Let the bot finish what it is doing, then stop it as systemd would; it must exit cleanly."""
    await asyncio.sleep(after)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0


async def wait_ready(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            try:
                async with s.get(f"http://127.0.0.1:{port}/emulator/ui/state") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("bot did not start")


def signed_message(userid: str, msgid: str, text: str) -> tuple[str, bytes]:
    xml = (f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><FromUserName><![CDATA[{userid}]]></FromUserName>"
           f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
           f"<Content><![CDATA[{text}]]></Content><MsgId>{msgid}</MsgId><AgentID>1000002</AgentID></xml>")
    enc = indep.encrypt(AES_KEY, CORP_ID, xml)
    ts, nonce = str(int(time.time())), msgid[-6:]
    sig = indep.signature(TOKEN, ts, nonce, enc)
    return f"msg_signature={sig}&timestamp={ts}&nonce={nonce}", indep.callback_envelope(CORP_ID, 1000002, enc).encode()


async def fire(port: int, n: int, acked: list[str], stop_after: int, proc: subprocess.Popen) -> None:
    sem = asyncio.Semaphore(16)
    async with aiohttp.ClientSession() as s:
        async def one(i: int) -> None:
            msgid = str(9_000_000 + i)
            q, body = signed_message(PEOPLE[i % len(PEOPLE)], msgid, f"清理小广告{i % 50 + 1}处,编号{i}")
            async with sem:
                try:
                    async with s.post(f"http://127.0.0.1:{port}/wecom/callback?{q}", data=body) as r:
                        if r.status == 200:
                            acked.append(msgid)
                            if len(acked) == stop_after:
                                os.kill(proc.pid, signal.SIGKILL)
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    pass
        await asyncio.gather(*(one(i) for i in range(n)))


async def killed_under_load(config: Path, n: int, stop_after: int) -> list[str]:
    """A real bot killed with -9 after `stop_after` messages of `n` were acknowledged, started
    again and stopped cleanly once its replay is done; returns the acknowledged MsgIds."""
    port = free_port()
    proc = start_bot(config, port)
    try:
        await wait_ready(port)
        acked: list[str] = []
        await fire(port, n, acked, stop_after=stop_after, proc=proc)
        proc.wait(10)
        assert proc.returncode == -signal.SIGKILL
        assert len(acked) >= stop_after

        proc = start_bot(config, port)
        await wait_ready(port)
        await stop_cleanly(proc, after=2)  # the replay finishes first
    finally:
        if proc.poll() is None:
            proc.kill()
    return acked


async def test_kill_9_during_load_loses_nothing(tmp_path):
    config = write_config(tmp_path, extra='\n[reports]\nrepeat_minutes = 0\n')
    acked = await killed_under_load(config, 400, 150)

    data_dir = tmp_path / "data"
    for shard in (data_dir / "db").glob("*.json"):
        json.loads(shard.read_text())  # no corrupt file
    store = reader_of(data_dir)
    store.load()
    reports = list(store.docs("reports"))
    by_msgid: dict[str, int] = {}
    for r in reports:
        by_msgid[r["msgid"]] = by_msgid.get(r["msgid"], 0) + 1
    assert all(c == 1 for c in by_msgid.values()), "a message was stored twice"
    missing = [m for m in acked if m not in by_msgid]
    assert missing == [], f"{len(missing)} acknowledged messages lost"
    done = {d["id"] for d in store.docs("inbox_done")}
    assert {d["id"] for d in store.docs("inbox")} <= done  # every message handled after the restart

    stats = subprocess.run([sys.executable, "-m", "bot.cli", "stats", "--json", "--config", str(config)],
                           capture_output=True, text=True, check=True)
    assert json.loads(stats.stdout)["reports"] == len(reports)


async def _post(port: int, userid: str, msgid: str, text: str) -> int:
    q, body = signed_message(userid, msgid, text)
    async with aiohttp.ClientSession() as s:
        async with s.post(f"http://127.0.0.1:{port}/wecom/callback?{q}", data=body) as r:
            return r.status


@pytest.mark.file_store  # the kernel refusing the journal's append
async def test_kernel_refusing_writes_gets_503_then_recovers(tmp_path):
    """A real write failure in a real bot process: its file-size limit is lowered under the journal,
    so the kernel refuses the next append half-way (EFBIG, as ENOSPC on a full disk), then the
    limit is given back, as space returns. WeCom would retry the refused message."""
    import resource
    import threading

    config = write_config(tmp_path, extra='\n[reports]\nrepeat_minutes = 0\n')
    port = free_port()
    proc = start_bot(config, port, stderr=subprocess.PIPE)
    err: list[str] = []
    reader = threading.Thread(target=lambda: err.extend(proc.stderr), daemon=True)  # never blocks the bot
    reader.start()
    soft, hard = resource.prlimit(proc.pid, resource.RLIMIT_FSIZE)
    try:
        await wait_ready(port)
        for i in range(5):
            assert await _post(port, PEOPLE[i], f"71000{i}", f"清理小广告{i + 1}处") == 200
        await asyncio.sleep(1)  # their replies and records are written
        journal = tmp_path / "data" / "db" / "journal"
        segment = max(journal.glob("*.log"))
        resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (segment.stat().st_size + 16, hard))

        assert await _post(port, "lisi", "7200001", "入户走访8户") == 503  # not kept: not acknowledged
        assert await _post(port, "lisi", "7200001", "入户走访8户") == 503  # WeCom's retry, still not kept
        resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (soft, hard))  # space is back
        assert await _post(port, "lisi", "7200001", "入户走访8户") == 200
        assert await _post(port, "wangwu", "7200002", "发放宣传资料20份") == 200
        await stop_cleanly(proc, after=1)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(5)
    log = "".join(err)
    assert "journal write failed" in log and "could not store message 7200001" in log  # loud, with the cause

    for seg in journal.glob("*.log"):
        for line in seg.read_bytes().splitlines():
            json.loads(line)  # the half-written append was cut off: no broken record
    store = Store(tmp_path / "data", readonly=True)
    store.load()
    msgids = sorted(r["msgid"] for r in store.docs("reports"))
    assert msgids == sorted([f"71000{i}" for i in range(5)] + ["7200001", "7200002"])  # each once, none lost
