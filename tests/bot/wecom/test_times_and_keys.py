"""Callbacks with odd times and ids: out-of-range times are refused with 400 (never a 500), a
message without MsgId still has a key of its own, and a callback signed long ago (a captured
request replayed) is refused, logged, and stores nothing."""

from __future__ import annotations

import json
from datetime import timedelta
from urllib.parse import urlencode

from loguru import logger

from bot.emulator import cipher as indep

from tests.support.factories import AES_KEY, AIBOT_AES_KEY, AIBOT_ID, AIBOT_TOKEN, CORP_ID, TOKEN


def app_xml(userid: str, create_time: int, content: str, msgid: str | None) -> str:
    return (f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><FromUserName><![CDATA[{userid}]]></FromUserName>"
            f"<CreateTime>{create_time}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{content}]]></Content>"
            + (f"<MsgId>{msgid}</MsgId>" if msgid else "") + "<AgentID>1000002</AgentID></xml>")


def app_request(xml: str, signed_at: int, nonce: str = "1234") -> tuple[str, bytes]:
    enc = indep.encrypt(AES_KEY, CORP_ID, xml)
    q = {"msg_signature": indep.signature(TOKEN, str(signed_at), nonce, enc), "timestamp": str(signed_at),
         "nonce": nonce}
    return "/wecom/callback?" + urlencode(q), indep.callback_envelope(CORP_ID, 1000002, enc).encode()


def aibot_request(payload: dict, signed_at: int, nonce: str = "5678") -> tuple[str, bytes]:
    enc = indep.encrypt(AIBOT_AES_KEY, "", json.dumps(payload, ensure_ascii=False))
    q = {"msg_signature": indep.signature(AIBOT_TOKEN, str(signed_at), nonce, enc), "timestamp": str(signed_at),
         "nonce": nonce}
    return "/wecom/aibot?" + urlencode(q), json.dumps({"encrypt": enc}).encode()


def now(harness) -> int:
    return int(harness.clock.now().timestamp())


async def post(harness, request: tuple[str, bytes]) -> tuple[int, str]:
    r = await harness.client.post(request[0], data=request[1])
    text = await r.text()
    await harness.settle()
    return r.status, text


async def test_a_create_time_out_of_range_is_a_400(harness):
    status, body = await post(harness, app_request(app_xml("lisi", 10**15, "清理小广告3处", "6100001"), now(harness)))
    assert status == 400 and "Traceback" not in body
    assert list(harness.store.docs("inbox")) == []
    # The bot is unharmed: the next good message is stored and answered.
    assert await harness.text("lisi", "清理小广告3处") == 200
    assert "小广告清理 3处" in harness.last_reply("lisi")


async def test_an_aibot_create_time_out_of_range_is_a_400(harness):
    payload = {"msgid": "aib-time-1", "aibotid": AIBOT_ID, "chattype": "single", "from": {"userid": "lisi"},
               "response_url": "", "msgtype": "text", "text": {"content": "清理小广告3处"}, "create_time": 10**20}
    status, body = await post(harness, aibot_request(payload, now(harness)))
    assert status == 400 and "Traceback" not in body
    assert list(harness.store.docs("inbox")) == []


async def test_texts_without_msgid_are_each_kept_and_a_resend_is_not(harness):
    t = now(harness)
    first = app_request(app_xml("lisi", t, "清理小广告3处", None), t)
    assert (await post(harness, first))[0] == 200
    assert (await post(harness, app_request(app_xml("lisi", t, "入户走访8户", None), t)))[0] == 200
    assert (await post(harness, first))[0] == 200  # WeCom's resend of the first: answered, not kept twice
    replies = harness.replies("lisi")
    assert len(replies) == 2
    assert "小广告清理 3处" in replies[0] and "入户走访 8户" in replies[1]
    assert len(list(harness.store.docs("reports"))) == 2


async def test_a_callback_signed_long_ago_is_refused_and_logged(harness):
    logs: list[str] = []
    sink = logger.add(lambda m: logs.append(str(m)), level="WARNING")
    try:
        captured = app_request(app_xml("lisi", now(harness), "清理小广告3处", "6100002"), now(harness))
        harness.clock.advance(weeks=15)  # replayed after dedupe has forgotten the message
        status, _ = await post(harness, captured)
        assert status == 403
        harness.clock.advance(weeks=-15)
        t = now(harness)
        stale = app_request(app_xml("lisi", t, "入户走访8户", "6100003"), t - 2 * 86400)
        assert (await post(harness, stale))[0] == 403
        early = app_request(app_xml("lisi", t, "入户走访8户", "6100004"), t + 2 * 86400)
        assert (await post(harness, early))[0] == 403
        payload = {"msgid": "aib-old-1", "aibotid": AIBOT_ID, "chattype": "single", "from": {"userid": "lisi"},
                   "response_url": "", "msgtype": "text", "text": {"content": "清理小广告3处"}}
        assert (await post(harness, aibot_request(payload, t - 2 * 86400)))[0] == 403
    finally:
        logger.remove(sink)
    assert list(harness.store.docs("inbox")) == []
    assert harness.replies("lisi") == []
    assert sum("timestamp" in line and "refused" in line for line in logs) == 4
    # A callback signed minutes ago (WeCom retries within minutes) is fine.
    late = app_request(app_xml("lisi", now(harness), "入户走访8户", "6100005"),
                       int((harness.clock.now() - timedelta(minutes=10)).timestamp()))
    assert (await post(harness, late))[0] == 200
    assert "入户走访 8户" in harness.last_reply("lisi")
