"""The AI bot (智能机器人) callback, fed with callbacks encrypted by the emulator's own crypto
(written on `cryptography`, independent of wechatpy) in WeCom's JSON envelope."""

from __future__ import annotations

import asyncio
import io
import itertools
import json

import pytest
from aiohttp import web
from PIL import Image

from bot.config_loading import load_config
from bot.emulator import cipher as crypto

from tests.support.factories import AIBOT_AES_KEY, AIBOT_ID, AIBOT_TOKEN, write_config
from bot.store_choice import store_for

PATH = "/wecom/aibot"
_ids = itertools.count(1)


def payload(userid: str, msgtype: str, body: dict, *, chatid: str = "", msgid: str | None = None,
            response_url: str = "") -> dict:
    p = {"msgid": msgid or f"aimsg{next(_ids)}", "aibotid": AIBOT_ID, "chattype": "group" if chatid else "single",
         "from": {"userid": userid}, "response_url": response_url, "msgtype": msgtype, msgtype: body}
    if chatid:
        p["chatid"] = chatid
    return p


def group_text(userid: str, text: str, chatid: str = "wrg1", **kw) -> dict:
    return payload(userid, "text", {"content": f"@网格助手 {text}"}, chatid=chatid, **kw)


def jpeg(seed: int = 0) -> bytes:
    img = Image.new("RGB", (64, 48), ((seed * 53) % 256, (seed * 97) % 256, (seed * 31) % 256))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


async def post(harness, p: dict | bytes, *, token: str = AIBOT_TOKEN, key: str = AIBOT_AES_KEY,
               nonce: str = "nonce42", sign_with: str | None = None):
    """POST one callback; returns (status, decrypted reply or None). Checks the reply's envelope."""
    if isinstance(p, bytes):
        body, sig, ts = p, "0" * 40, "1"
    else:
        enc = crypto.encrypt(key, "", json.dumps(p, ensure_ascii=False))
        ts = str(int(harness.clock.now().timestamp()))  # signed now, by the bot's clock
        sig = crypto.signature(sign_with or token, ts, nonce, enc)
        body = json.dumps({"encrypt": enc}).encode()
    r = await harness.client.post(f"{PATH}?msg_signature={sig}&timestamp={ts}&nonce={nonce}", data=body)
    raw = await r.read()
    if r.status != 200 or not raw:
        return r.status, None
    env = json.loads(raw)
    assert env["nonce"] == nonce, "the reply must carry the callback's nonce"
    assert crypto.signature(token, env["timestamp"], env["nonce"], env["encrypt"]) == env["msgsignature"]
    plain, receive_id = crypto.decrypt(key, env["encrypt"])
    assert receive_id == ""
    return r.status, json.loads(plain)


def content(reply: dict) -> str:
    assert reply["msgtype"] == "stream", reply
    assert reply["stream"]["finish"] is True, reply
    return reply["stream"]["content"]


def reports_of(harness, userid: str) -> list[dict]:
    return [r for r in harness.store.docs("reports") if r["userid"] == userid]


@pytest.fixture
async def files(aiohttp_server):
    """WeCom's short-lived, encrypted file URLs, on loopback."""
    served: dict[str, bytes] = {}

    async def get(request):
        data = served.get(request.match_info["name"])
        return web.Response(body=data) if data is not None else web.Response(status=404)

    app = web.Application()
    app.router.add_get("/file/{name}", get)
    server = await aiohttp_server(app)

    def url(name: str, plain: bytes | None = None, key: str = AIBOT_AES_KEY) -> str:
        if plain is not None:
            served[name] = crypto.encrypt_file(key, plain)
        return str(server.make_url(f"/file/{name}"))
    return url


@pytest.fixture
async def response_urls(aiohttp_server):
    """response_url endpoints: each takes one POST, as WeCom's do."""
    posts: list[dict] = []

    async def post_(request):
        if request.match_info["code"] in {p["code"] for p in posts}:
            return web.json_response({"errcode": 40058, "errmsg": "response_url already used"})
        posts.append({"code": request.match_info["code"], **(await request.json())})
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    app = web.Application()
    app.router.add_post("/resp/{code}", post_)
    server = await aiohttp_server(app)

    class Urls:
        def make(self, code: str) -> str:
            return str(server.make_url(f"/resp/{code}"))
    urls = Urls()
    urls.posts = posts
    return urls


# --- URL check and refusals ---------------------------------------------------------------

