"""Outbound: caps respected (never dropped), floods coalesced, retries, token caching, splitting."""

from __future__ import annotations

import asyncio
import io
import re

from PIL import Image

from bot.transport import TEXT_LIMIT, split_text
from bot.wecom.api import WecomClient

from tests.support.fake_time import FakeTime


def use_fake_time(harness) -> FakeTime:
    ft = FakeTime()
    tr = harness.bot.transport
    tr._now, tr._sleep, tr.backoff = ft.now, ft.sleep, 0.5
    harness.emulator.now = ft.now
    return ft


async def test_robot_cap_is_respected_not_dropped(harness):
    ft = use_fake_time(harness)
    start = ft.now()
    for i in range(25):
        harness.bot.transport.push_text("g1", f"通知{i}")
    await harness.settle()
    pushes = [p["content"] for p in harness.pushes("g1")]
    assert pushes == [f"通知{i}" for i in range(25)]
    assert ft.now() - start >= 60  # the 21st waited for the minute to pass
    assert list(harness.bot.transport.failed) == []


async def test_flood_to_one_person_is_coalesced(harness):
    use_fake_time(harness)
    for i in range(80):
        harness.bot.transport.send_text("lisi", f"已记录 #R{i}\n· 详情")
    harness.bot.transport.send_text("wangwu", "别人的回复")
    await harness.settle()
    got = harness.replies("lisi")
    assert len(got) <= 31
    assert "合并回复" in got[-1] and "80" not in got[0]
    assert harness.emulator.dropped == []  # nothing beyond WeCom's cap was sent
    assert harness.replies("wangwu") == ["别人的回复"]


async def test_transient_failures_are_retried(harness):
    use_fake_time(harness)
    harness.emulator.fail_next("message/send", status=502, count=2)
    harness.emulator.fail_next("webhook/send", errcode=45009, count=1)
    harness.bot.transport.send_text("lisi", "你好")
    harness.bot.transport.push_text("g1", "群通知")
    await harness.settle()
    assert harness.replies("lisi") == ["你好"]
    assert [p["content"] for p in harness.pushes("g1")] == ["群通知"]


async def test_permanent_failure_is_logged_not_retried_forever(harness):
    use_fake_time(harness)
    harness.bot.transport.send_text("bad user!", "你好")
    await harness.settle()
    [failed] = harness.bot.transport.failed
    assert failed.target == "bad user!"


async def test_token_fetched_once_for_concurrent_sends_and_refreshed_once(harness):
    client: WecomClient = harness.bot.transport.client
    await asyncio.gather(*(client.message_send(["lisi"], "text", {"content": f"m{i}"}) for i in range(20)))
    assert client.token_fetches == 1
    harness.emulator.tokens.clear()  # WeCom invalidated the token early
    await client.message_send(["lisi"], "text", {"content": "again"})
    assert client.token_fetches == 2
    assert len(harness.replies("lisi")) == 21


async def test_media_expired_maps_to_its_own_error(harness):
    from bot.wecom.api import MediaExpired
    import pytest
    with pytest.raises(MediaExpired):
        await harness.bot.transport.client.media_get("no-such-media")


def test_split_text_on_lines():
    text = "\n".join(f"第{i}行 入户走访记录" for i in range(300))
    parts = split_text(text, TEXT_LIMIT)
    assert len(parts) > 1
    assert all(len(p.encode()) <= TEXT_LIMIT for p in parts)
    assert "\n".join(parts) == text
    long_line = "汉" * 2000
    assert all(len(p.encode()) <= TEXT_LIMIT for p in split_text(long_line, TEXT_LIMIT))
    assert "".join(split_text(long_line, TEXT_LIMIT)) == long_line


async def test_large_robot_image_is_downscaled(harness):
    import os
    img = Image.frombytes("RGB", (1800, 1800), os.urandom(1800 * 1800 * 3))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    assert buf.tell() > 2 * 1024 * 1024
    harness.bot.transport.push_image("g1", buf.getvalue())
    await harness.settle()
    [push] = harness.pushes("g1")
    assert push["msgtype"] == "image"
    data = harness.emulator.media[push["media_url"].rsplit("/", 1)[1]].data
    assert len(data) <= 2 * 1024 * 1024


async def test_flood_through_the_callback_is_kept_whole_and_answered_in_summary(harness):
    """100 reports from one person at once: every one acknowledged and stored, at most WeCom's
    30 replies a minute reach them (the rest folded into a summary that counts them), and
    another person's message in the middle of the flood is answered as usual."""
    ft = use_fake_time(harness)
    accepted = asyncio.Event()
    queued: list[int] = []  # the transport's queue, each time the cap's minute has passed

    async def a_minute_passes(seconds: float) -> None:
        # Meanwhile the rest of the flood arrives and is handled, as it would within a real minute.
        ft.t += seconds
        await accepted.wait()
        while pending := [t for t in harness.bot.tasks if not t.done()]:
            await asyncio.wait(pending)
        queued.append(harness.bot.transport.pending())
    harness.bot.transport._sleep = a_minute_passes
    flood = [harness.text("lisi", f"清理小广告{i % 50 + 1}处,编号{i}", msgid=f"880{i:04d}", settle=False)
             for i in range(100)]
    other = harness.text("wangwu", "入户走访6户", msgid="8899999", settle=False)
    statuses = await asyncio.gather(*flood[:50], other, *flood[50:])
    accepted.set()
    await harness.settle()
    assert statuses == [200] * 101
    stored = [r["msgid"] for r in harness.store.docs("reports") if r["userid"] == "lisi"]
    assert sorted(stored) == [f"880{i:04d}" for i in range(100)]

    got = harness.replies("lisi")
    single = [r for r in got if r.startswith("已记录 #R")]
    folded = [int(m.group(1)) for r in got if (m := re.search(r"您的(\d+)条消息均已记录", r))]
    assert len(single) == 30 and folded == [70] and len(got) == 31  # WeCom's cap, then one summary
    assert queued and max(queued) <= 1  # the other 69 replies joined the waiting summary
    assert harness.emulator.dropped == []
    assert "入户走访 6户" in harness.last_reply("wangwu")


async def test_a_card_goes_out_once_per_person_with_its_own_task_id(harness):
    card = {"card_type": "button_interaction", "main_title": {"title": "#P1 整改待核查"}, "task_id": "review-P1-1",
            "button_list": [{"text": "通过", "style": 1, "key": "review:P1:1:pass"}]}
    harness.bot.transport.send_card(["zhangsan", "zhoushuji"], card, "【待核查】#P1 …")
    await harness.settle()
    sent = [e for e in harness.emulator.sent("app_message") if e["msgtype"] == "template_card"]
    assert [(e["to"], e["card"]["task_id"]) for e in sent] == [
        (["zhangsan"], "review-P1-1-zhangsan"), (["zhoushuji"], "review-P1-1-zhoushuji")]
    assert all(e["response_code"] for e in sent)


async def test_a_card_wecom_refuses_arrives_as_its_text(harness):
    # An app with no callback URL may not send interactive cards: the person still hears it.
    harness.emulator.fail_next("message/send", errcode=40058)
    card = {"card_type": "button_interaction", "main_title": {"title": "#R1 上报待核实"}, "task_id": "confirm-R1",
            "button_list": [{"text": "核实无误", "style": 1, "key": "confirm:R1:yes"}]}
    harness.bot.transport.send_card("zhangsan", card, "【待核实】李四 #R1:清理小广告5000处")
    await harness.settle()
    assert harness.replies("zhangsan") == ["【待核实】李四 #R1:清理小广告5000处"]
    assert list(harness.bot.transport.failed) == []
