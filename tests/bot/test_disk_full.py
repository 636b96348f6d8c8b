"""A full disk under a real bot process (a small tmpfs, or its file size limit where mounting is not
allowed: tests/support/disk.py). A refused message is answered 503 and never comes back; an
acknowledged photo that cannot be saved waits for space, its sender told once, and is handled
when space is back, here at the next start."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import threading
import time

import aiohttp
import pytest

from bot.store import Store

from tests.bot.test_durability import free_port, signed_message, start_bot, stop_cleanly, wait_ready
from tests.support.disk import SmallDisk
from tests.support.factories import write_config
from tests.support.stores import reader_of
from tests.support.photo_samples import jpeg, scene


@pytest.fixture
def disk(tmp_path):
    d = SmallDisk(tmp_path, mb=8)
    yield d
    d.close()


def bot_in(disk: SmallDisk):
    config = write_config(disk.root, extra='\n[reports]\nrepeat_minutes = 0\n')
    port = free_port()
    proc = start_bot(config, port, stderr=subprocess.PIPE)
    err: list[str] = []
    threading.Thread(target=lambda: err.extend(proc.stderr), daemon=True).start()  # never blocks the bot
    return config, port, proc, err


async def post(port: int, userid: str, msgid: str, text: str) -> int:
    q, body = signed_message(userid, msgid, text)
    async with aiohttp.ClientSession() as s:
        async with s.post(f"http://127.0.0.1:{port}/wecom/callback?{q}", data=body) as r:
            return r.status


def journal_lines(data_dir) -> list[bytes]:
    return [line for seg in sorted((data_dir / "db" / "journal").glob("*.log"))
            for line in seg.read_bytes().split(b"\n") if line]


@pytest.mark.file_store  # the journal's own append on a full disk
async def test_a_refused_append_is_cut_back_and_never_comes_back(disk):
    config, port, proc, err = bot_in(disk)
    data_dir = disk.root / "data"
    try:
        await wait_ready(port)
        for i in range(3):
            assert await post(port, "lisi", f"73000{i}", f"清理小广告{i + 1}处") == 200
        await asyncio.sleep(0.5)
        disk.fill(proc.pid, leave=0)
        # The journal's last page still has room for a few records; the first refused one is
        # written in part before the kernel says no.
        refused = None
        for i in range(40):
            msgid = f"74000{i:02d}"
            status = await post(port, "wangwu", msgid, f"入户走访{i + 1}户")
            if status == 503:
                refused = msgid
                break
            assert status == 200
        assert refused, f"the disk ({disk.how}) never filled"
        lines = journal_lines(data_dir)
        for line in lines:
            json.loads(line)  # no torn record left at the end of the segment
        assert not any(refused.encode() in line for line in lines)
        assert await post(port, "wangwu", refused, "重发") == 503  # WeCom's retry, still refused

        disk.free()
        assert await post(port, "zhouba", "7500001", "发放宣传资料20份") == 200
        await asyncio.sleep(0.5)
        proc.send_signal(signal.SIGKILL)  # a crash: only what is on disk counts
        proc.wait(10)
        lines = journal_lines(data_dir)
        for line in lines:
            json.loads(line)
        assert not any(refused.encode() in line for line in lines), "a message answered 503 came back"

        store = Store(data_dir, readonly=True)
        store.load()
        assert store.get("inbox", refused) is None
        assert store.get("inbox", "7500001") is not None
        assert refused not in {r["msgid"] for r in store.docs("reports")}
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "journal write failed" in "".join(err)


def big_photo() -> bytes:
    return jpeg(scene(7, (1600, 1200)), quality=95, taken=None)


async def send_photo(port: int, userid: str, data: bytes) -> dict:
    form = aiohttp.FormData()
    form.add_field("userid", userid)
    form.add_field("photo", data, filename="photo.jpg", content_type="image/jpeg")
    async with aiohttp.ClientSession() as s:
        async with s.post(f"http://127.0.0.1:{port}/emulator/ui/send", data=form) as r:
            return await r.json()


async def replies_to(port: int, userid: str) -> list[str]:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://127.0.0.1:{port}/emulator/ui/feed?since=0") as r:
            feed = await r.json()
    return [e["content"] for e in feed["events"] if e.get("kind") == "app_message" and userid in e.get("to", [])]


async def wait_for_reply(port: int, userid: str, needle: str, timeout: float = 15) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = await replies_to(port, userid)
        if any(needle in r for r in got):
            return got
        await asyncio.sleep(0.2)
    raise AssertionError(f"no reply with {needle!r} to {userid}: {await replies_to(port, userid)}")


async def test_a_photo_that_cannot_be_saved_waits_for_space_and_is_handled_when_it_returns(disk):
    config, port, proc, err = bot_in(disk)
    data_dir = disk.root / "data"
    photo = big_photo()
    assert len(photo) > 200_000
    try:
        await wait_ready(port)
        disk.fill(proc.pid, leave=64 * 1024)  # room for the journal, not for the photo
        sent = await send_photo(port, "lisi", photo)
        assert sent["status"] == 200  # acknowledged: it is in the journal
        got = await wait_for_reply(port, "lisi", "存储空间不足")
        assert got == ["存储空间不足,您的消息已收到,恢复后会自动处理,无需重发。"]
        admin = await wait_for_reply(port, "admin", "存储空间不足")
        assert len([r for r in admin if "存储空间不足" in r]) == 1
        await asyncio.sleep(2.5)  # the first retry meets a full disk again: nobody is told twice
        assert await replies_to(port, "lisi") == got

        disk.free()
        got = await wait_for_reply(port, "lisi", "打卡成功", timeout=10)  # the next retry
        assert len(got) == 2
        await asyncio.sleep(0.5)  # the done mark is written
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc = start_bot(config, port)  # a restart does not handle it a second time
        await wait_ready(port)
        await stop_cleanly(proc, after=1.5)
    finally:
        if proc.poll() is None:
            proc.kill()
    store = reader_of(data_dir)
    store.load()
    checkins = list(store.docs("checkins"))
    assert [c["userid"] for c in checkins] == ["lisi"]
    assert (data_dir / checkins[0]["file"]).stat().st_size == len(photo)
    assert sent["msgid"] in {d["id"] for d in store.docs("inbox_done")}


async def test_a_photo_waiting_for_space_at_a_crash_is_handled_at_the_next_start(disk):
    config, port, proc, err = bot_in(disk)
    data_dir = disk.root / "data"
    try:
        await wait_ready(port)
        disk.fill(proc.pid, leave=64 * 1024)
        sent = await send_photo(port, "lisi", big_photo())
        assert sent["status"] == 200
        await wait_for_reply(port, "lisi", "存储空间不足")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    disk.free()
    store = reader_of(data_dir)
    store.load()
    # Journaled and not marked done: the next start dispatches it again (as after any crash).
    assert store.get("inbox", sent["msgid"])["event"]["kind"] == "image"
    assert sent["msgid"] not in {d["id"] for d in store.docs("inbox_done")}
    assert list(store.docs("checkins")) == []
