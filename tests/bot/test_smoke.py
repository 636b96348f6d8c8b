async def test_text_report_answered_through_emulator(harness):
    status = await harness.text("lisi", "清理小广告15处,入户走访十二户")
    assert status == 200
    reply = harness.last_reply("lisi")
    assert "已记录 #R1" in reply
    assert "小广告清理 15处" in reply
