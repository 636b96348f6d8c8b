"""One bot per data directory: a second `gridbot run` stops at once, before it reads or writes
anything, and says which process holds the data; the read-only commands keep working beside it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from bot import data_lock
from bot.store import Store

from tests.bot.test_durability import _post, free_port, start_bot, stop_cleanly, wait_ready
from tests.support.factories import write_config
from tests.support.stores import reader_of


def gridbot(config: Path, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot.cli", *argv, "--config", str(config)],
                          capture_output=True, text=True, cwd=config.parent, timeout=timeout)


def tree(folder: Path) -> dict[str, str]:
    """Every file under `folder` with a digest of its bytes: what a process left behind."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


async def test_second_run_exits_at_once_without_touching_the_data(tmp_path):
    """The data dir holds a message acknowledged but not yet handled: a second bot that got as
    far as its start would replay it (journal, record, reply). It must stop before that."""
    config = write_config(tmp_path)
    data = tmp_path / "data"
    s = Store(data)
    s.load(today=date(2026, 11, 25))
    await s.start()
    await s.put("inbox", {"id": "5550001", "received": 0.0, "event": {
        "kind": "text", "key": "5550001", "sender": "lisi", "create_time": 1795570200,
        "content": "清理小广告3处"}}, shard="2026-W48")
    await s.close()
    data_lock.acquire(data)  # this test process is the running bot
    port_taken = socket.socket()
    port_taken.bind(("127.0.0.1", 0))
    port_taken.listen()
    before = tree(data)
    try:
        t0 = time.monotonic()
        run = gridbot(config, "run", "--port", str(port_taken.getsockname()[1]))
        elapsed = time.monotonic() - t0
        after = tree(data)
    finally:
        port_taken.close()
        data_lock.release(data)
    assert run.returncode == 2
    assert f"数据目录 {data.resolve()} 已被另一个正在运行的网格助手占用(进程 {os.getpid()})" in run.stderr
    assert "Traceback" not in run.stderr
    assert elapsed < 10
    assert after == before  # no journal segment, no replay, no log file: nothing


async def test_second_run_beside_a_running_bot_is_refused_and_readers_keep_working(tmp_path):
    config = write_config(tmp_path, extra='\n[reports]\nrepeat_minutes = 0\n')
    port = free_port()
    first = start_bot(config, port)
    try:
        await wait_ready(port)
        for i, who in enumerate(["lisi", "wangwu", "zhouba"]):
            assert await _post(port, who, f"820000{i}", f"清理小广告{i + 2}处") == 200
        await asyncio.sleep(1)  # the reports are written
        out = tmp_path / "export"
        # A second bot and the three read-only commands, all at once beside the running bot.
        second, stats, export, nudge = await asyncio.gather(*(asyncio.to_thread(gridbot, config, *argv) for argv in (
            ("run", "--port", str(port)),
            ("stats", "--json"),
            ("export", "--out", str(out)),
            ("jobs", "run", "checkin_nudge", "--at", "2026-11-25T17:00", "--dry-run"))))

        assert second.returncode == 2
        assert f"已被另一个正在运行的网格助手占用(进程 {first.pid})" in second.stderr
        assert "Traceback" not in second.stderr
        assert stats.returncode == 0, stats.stderr
        assert json.loads(stats.stdout)["reports"] == 3
        assert export.returncode == 0, export.stderr
        assert any(p.suffix == ".xlsx" for p in out.iterdir())
        assert nudge.returncode == 0, nudge.stderr
        assert "尚未打卡" in nudge.stdout

        assert first.poll() is None  # the running bot is unharmed and still answers
        assert await _post(port, "lisi", "8200009", "入户走访8户") == 200
        await stop_cleanly(first, after=0.5)
    finally:
        if first.poll() is None:
            first.kill()
    store = reader_of(tmp_path / "data")
    store.load()
    assert sorted(r["msgid"] for r in store.docs("reports")) == ["8200000", "8200001", "8200002", "8200009"]
