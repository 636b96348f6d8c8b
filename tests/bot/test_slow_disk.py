"""A stalled disk: the journal's fsync takes a second. WeCom resends a callback it got no quick
answer to; a resend that arrives while the original is still being written must not be answered
"got it" before the original is durable, and must not be answered at all if that write fails."""

from __future__ import annotations

import asyncio
import errno
import os
import time

import pytest

from tests.bot.wecom.test_aibot import content, group_text, post

STALL = 1.0
# The stall is the journal's fsync: PostgreSQL's commits are the server's own.
pytestmark = pytest.mark.file_store


def stall_fsync(monkeypatch, fail: bool = False) -> list[float]:
    """Every fsync takes STALL seconds (then fails with EIO when `fail`); returns when each ended."""
    real = os.fsync
    ended: list[float] = []

    def slow(fd):
        time.sleep(STALL)  # in the journal's writer thread, as a stalled disk would hold it
        ended.append(time.monotonic())
        if fail:
            raise OSError(errno.EIO, "Input/output error")
        real(fd)
    monkeypatch.setattr(os, "fsync", slow)
    return ended


async def timed(coro) -> tuple[int, float]:
    status = await coro
    return status, time.monotonic()


async def test_a_resend_waits_until_the_original_is_durable(harness, monkeypatch):
    ended = stall_fsync(monkeypatch)
    first = asyncio.create_task(timed(harness.text("lisi", "清理小广告15处", msgid="8800001", settle=False)))
    await asyncio.sleep(0.3)  # WeCom's resend while the original is still in fsync
    resent_status, resent_at = await timed(harness.text("lisi", "清理小广告15处", msgid="8800001", settle=False))
    first_status, _ = await first
    assert (first_status, resent_status) == (200, 200)
    assert ended and resent_at >= ended[0], "the resend was acknowledged before the original was durable"
    monkeypatch.undo()
    await harness.settle()
    assert [r["msgid"] for r in harness.store.docs("reports")] == ["8800001"]
    assert harness.replies("lisi") == [harness.last_reply("lisi")]  # one reply, for one record
    assert "已记录 #R1" in harness.last_reply("lisi")


async def test_a_resend_of_a_write_that_fails_is_not_acknowledged(harness, monkeypatch):
    stall_fsync(monkeypatch, fail=True)
    first = asyncio.create_task(harness.text("lisi", "入户走访8户", msgid="8800002", settle=False))
    await asyncio.sleep(0.3)
    resent = await harness.text("lisi", "入户走访8户", msgid="8800002", settle=False)
    assert await first == 503
    assert resent == 503, "a resend was acknowledged though the message was never stored"
    monkeypatch.undo()  # the disk recovers; WeCom's next resend is stored and handled once
    assert await harness.text("lisi", "入户走访8户", msgid="8800002") == 200
    assert [r["msgid"] for r in harness.store.docs("reports")] == ["8800002"]
    assert "入户走访 8户" in harness.last_reply("lisi")


async def test_an_ai_bot_resend_of_a_write_that_fails_is_not_acknowledged(harness, monkeypatch):
    stall_fsync(monkeypatch, fail=True)
    p = group_text("lisi", "清理小广告6处", msgid="aistall1")
    first = asyncio.create_task(post(harness, p))
    await asyncio.sleep(0.3)
    resent_status, _ = await post(harness, p)
    first_status, _ = await first
    assert (first_status, resent_status) == (503, 503)
    monkeypatch.undo()
    status, reply = await post(harness, p)
    assert status == 200 and "已记录" in content(reply)
    assert [r["msgid"] for r in harness.store.docs("reports")] == ["aistall1"]


async def test_an_ai_bot_resend_during_a_slow_write_gets_the_original_answer(harness, monkeypatch):
    ended = stall_fsync(monkeypatch)
    p = group_text("lisi", "入户走访5户", msgid="aistall2")
    first = asyncio.create_task(post(harness, p))
    await asyncio.sleep(0.3)
    (resent_status, resent), resent_at = await timed_post(harness, p)
    first_status, original = await first
    assert (first_status, resent_status) == (200, 200)
    assert resent_at >= ended[0]
    # One of the two callbacks carries the answer; the other closes quietly.
    answers = [content(r) for r in (original, resent) if r is not None and r["stream"]["content"]]
    assert len(answers) == 1 and "入户走访 5户" in answers[0]
    monkeypatch.undo()
    await harness.settle()
    assert [r["msgid"] for r in harness.store.docs("reports")] == ["aistall2"]


async def timed_post(harness, p):
    result = await post(harness, p)
    return result, time.monotonic()
