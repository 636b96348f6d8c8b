"""WeCom's enterprise-wide call rate: large pushes spread within [transport] api_per_minute,
replies to people first, and a "freq out of limit" answer slows every send without losing or
doubling a message."""

from __future__ import annotations

import asyncio

import pytest
from loguru import logger

from bot.config_loading import ConfigError, load_config
from bot.outgoing import REPLY_TO, Outgoing
from bot.send_pace import BLOCK_SECONDS, SendPace
from tests.support.factories import write_config
from tests.support.fake_time import FakeTime


def on_fake_time(harness) -> tuple[FakeTime, list[tuple[float, Outgoing]]]:
    """The transport on a test clock; returns it and what went out, with the clock's time."""
    ft = FakeTime()
    tr = harness.bot.transport
    tr._now, tr._sleep, tr.backoff = ft.now, ft.sleep, 0.5
    harness.emulator.now = ft.now
    sent: list[tuple[float, Outgoing]] = []
    deliver = tr._deliver

    async def recording(msg: Outgoing) -> None:
        at = ft.now()  # when it left: its answer may come after the next one left
        try:
            await deliver(msg)
        except Exception:
            refused.append((at, ft.now()))
            raise
        sent.append((at, msg))
    tr._deliver = recording
    return ft, sent


refused: list[tuple[float, float]] = []  # (left, answered) of calls WeCom refused


def most_in_a_minute(times: list[float]) -> int:
    return max(sum(1 for u in times if t <= u < t + 60) for t in times)


@pytest.fixture
def config_path(tmp_path):
    return write_config(tmp_path, "\n[transport]\napi_per_minute = 10\napi_per_hour = 100\n")


async def test_a_reply_overtakes_fifty_pushes_which_go_out_at_the_capped_rate(harness):
    ft, sent = on_fake_time(harness)
    tr = harness.bot.transport
    start = ft.now()
    for i in range(50):  # a reminder job: grid pushes, answering nobody
        tr.push_text("g1" if i % 2 == 0 else "g2", f"提醒{i}")
    REPLY_TO.set("msg-1")  # what the inbox sets while a person's message is handled
    try:
        tr.send_text("lisi", "已记录 #R1")
    finally:
        REPLY_TO.set(None)
    await harness.settle()

    # The reply takes its turn once it is on disk (a real write, while the test clock runs
    # free): a few pushes may go first, not the fifty.
    order = [m.content for _, m in sent]
    assert order.index("已记录 #R1") <= 5
    assert next(t for t, m in sent if m.channel == "app") - start <= 5 * 6
    assert harness.replies("lisi") == ["已记录 #R1"]
    pushes = [m.content for _, m in sorted(sent, key=lambda e: e[0]) if m.channel == "robot"]
    assert pushes == [f"提醒{i}" for i in range(50)]  # older first, each once
    assert [p["content"] for p in harness.pushes()] == pushes
    times = sorted(t for t, _ in sent)
    assert most_in_a_minute(times) <= 10
    assert ft.now() - start >= 50 * 6 - 1  # 51 sends at 10 a minute
    assert list(tr.failed) == []
    assert harness.runtime.outbox.unsent() == []  # the outbox saw every one of them sent


@pytest.mark.parametrize("refusal", [{"errcode": 45009}, {"status": 429}])
async def test_freq_out_of_limit_pauses_every_send_and_slows_down_nothing_lost_or_doubled(harness, refusal):
    ft, sent = on_fake_time(harness)
    tr = harness.bot.transport
    tr.pace.configure(60, 0)  # one a second
    warnings: list[str] = []
    sink = logger.add(lambda m: warnings.append(m.record["message"]), level="WARNING")
    refused.clear()
    harness.emulator.fail_next("message/send", count=1, **refusal)
    people = ["lisi", "wangwu", "zhangsan", "sunqi", "zhouba"]
    try:
        tr.send_text("lisi", "lisi 的通知")
        while not refused:  # WeCom's answer: too often
            await asyncio.sleep(0.01)
        for who in people[1:]:
            tr.send_text(who, f"{who} 的通知")
            tr.send_text(who, f"{who} 的第二条通知")
        await harness.settle()
    finally:
        logger.remove(sink)

    assert harness.replies("lisi") == ["lisi 的通知"]  # refused once, then sent exactly once
    for who in people[1:]:
        assert harness.replies(who) == [f"{who} 的通知", f"{who} 的第二条通知"]
    assert list(tr.failed) == []
    [(_, told)] = refused
    after = sorted(t for t, _ in sent)  # by when each left
    assert len(after) == 9
    assert after[0] - told >= BLOCK_SECONDS  # what left after the refusal waited for WeCom's block
    gaps = [b - a for a, b in zip(after, after[1:])]
    assert min(gaps) >= 1.5  # then half the configured pace (one a second)
    assert any("calls too often" in w for w in warnings)


