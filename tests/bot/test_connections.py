"""Slow and many connections against a real `gridbot run` whose open-file limit is 256: 300 clients
that trickle their headers, and some that trickle a body. WeCom's callbacks still get through,
the slow ones are cut off after `read_timeout_seconds`, the bot never runs out of descriptors
(its journal and checkpoints keep working), and it stops cleanly."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import aiohttp


from tests.bot.test_durability import free_port, signed_message, wait_ready
from tests.support.factories import write_config
from tests.support.stores import reader_of

FILE_LIMIT = 256
READ_TIMEOUT = 1.5
SLOW = 300


def start_limited(config: Path, port: int) -> tuple[subprocess.Popen, list[str]]:
    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (FILE_LIMIT, FILE_LIMIT))
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "run", "--config", str(config), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=config.parent, text=True,
                            preexec_fn=limit)
    err: list[str] = []
    threading.Thread(target=lambda: err.extend(proc.stderr), daemon=True).start()
    return proc, err


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def slow_client(port: int, body: bool) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    if body:  # whole headers, then a body that never finishes
        s.sendall(b"POST /wecom/callback?msg_signature=x&timestamp=1&nonce=1 HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Length: 1000\r\n\r\n<xml>")
    else:  # headers that never finish (slowloris)
        s.sendall(b"POST /wecom/callback HTTP/1.1\r\nHost: x\r\n")
    s.setblocking(False)
    return s


def closed_by_server(s: socket.socket) -> bool:
    try:
        data = s.recv(4096)
    except BlockingIOError:
        return False
    except OSError:
        return True
    return data == b"" or data.startswith(b"HTTP/1.1 408")


async def post(session: aiohttp.ClientSession, port: int, userid: str, msgid: str, text: str) -> tuple[int, float]:
    q, body = signed_message(userid, msgid, text)
    started = time.monotonic()
    async with session.post(f"http://127.0.0.1:{port}/wecom/callback?{q}", data=body) as r:
        return r.status, time.monotonic() - started


async def replies_sent(session: aiohttp.ClientSession, port: int, n: int, timeout: float = 15) -> None:
    """Until the bot has answered n messages (the emulator's feed shows its app messages)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with session.get(f"http://127.0.0.1:{port}/emulator/ui/feed?since=0") as r:
            events = (await r.json())["events"]
        if sum(e.get("kind") == "app_message" for e in events) >= n:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"the bot did not answer {n} messages")


async def test_slow_clients_are_cut_off_and_callbacks_get_through(tmp_path):
    config = write_config(tmp_path, extra='\n[reports]\nrepeat_minutes = 0\n')
    text = config.read_text(encoding="utf-8").replace(
        'port = 0\n', f'port = 0\nread_timeout_seconds = {READ_TIMEOUT}\n', 1)
    config.write_text(text, encoding="utf-8")
    port = free_port()
    proc, err = start_limited(config, port)
    clients: list[socket.socket] = []
    try:
        await wait_ready(port)
        clients = [slow_client(port, body=i % 10 == 0) for i in range(SLOW)]
        await asyncio.sleep(0.3)
        peak = open_fds(proc.pid)
        assert peak < FILE_LIMIT - 64, f"{peak} descriptors open: none left for the journal"
        async with aiohttp.ClientSession() as session:
            status, took = await post(session, port, "lisi", "7600001", "清理小广告5处")
            assert status == 200 and took < 1.0  # a callback during the flood
            for s in clients:  # the slow ones keep trickling
                try:
                    s.send(b"X")
                except OSError:
                    pass
            await asyncio.sleep(READ_TIMEOUT + 1.5)
            cut = sum(closed_by_server(s) for s in clients)
            assert cut == SLOW, f"only {cut} of {SLOW} slow connections were cut off"
            assert open_fds(proc.pid) < 64
            people = ["wangwu", "zhangsan", "zhouba", "sunqi", "lisi"]  # WeCom: 30 app messages/min a person
            results = await asyncio.gather(*(post(session, port, people[i % 5], f"77000{i:02d}", f"入户走访{i + 1}户")
                                             for i in range(50)))
            assert [s for s, _ in results] == [200] * 50
            await replies_sent(session, port, 51)
        proc.send_signal(signal.SIGTERM)  # the final checkpoint needs descriptors too
        assert proc.wait(20) == 0
    finally:
        for s in clients:
            s.close()
        if proc.poll() is None:
            proc.kill()
    log = "".join(err)
    assert "Too many open files" not in log and "checkpoint failed" not in log, log[-2000:]
    store = reader_of(tmp_path / "data")
    store.load()
    assert len(list(store.docs("reports"))) == 51
    assert not list((tmp_path / "data" / "db" / "journal").glob("*.log")) or all(
        json.loads(line) for seg in (tmp_path / "data" / "db" / "journal").glob("*.log")
        for line in seg.read_bytes().splitlines())


async def test_a_flood_beyond_the_file_limit_does_not_lock_callbacks_out(tmp_path):
    config = write_config(tmp_path, extra='\n[reports]\nrepeat_minutes = 0\n')
    port = free_port()
    proc, err = start_limited(config, port)
    clients: list[socket.socket] = []
    try:
        await wait_ready(port)
        for i in range(2 * FILE_LIMIT):  # idle sockets, twice the bot's file limit
            try:
                clients.append(socket.create_connection(("127.0.0.1", port), timeout=2))
            except OSError:
                break
        await asyncio.sleep(0.3)
        assert open_fds(proc.pid) < FILE_LIMIT - 64
        async with aiohttp.ClientSession() as session:
            results = [await post(session, port, "lisi", f"78000{i}", f"清理小广告{i + 1}处") for i in range(5)]
            assert [s for s, _ in results] == [200] * 5
            assert max(t for _, t in results) < 1.0
            await replies_sent(session, port, 5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        for s in clients:
            s.close()
        if proc.poll() is None:
            proc.kill()
    store = reader_of(tmp_path / "data")
    store.load()
    assert len(list(store.docs("reports"))) == 5


async def test_requests_beyond_the_limit_are_answered_503_at_once():
    from aiohttp import web

    from bot.http_guard import serve
    release = asyncio.Event()

    async def slow(request):
        await release.wait()  # handlers stuck on something (a stalled disk)
        return web.Response(text="ok")
    app = web.Application()
    app.router.add_get("/", slow)
    port = free_port()
    runner, guard = await serve(app, "127.0.0.1", port, read_timeout=5, max_connections=0)
    guard.max_requests = 3
    try:
        async with aiohttp.ClientSession() as session:
            async def get():
                async with session.get(f"http://127.0.0.1:{port}/") as r:
                    return r.status
            stuck = [asyncio.create_task(get()) for _ in range(3)]
            await asyncio.sleep(0.3)
            started = time.monotonic()
            assert await get() == 503  # no queue that grows without bound
            assert time.monotonic() - started < 0.5
            release.set()
            assert await asyncio.gather(*stuck) == [200, 200, 200]
            assert await get() == 200
    finally:
        await guard.close()
        await runner.cleanup()