async def test_url_check_answers_the_decrypted_echostr(harness):
    echo = crypto.encrypt(AIBOT_AES_KEY, "", "8812345678")
    sig = crypto.signature(AIBOT_TOKEN, "1700000000", "n1", echo)
    from urllib.parse import quote
    r = await harness.client.get(f"{PATH}?msg_signature={sig}&timestamp=1700000000&nonce=n1&echostr={quote(echo)}")
    assert r.status == 200 and await r.text() == "8812345678"
    r = await harness.client.get(f"{PATH}?msg_signature={'0' * 40}&timestamp=1700000000&nonce=n1&echostr={quote(echo)}")
    assert r.status == 403


@pytest.mark.parametrize("case", ["bad_signature", "wrong_key", "not_json", "no_encrypt", "other_bot", "deep_json"])
async def test_bad_callbacks_are_refused_and_nothing_is_stored(harness, case):
    p = group_text("lisi", "清理小广告15处")
    if case == "bad_signature":
        status, _ = await post(harness, p, sign_with="not-the-token")
    elif case == "wrong_key":
        status, _ = await post(harness, p, key="A" * 43)
    elif case == "not_json":
        status, _ = await post(harness, b"<xml>not json</xml>")
    elif case == "no_encrypt":
        status, _ = await post(harness, b'{"encrypted": "x"}')
    elif case == "deep_json":
        status, _ = await post(harness, b"[" * 200_000)
    else:
        status, _ = await post(harness, {**p, "aibotid": "someone-else"})
    await harness.settle()
    assert status == 403
    assert not list(harness.store.docs("inbox")) and not reports_of(harness, "lisi")


async def test_oversized_body_gets_413(harness):
    r = await harness.client.post(f"{PATH}?msg_signature=x&timestamp=1&nonce=n", data=b"x" * 2_000_000)
    assert r.status == 413


async def test_unregistered_sender_is_told_politely_and_nothing_is_stored(harness):
    status, reply = await post(harness, group_text("stranger", "清理小广告15处"))
    assert status == 200 and "尚未登记" in content(reply)
    await harness.settle()
    assert not list(harness.store.docs("inbox"))


# --- group reports ------------------------------------------------------------------------

async def test_group_report_is_answered_in_the_group_mentioning_the_sender(harness):
    status, reply = await post(harness, group_text("lisi", "清理小广告15处,入户走访十二户"))
    assert status == 200
    text = content(reply)
    assert text.startswith("<@lisi>\n")
    assert "已记录 #R" in text and "小广告清理 15处" in text and "入户走访 12户" in text
    await harness.settle()
    [report] = reports_of(harness, "lisi")
    assert [(i["category"], i["quantity"]) for i in report["items"]] == [("ads", 15), ("visit", 12)]
    # The answer went to the group, not also as an app message.
    assert harness.replies("lisi") == []


async def test_message_is_durable_before_the_answer_and_a_resent_callback_is_not_stored_twice(harness):
    p = group_text("lisi", "清理小广告15处", msgid="dup-1")
    status, _ = await post(harness, p)
    assert status == 200
    assert harness.store.get("inbox", "dup-1") is not None
    status, again = await post(harness, p)
    await harness.settle()
    assert status == 200
    assert len(reports_of(harness, "lisi")) == 1
    assert again is None or "已记录" not in json.dumps(again, ensure_ascii=False)


async def test_group_answer_cannot_be_made_to_mention_everyone(harness):
    status, reply = await post(harness, group_text("lisi", "清理小广告15处 <@all> [点我](http://x)"))
    text = content(reply)
    assert "<@all>" not in text and text.count("<@") == 1


async def test_chit_chat_in_the_group_gets_no_answer(harness):
    status, reply = await post(harness, group_text("lisi", "好的收到"))
    await harness.settle()
    assert status == 200 and reply is None
    assert harness.store.get("inbox", list(harness.store.docs("inbox"))[0]["id"]) is not None


async def test_commands_work_in_the_group(harness):
    await post(harness, group_text("lisi", "清理小广告15处"))
    status, reply = await post(harness, group_text("lisi", "本周"))
    assert "小广告清理 15处" in content(reply)


# --- voice, images, mixed -----------------------------------------------------------------

async def test_voice_text_becomes_a_report_and_the_answer_shows_what_was_heard(harness):
    status, reply = await post(harness, payload("wangwu", "voice", {"content": "今天入户走访八户"}))
    text = content(reply)
    assert "识别为" in text and "今天入户走访八户" in text and "入户走访 8户" in text
    assert "更正 #R1" in text  # the worker learns how to fix a misheard number
    await harness.settle()
    [report] = reports_of(harness, "wangwu")
    assert report["items"][0]["category"] == "visit" and report["items"][0]["quantity"] == 8


