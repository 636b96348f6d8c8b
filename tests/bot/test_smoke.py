async def test_text_report_answered_through_emulator(harness):
    status = await harness.text("lisi", "清理小广告15处,入户走访十二户")
    assert status == 200
    reply = harness.last_reply("lisi")
    assert "已记录 #R1" in reply
    assert "小广告清理 15处" in reply


async def test_a_running_bot_gives_the_loop_the_gil_back_within_a_millisecond(harness):
    # A thread working in Python (checkpoint, tally, digest) kept callbacks waiting behind it
    # for up to 5 ms at every I/O of theirs, the interpreter's default.
    import sys

    from bot.runtime import SWITCH_INTERVAL
    assert sys.getswitchinterval() == SWITCH_INTERVAL <= 0.001
    assert await harness.text("lisi", "入户走访3户") == 200
