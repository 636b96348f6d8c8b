"""An action that overtakes what it acts on: the grid leader's "整改 #P1" right after the reporter's
"问题:…", while the reporter's lane is still busy with a slow photo. The action waits briefly for
the grid's messages in flight instead of answering "没有找到"."""

from __future__ import annotations

import asyncio

from tests.support.photo_samples import jpeg, scene


def slow_photos(harness, monkeypatch, seconds: float) -> None:
    source = harness.bot.photo_source
    real = source.fetch

    async def slow(event):
        await asyncio.sleep(seconds)  # a big photo on a slow link: the sender's lane stays busy
        return await real(event)
    monkeypatch.setattr(source, "fetch", slow)


async def test_a_rectification_right_after_the_problem_waits_for_it(harness, monkeypatch):
    slow_photos(harness, monkeypatch, 0.8)
    await harness.image("lisi", jpeg(scene(3)), settle=False)
    await harness.text("lisi", "问题:幸福路3号楼下堆放建筑垃圾", settle=False)
    await harness.text("zhangsan", "整改 #P1 已清理", settle=False)  # at once, before #P1 exists
    await harness.settle()
    said = harness.replies("zhangsan")
    assert not any("没有找到" in r for r in said), said
    # The fix was taken on #P1 (it now waits for its after-photo and the community's check).
    assert any(h.get("by") == "zhangsan" for h in harness.store.get("problems", "P1")["history"][1:])


async def test_a_correction_right_after_the_report_waits_for_it(harness, monkeypatch):
    slow_photos(harness, monkeypatch, 0.8)
    await harness.image("lisi", jpeg(scene(4)), settle=False)
    await harness.text("lisi", "清理小广告15处", settle=False)
    await harness.text("zhangsan", "核实 #R1", settle=False)
    await harness.settle()
    said = harness.replies("zhangsan")
    assert not any("没有找到" in r for r in said), said
    assert harness.store.get("reports", "R1")["history"][-1]["action"] == "confirm"


async def test_a_number_that_never_comes_is_still_not_found_after_a_short_wait(harness, monkeypatch):
    slow_photos(harness, monkeypatch, 3)  # another member's photo, slower than the wait
    await harness.image("wangwu", jpeg(scene(5)), settle=False)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await harness.text("zhangsan", "整改 #P9 已清理", settle=False)
    while not harness.replies("zhangsan"):
        await asyncio.sleep(0.05)
    waited = loop.time() - started
    assert harness.last_reply("zhangsan").startswith("没有找到问题 #P9")
    assert 1.5 < waited < 2.8  # the wait is bounded: 2 s, not the photo's 3 s
    await harness.settle()


async def test_no_wait_when_nothing_is_in_flight(harness):
    loop = asyncio.get_running_loop()
    started = loop.time()
    await harness.text("zhangsan", "整改 #P9 已清理")
    assert harness.last_reply("zhangsan").startswith("没有找到问题 #P9")
    assert loop.time() - started < 1.0
