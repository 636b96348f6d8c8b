"""kill -9 of a real `gridbot run` between handling messages and sending their replies: after the
restart every acknowledged message gets its reply, exactly once."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import aiohttp


from tests.bot.test_durability import signed_message, start_bot
from tests.support.factories import BASE_CONFIG, write_config
from tests.support.fake_wecom import FakeWecom, free_port
from tests.support.stores import reader_of

ITEM = re.compile(r"· 小广告清理 (\d+)处")
PEOPLE = ["lisi", "wangwu", "zhouba", "zhangsan", "sunqi"]


def live_config(folder: Path, wecom: FakeWecom) -> Path:
    """The test config in live mode, with WeCom (and the grids' robots) played by `wecom`."""
    base = BASE_CONFIG.replace('mode = "emulator"', 'mode = "live"', 1)
    base = base.replace("[aibot]", f'api_base = "{wecom.url}"\n\n[aibot]', 1)
    base = base.replace("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=", f"{wecom.url}webhook/send?key=")
    extra = "\n[reports]\nrepeat_minutes = 0\n\n[transport]\ntimeout_seconds = 1\nretry_max_seconds = 1\n"
    return write_config(folder, extra, base=base)


async def wait_listening(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            assert proc.poll() is None, "the bot exited"
            try:
                async with s.get(f"http://127.0.0.1:{port}/wecom/callback") as r:
                    await r.read()
                    return
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
    raise AssertionError("bot did not start")


async def post(port: int, userid: str, msgid: str, text: str) -> int:
    q, body = signed_message(userid, msgid, text)
    async with aiohttp.ClientSession() as s:
        async with s.post(f"http://127.0.0.1:{port}/wecom/callback?{q}", data=body) as r:
            return r.status


def handled(data_dir: Path) -> tuple[int, int]:
    """(records stored, messages marked handled), read beside the running bot."""
    store = reader_of(data_dir)
    store.load()
    return len(list(store.docs("reports"))), len(list(store.docs("inbox_done")))


async def wait_until(cond, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.2)


async def test_kill_9_after_handling_before_the_replies_went_out(tmp_path):
    wecom = FakeWecom()
    await wecom.up()
    config = live_config(tmp_path, wecom)
    port = free_port()
    proc = start_bot(config, port)
    sent: dict[str, list[int]] = {p: [] for p in PEOPLE}
    try:
        await wait_listening(port, proc)
        # WeCom takes the first reply to each person but never answers (their later ones wait
        # behind it, in order), then refuses connections altogether.
        wecom.stall_next("message/send", 10_000)
        for i in range(1, 21):
            if i == 6:
                await wait_until(lambda: len(wecom.delivered) >= 5)
                await wecom.down()
            who = PEOPLE[i % len(PEOPLE)]
            sent[who].append(i)
            assert await post(port, who, f"66{i:05d}", f"清理小广告{i}处") == 200
        # Every message handled and marked so: nothing of it is replayed at start.
        await wait_until(lambda: handled(tmp_path / "data") == (20, 20))
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL

        wecom.stalls.clear()
        await wecom.up()
        proc = start_bot(config, port)
        await wait_listening(port, proc)
        await wait_until(lambda: len(wecom.delivered) >= 20)
        await asyncio.sleep(1.5)  # time for any second copy to show
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        await wecom.down()

    for who, qty in sent.items():
        got = [int(m.group(1)) for t in wecom.texts(who) if (m := ITEM.search(t))]
        assert got == qty, (who, got)  # each exactly once, in order
    assert Counter(d.path for d in wecom.delivered) == Counter({"message/send": 20})
    assert wecom.suppressed >= 5  # the stalled five, sent again after the restart, were dropped by WeCom's check