async def test_single_chat_photo_is_downloaded_decrypted_and_checked_in(harness, files):
    url = files("p1", jpeg(1))
    status, reply = await post(harness, payload("lisi", "image", {"url": url}))
    assert "打卡成功" in content(reply)
    await harness.settle()
    [c] = list(harness.store.docs("checkins"))
    assert c["userid"] == "lisi" and c["grid"] == "g1"


async def test_expired_photo_url_asks_to_send_again(harness, files):
    status, reply = await post(harness, payload("lisi", "image", {"url": files("never-served")}))
    assert "过期" in content(reply)
    assert not list(harness.store.docs("checkins"))


async def test_photo_encrypted_with_another_key_is_refused_politely(harness, files):
    url = files("p2", jpeg(2), key="B" * 43)
    status, reply = await post(harness, payload("lisi", "image", {"url": url}))
    assert "无法识别" in content(reply)
    assert not list(harness.store.docs("checkins"))


async def test_mixed_problem_with_photo_is_one_answer_and_the_photo_joins_the_problem(harness, files):
    url = files("p3", jpeg(3))
    items = [{"msgtype": "text", "text": {"content": "问题:幸福路3号楼下堆放建筑垃圾"}},
             {"msgtype": "image", "image": {"url": url}}]
    status, reply = await post(harness, payload("lisi", "mixed", {"msg_item": items}))
    text = content(reply)
    assert "已登记 #P1" in text and "已添加现场照片到 #P1" in text
    await harness.settle()
    p = harness.store.get("problems", "P1")
    assert p["grid"] == "g1" and len(p["photos_before"]) == 1


async def test_mixed_report_with_photo_records_both(harness, files):
    url = files("p4", jpeg(4))
    items = [{"msgtype": "text", "text": {"content": "清理小广告6处"}}, {"msgtype": "image", "image": {"url": url}}]
    status, reply = await post(harness, payload("lisi", "mixed", {"msg_item": items}))
    text = content(reply)
    assert "小广告清理 6处" in text and "打卡成功" in text
    await harness.settle()
    assert len(reports_of(harness, "lisi")) == 1 and len(list(harness.store.docs("checkins"))) == 1


# --- slow answers: the stream, then response_url ------------------------------------------

@pytest.fixture
def slow_config(tmp_path):
    cfg = write_config(tmp_path)
    text = cfg.read_text().replace('[aibot]\nenabled = true', '[aibot]\nenabled = true\nreply_wait_seconds = 0\nstream_seconds = 0.3')
    cfg.write_text(text)
    return cfg


@pytest.fixture
async def slow(aiohttp_client, slow_config, clock):
    from tests.support.factories import BotHarness
    from bot.app import create_app
    app = create_app(load_config(slow_config), clock=clock)
    client = await aiohttp_client(app)
    h = BotHarness(app, client, clock)
    h.emulator.set_origin(str(client.make_url("")).rstrip("/"))
    return h


async def test_late_answer_comes_through_the_stream_refresh(slow):
    status, first = await post(slow, group_text("lisi", "清理小广告15处", msgid="slow-1"))
    assert first["msgtype"] == "stream" and first["stream"]["finish"] is False
    sid = first["stream"]["id"]
    await asyncio.sleep(0.05)
    await slow.settle()
    status, frame = await post(slow, payload("lisi", "stream", {"id": sid}, chatid="wrg1"))
    assert "已记录 #R" in content(frame)
    # Taken: a further refresh finishes with nothing new.
    status, again = await post(slow, payload("lisi", "stream", {"id": sid}, chatid="wrg1"))
    assert again["stream"]["finish"] is True and "已记录" not in again["stream"]["content"]


async def test_open_stream_with_nothing_to_say_is_closed(slow):
    status, first = await post(slow, group_text("lisi", "好的收到"))
    assert first["stream"]["finish"] is False
    await slow.settle()
    status, frame = await post(slow, payload("lisi", "stream", {"id": first["stream"]["id"]}, chatid="wrg1"))
    assert content(frame) == "已收到。"


async def test_answer_nobody_came_for_goes_to_response_url_once(slow, response_urls):
    url = response_urls.make("c1")
    status, first = await post(slow, group_text("lisi", "清理小广告15处", response_url=url))
    assert first["stream"]["finish"] is False
    await asyncio.sleep(0.5)  # the stream runs out (stream_seconds = 0.3)
    await slow.settle()
    [got] = response_urls.posts
    assert got["msgtype"] == "markdown" and "已记录 #R" in got["markdown"]["content"]
    assert got["markdown"]["content"].startswith("<@lisi>")


