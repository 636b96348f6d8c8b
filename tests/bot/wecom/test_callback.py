"""The callback against WeCom's official sample vectors, hostile input, dedupe and durability."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest

from bot.app import create_app
from bot.clock import FakeClock
from bot.config_loading import load_config
from bot.emulator import cipher as indep

from tests.support.factories import BASE_CONFIG, CORP_ID, TOKEN, AES_KEY, write_config

TZ = ZoneInfo("Asia/Shanghai")

# Set A: WeCom's sample code (C#, PHP, Java).
A = dict(token="QDG6eK", key="jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", corp="wx5823bf96d3bd56c7")
A1 = dict(msg_signature="5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3", timestamp="1409659589", nonce="263014780",
          echostr="P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==")
A2_QUERY = dict(msg_signature="477715d11cdb4164915debcba66cb864d751f3e6", timestamp="1409659813", nonce="1372623149")
A2_BODY = ("<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName><Encrypt><![CDATA[RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q==]]></Encrypt>"
           "<AgentID><![CDATA[218]]></AgentID></xml>")
# Set B: the official Python sample (sbzhu/weworkapi_python).
B = dict(token="hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo", key="6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt",
         corp="ww1436e0e65a779aee")
B1 = dict(msg_signature="012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb", timestamp="1476416373", nonce="47744683",
          echostr="fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA==")
B2_QUERY = dict(msg_signature="0c3914025cb4b4d68103f6bfc8db550f79dcf48e", timestamp="1476422779", nonce="1597212914")
B2_BODY = ("<xml><ToUserName><![CDATA[ww1436e0e65a779aee]]></ToUserName>\n<Encrypt><![CDATA[Kl7kjoSf6DMD1zh7rtrHjFaDapSCkaOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3NyeTkAgGzBhzTtRLNshw2AEew+kkYcD+Fq72Kt00fT0WnN87hGrW8SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfde0VJPQbZ9U+3JWcoD4Z5jaU0y9GSh010wsHF8KZD24YhmZH4ch4Ka7ilEbjbfvhKkNL65HHL0J6EYJIZUC2pFrdkJ7MhmEbU2qARR4iQHE7wy24qy0cRX3Mfp6iELcDNfSsPGjUQVDGxQDCWjayJOpcwocugux082f49HKYg84EpHSGXAyh+/oxwaWbvL6aSDPOYuPDGOCI8jmnKiypE+]]></Encrypt>\n"
           "<AgentID><![CDATA[1000002]]></AgentID>\n</xml>")

VECTOR_PEOPLE = """
[[people]]
userid = "mycreate"
name = "样例用户A"
role = "member"
grid = "g1"