async def test_pace_gives_turns_to_replies_first_then_older_pushes():
    ft = FakeTime()
    pace = SendPace(60, 0, now=ft.now, sleep=ft.sleep)
    got: list[str] = []

    async def send(name: str, created: float, cause: str | None = None) -> None:
        await pace.turn(Outgoing("robot", name, "text", "", cause=cause, created=created))
        got.append(name)
    first = asyncio.create_task(send("first", 5.0))  # takes the one free turn
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(send("newer push", 3.0)), asyncio.create_task(send("older push", 1.0)),
               asyncio.create_task(send("reply", 4.0, cause="m1"))]
    await asyncio.gather(first, *waiting)
    assert got == ["first", "reply", "older push", "newer push"]
    assert ft.now() - 1_000_000.0 >= 3 - 0.01  # one turn a second


async def test_the_caps_are_read_checked_and_reloaded(tmp_path, harness):
    assert (harness.bot.transport.pace.per_minute, harness.bot.transport.pace.per_hour) == (10, 100)
    tmp_path = tmp_path / "other"  # beside the running bot's own config
    tmp_path.mkdir()
    cfg = load_config(write_config(tmp_path))
    assert (cfg.transport.api_per_minute, cfg.transport.api_per_hour) == (6000, 120_000)
    harness.runtime.apply_config(cfg)  # what the config watcher does on a change
    assert (harness.bot.transport.pace.per_minute, harness.bot.transport.pace.per_hour) == (6000, 120_000)
    with pytest.raises(ConfigError) as e:
        load_config(write_config(tmp_path, "\n[transport]\napi_per_minute = 3000\napi_per_hour = 1000\n"))
    assert "config.toml:" in str(e.value) and "transport.api_per_hour" in str(e.value)
    assert "不能小于每分钟的上限" in str(e.value)
    with pytest.raises(ConfigError) as e:
        load_config(write_config(tmp_path, "\n[transport]\napi_per_minute = -5\n"))
    assert "transport.api_per_minute" in str(e.value)


async def test_a_robot_over_its_own_cap_waits_alone_and_its_push_is_not_lost(harness):
    """130101 "send too fast": that robot's cap, not the enterprise's: its push is retried
    (it used to be given up as refused for good) and the other sends do not pause."""
    ft, sent = on_fake_time(harness)
    tr = harness.bot.transport
    refused.clear()
    harness.emulator.fail_next("webhook/send", errcode=130101, count=1)
    tr.push_text("g1", "今日打卡提醒")
    tr.send_text("lisi", "你好")
    await harness.settle()
    assert [p["content"] for p in harness.pushes("g1")] == ["今日打卡提醒"]
    assert harness.replies("lisi") == ["你好"]
    assert tr.pace.blocked_until == 0 and list(tr.failed) == []


async def test_a_clock_set_back_does_not_stall_the_sends():
    # The pace counts time between turns; a clock that goes back (set by hand, or a test's
    # clock swapped in) must not leave it owing that span: sends went on stalling for it.
    ft = FakeTime()
    ft.t = 2_000_000_000.0
    pace = SendPace(60, 0, now=ft.now, sleep=ft.sleep)
    ft.t = 1_000_000.0
    before = ft.t
    await asyncio.wait_for(pace.turn(Outgoing("app", "lisi", "text", "回复")), timeout=1)
    assert ft.t == before  # no sleep: the turn was given at once