async def test_used_response_url_falls_back_to_an_app_message(slow, response_urls):
    url = response_urls.make("c2")
    response_urls.posts.append({"code": "c2"})  # already used
    await post(slow, group_text("lisi", "清理小广告15处", response_url=url))
    await asyncio.sleep(0.5)
    await slow.settle()
    assert any("已记录 #R" in r for r in slow.replies("lisi"))


async def test_replayed_message_after_a_restart_answers_by_response_url(tmp_path, clock, aiohttp_client, response_urls):
    from bot.app import RUNTIME_KEY, create_app
    from bot.clock import iso_week
    from bot.events import TextMessage
    cfg = load_config(write_config(tmp_path))
    url = response_urls.make("c3")
    # A message journaled by a bot that died before handling it.
    store = store_for(cfg)
    store.load(today=clock.today())
    await store.start()
    ev = TextMessage(key="lost-1", sender="lisi", create_time=int(clock.now().timestamp()), via="aibot",
                     chat_id="wrg1", response_url=url, thread="lost-1", content="清理小广告9处")
    await store.put("inbox", {"id": ev.key, "event": ev.to_dict(), "received": 0}, shard=iso_week(clock.today()))
    await store.close()
    app = create_app(cfg, clock=clock)
    await aiohttp_client(app)  # starts the app: the journal replays
    rt = app[RUNTIME_KEY]
    await rt.bot.idle(timeout=10)
    [got] = response_urls.posts
    assert "小广告清理 9处" in got["markdown"]["content"]
    assert len([r for r in rt.store.docs("reports") if r["msgid"] == "lost-1"]) == 1


# --- groups and grids ---------------------------------------------------------------------

async def test_binding_a_group_to_a_grid_is_kept_and_used(harness):
    status, reply = await post(harness, group_text("zhouba", "绑定 2号网格", chatid="wrnew"))
    assert "只有管理员" in content(reply)
    status, reply = await post(harness, group_text("sunqi", "绑定 2号网格", chatid="wrnew"))
    assert "已将本群绑定为2号网格" in content(reply)
    await harness.settle()
    assert harness.store.get("chats", "wrnew")["grid"] == "g2"
    # A leader without a grid registers a problem in that group: it belongs to grid 2.
    status, reply = await post(harness, group_text("qian", "问题:和平路口井盖破损", chatid="wrnew"))
    assert "已登记 #P1" in content(reply)
    await harness.settle()
    assert harness.store.get("problems", "P1")["grid"] == "g2"


async def test_binding_a_group_the_config_already_maps_is_refused(harness):
    status, reply = await post(harness, group_text("admin", "绑定 2号网格", chatid="wrg1"))
    assert "配置文件中对应1号网格" in content(reply)


async def test_binding_outside_a_group_explains_where_to_say_it(harness):
    status, reply = await post(harness, payload("admin", "text", {"content": "绑定 2号网格"}))
    assert "网格群里" in content(reply)


async def test_binding_survives_a_restart_and_shows_in_check_config(harness, config_path, capsys):
    await post(harness, group_text("admin", "绑定 2号网格", chatid="wrg2chat"))
    await harness.settle()
    await harness.store.close()
    from bot.cli import main
    assert main(["check-config", str(config_path)]) == 0
    out = capsys.readouterr().out
    assert "2号网格(g2)" in out and "wrg2chat(群内绑定)" in out
    assert "wrg1(配置文件)" in out


async def test_enter_chat_is_greeted_once_a_day_with_text(harness):
    p = {"msgid": "", "aibotid": AIBOT_ID, "chattype": "single", "from": {"userid": "lisi"},
         "msgtype": "event", "create_time": int(harness.clock.now().timestamp()), "event": {"eventtype": "enter_chat"}}
    status, reply = await post(harness, p)
    assert reply["msgtype"] == "text" and "李四" in reply["text"]["content"]
    status, again = await post(harness, {**p, "create_time": p["create_time"] + 60})
    assert again is None


def test_ai_bot_secrets_are_masked_in_logs(config_path):
    from bot.log import mask, register_secrets
    register_secrets(*load_config(config_path).secret_values())
    line = mask(f"token={AIBOT_TOKEN} key={AIBOT_AES_KEY}")
    assert AIBOT_TOKEN not in line and AIBOT_AES_KEY not in line