[[people]]
userid = "ChenJiaShun"
name = "陈家顺"
role = "member"
grid = "g1"
"""


def vector_config(tmp_path, s: dict):
    text = (BASE_CONFIG.replace(TOKEN, s["token"]).replace(AES_KEY, s["key"]).replace(CORP_ID, s["corp"])
            + VECTOR_PEOPLE)
    return load_config(write_config(tmp_path, base=text))


@pytest.fixture
async def client_for(aiohttp_client, tmp_path):
    async def make(s: dict, at: str | None = None):
        # The bot's clock at the moment WeCom signed the sample: it refuses callbacks signed
        # more than a day from its own time.
        clock = FakeClock(TZ, datetime.fromtimestamp(int(at), TZ)) if at else None
        app = create_app(vector_config(tmp_path, s), clock=clock)
        return app, await aiohttp_client(app)
    return make


def encoded(params: dict) -> str:
    # As WeCom sends it: every reserved character percent-encoded ('+' as %2B).
    return "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())


@pytest.mark.parametrize("vector,expected", [((A, A1), "1616140317555161061"), ((B, B1), "1288432023552776189")])
async def test_url_verification_official_vectors(client_for, vector, expected):
    s, params = vector
    _, client = await client_for(s)
    r = await client.get("/wecom/callback?" + encoded(params))
    assert r.status == 200
    assert await r.text() == expected


async def test_url_verification_with_literal_plus(client_for):
    # A hand-made URL may carry '+' unencoded; it must still verify (yarl would turn it into a space).
    _, client = await client_for(A)
    query = "&".join(f"{k}={v.replace('/', '%2F').replace('=', '%3D')}" for k, v in A1.items())
    r = await client.get("/wecom/callback?" + query)
    assert r.status == 200 and await r.text() == "1616140317555161061"


async def test_bad_echostr_signature_is_refused(client_for):
    _, client = await client_for(A)
    r = await client.get("/wecom/callback?" + encoded({**A1, "msg_signature": "0" * 40}))
    assert r.status == 403
    assert "Traceback" not in await r.text()


@pytest.mark.parametrize("vector,sender,content,msgid", [
    ((A, A2_QUERY, A2_BODY), "mycreate", "hello", "4561255354251345929"),
    ((B, B2_QUERY, B2_BODY), "ChenJiaShun", "你好", "1456453720"),
])
async def test_message_official_vectors_are_stored(client_for, vector, sender, content, msgid):
    s, query, body = vector
    app, client = await client_for(s, at=query["timestamp"])
    r = await client.post("/wecom/callback?" + encoded(query), data=body.encode())
    assert r.status == 200 and await r.text() == ""
    from bot.app import RUNTIME_KEY
    rt = app[RUNTIME_KEY]
    await rt.bot.idle()
    doc = rt.store.get("inbox", msgid)
    assert doc["event"]["sender"] == sender and doc["event"]["content"] == content


async def test_independent_encryption_is_accepted(harness):
    """A message encrypted by our own cryptography-based implementation, not wechatpy."""
    xml, msgid = harness.emulator.build_xml("lisi", "text", {"Content": "入户走访8户"})
    enc = indep.encrypt(AES_KEY, CORP_ID, xml)
    q = dict(timestamp=str(int(harness.clock.now().timestamp())), nonce="42")
    q["msg_signature"] = indep.signature(TOKEN, q["timestamp"], q["nonce"], enc)
    r = await harness.client.post("/wecom/callback?" + encoded(q),
                                  data=indep.callback_envelope(CORP_ID, 1000002, enc).encode())
    assert r.status == 200
    await harness.settle()
    assert "入户走访 8户" in harness.last_reply("lisi")


def _signed(harness, xml_plain: str, corp: str = CORP_ID, key: str = AES_KEY) -> tuple[str, bytes]:
    enc = indep.encrypt(key, corp, xml_plain)
    q = dict(timestamp=str(int(harness.clock.now().timestamp())), nonce="7")
    q["msg_signature"] = indep.signature(TOKEN, q["timestamp"], q["nonce"], enc)
    return encoded(q), indep.callback_envelope(corp, 1000002, enc).encode()


BILLION_LAUGHS = b"""<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">
<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><xml><Encrypt>&lol3;</Encrypt></xml>"""
XXE = b"""<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><xml><Encrypt>&xxe;</Encrypt></xml>"""


@pytest.mark.parametrize("name", ["no_query", "garbage", "xxe", "billion_laughs", "empty", "garbage_cipher",
                                  "wrong_corp", "wrong_key", "no_encrypt", "deep_nesting"])
async def test_hostile_posts_get_4xx_and_store_nothing(harness, name):
    xml, _ = harness.emulator.build_xml("lisi", "text", {"Content": "清理小广告3处"})
    good_q, good_body = _signed(harness, xml)
    cases = {
        "no_query": ("", good_body),
        "garbage": (good_q, b"\x00\xff garbage bytes \x13"),
        "xxe": (good_q, XXE),
        "billion_laughs": (good_q, BILLION_LAUGHS),
        "empty": (good_q, b""),
        "garbage_cipher": _garbage_cipher(),
        "wrong_corp": _signed(harness, xml, corp="wwsomeoneelse00001"),
        "wrong_key": _signed(harness, xml, key="Z" * 43),
        "no_encrypt": (good_q, b"<xml><ToUserName>x</ToUserName></xml>"),
        "deep_nesting": (good_q, b"<xml>" + b"<a>" * 100_000 + b"</a>" * 100_000 + b"</xml>"),
    }
    query, body = cases[name]
    r = await harness.client.post("/wecom/callback?" + query, data=body)
    assert 400 <= r.status < 500
    assert "Traceback" not in await r.text()
    await harness.settle()
    assert list(harness.store.docs("inbox")) == []
    assert list(harness.store.docs("reports")) == []


def _garbage_cipher():
    enc = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY="
    q = dict(timestamp="1700000000", nonce="7")
    q["msg_signature"] = indep.signature(TOKEN, q["timestamp"], q["nonce"], enc)
    return encoded(q), indep.callback_envelope(CORP_ID, 1000002, enc).encode()


def test_envelope_reader_refuses_nesting_and_declarations_and_reads_a_real_envelope():
    from bot.wecom.inbound import envelope_fields
    assert envelope_fields(indep.callback_envelope(CORP_ID, 1000002, "abc").encode()) == {
        "ToUserName": CORP_ID, "Encrypt": "abc", "AgentID": "1000002"}
    for hostile in (XXE, BILLION_LAUGHS, b"<xml><a><b>x</b></a></xml>"):
        with pytest.raises(ValueError):
            envelope_fields(hostile)


PLAINTEXTS = [
    "<xml><ToUserName><![CDATA[ww1]]></ToUserName><FromUserName><![CDATA[zhangsan]]></FromUserName>"
    "<CreateTime>1764034200</CreateTime><MsgType><![CDATA[text]]></MsgType>"
    "<Content><![CDATA[  清理小广告15处 <b>&amp;\n ]]></Content><MsgId>1234567890123456</MsgId>"
    "<AgentID>1000002</AgentID></xml>",
    "<xml><ToUserName>ww1</ToUserName><FromUserName>lisi</FromUserName><CreateTime>1764034200</CreateTime>"
    "<MsgType>image</MsgType><PicUrl></PicUrl><MediaId><![CDATA[m1]]></MediaId><MsgId>7</MsgId>"
    "<AgentID>1000002</AgentID></xml>",
    "<xml><FromUserName>lisi</FromUserName><CreateTime>1764034200</CreateTime><MsgType>location</MsgType>"
    "<Location_X>23.13</Location_X><Location_Y>113.26</Location_Y><Scale>15</Scale><Label>天河路</Label>"
    "<MsgId>8</MsgId><AppType><![CDATA[wxwork]]></AppType></xml>",
    "<xml><FromUserName>lisi</FromUserName><CreateTime>1764034200</CreateTime><MsgType>voice</MsgType>"
    "<MediaId>v1</MediaId><Format>amr</Format><MsgId>9</MsgId></xml>",
    "<xml><FromUserName>lisi</FromUserName><CreateTime>1764034200</CreateTime><MsgType>event</MsgType>"
    "<Event>LOCATION</Event><Latitude>23.1</Latitude><Longitude>113.2</Longitude><Precision>30</Precision>"
    "<AgentID>1000002</AgentID></xml>",
    "<xml><FromUserName>lisi</FromUserName><CreateTime>1764034200</CreateTime><MsgType>event</MsgType>"
    "<Event>enter_agent</Event><EventKey></EventKey><AgentID>1000002</AgentID></xml>",
    "<xml><FromUserName>lisi</FromUserName><CreateTime>1764034200</CreateTime><MsgType>event</MsgType>"
    "<Event>pic_sysphoto</Event><EventKey>k</EventKey><SendPicsInfo><Count>1</Count><PicList><item>"
    "<PicMd5Sum>abc</PicMd5Sum></item></PicList></SendPicsInfo><AgentID>1000002</AgentID></xml>",
    "<xml><FromUserName>lisi</FromUserName><CreateTime>1764034200</CreateTime><MsgType>shortvideo</MsgType>"
    "<MsgId>10</MsgId></xml>",
]


@pytest.mark.parametrize("xml", PLAINTEXTS, ids=["text", "image", "location", "voice", "location-event",
                                                 "enter-agent", "nested-event", "unknown"])
def test_message_reader_gives_what_wechatpy_parse_message_gives(xml):
    from wechatpy.enterprise import parse_message
    from bot.wecom.inbound import parse_plaintext, to_event
    fast, slow = parse_plaintext(xml), parse_message(xml)
    assert type(fast) is type(slow)
    assert fast._data == slow._data
    for name in type(slow)._fields:
        assert getattr(fast, name) == getattr(slow, name), name
    event = to_event(xml)
    assert event.sender in ("zhangsan", "lisi") and event.create_time == 1764034200


def test_message_reader_refuses_declarations():
    from bot.wecom.inbound import CallbackError, to_event
    for hostile in (XXE, BILLION_LAUGHS):
        with pytest.raises(CallbackError):
            to_event(hostile.decode())


async def test_oversized_body_is_refused_before_parsing(harness):
    r = await harness.client.post("/wecom/callback?msg_signature=x&timestamp=1&nonce=1", data=b"<" * (20 * 1024 * 1024))
    assert r.status == 413


async def test_unknown_sender_told_and_nothing_stored(harness):
    status = await harness.text("stranger", "清理小广告15处")
    assert status == 200
    assert "未登记" in harness.last_reply("stranger")
    assert list(harness.store.docs("inbox")) == []
    assert list(harness.store.docs("reports")) == []


async def test_retried_msgid_makes_one_record(harness):
    for _ in range(3):
        assert await harness.text("lisi", "清理小广告15处", msgid="777001") == 200
    reports = list(harness.store.docs("reports"))
    assert len(reports) == 1
    assert len(harness.replies("lisi")) == 1


async def test_dedupe_survives_restart(aiohttp_client, config_path, clock):
    from tests.support.factories import BotHarness
    cfg = load_config(config_path)
    for round_ in range(2):
        app = create_app(cfg, clock=clock)
        client = await aiohttp_client(app)
        h = BotHarness(app, client, clock)
        h.emulator.set_origin(str(client.make_url("")).rstrip("/"))
        assert await h.text("lisi", "入户走访8户", msgid="888001") == 200
        assert len(list(h.store.docs("reports"))) == 1
        await client.close()


def test_a_template_card_event_becomes_a_card_action():
    from bot.events import CardAction, event_from_dict
    from bot.wecom.inbound import to_event
    xml = ("<xml><ToUserName><![CDATA[ww]]></ToUserName><FromUserName><![CDATA[zhangsan]]></FromUserName>"
           "<CreateTime>1764034200</CreateTime><MsgType><![CDATA[event]]></MsgType>"
           "<Event><![CDATA[template_card_event]]></Event><EventKey><![CDATA[review:P1:1:reject]]></EventKey>"
           "<TaskId><![CDATA[review-P1-1-zhangsan]]></TaskId><CardType><![CDATA[button_interaction]]></CardType>"
           "<ResponseCode><![CDATA[rc-1]]></ResponseCode><AgentID>1000002</AgentID>"
           "<SelectedItems><SelectedItem><QuestionKey><![CDATA[reason]]></QuestionKey>"
           "<OptionIds><OptionId><![CDATA[r3]]></OptionId></OptionIds></SelectedItem></SelectedItems></xml>")
    e = to_event(xml)
    assert isinstance(e, CardAction)
    assert (e.sender, e.event_key, e.task_id, e.card_type, e.response_code, e.selected) == (
        "zhangsan", "review:P1:1:reject", "review-P1-1-zhangsan", "button_interaction", "rc-1", {"reason": ["r3"]})
    # Two taps in one second on different cards are two events; WeCom's resend of one is the same.
    assert e.key == "ev:zhangsan:1764034200:card:review-P1-1-zhangsan:review:P1:1:reject"
    # Journaled and replayed as it came.
    assert event_from_dict(e.to_dict()) == e
    flat = to_event(xml.split("<SelectedItems>")[0] + "</xml>")
    assert isinstance(flat, CardAction) and flat.selected is None
