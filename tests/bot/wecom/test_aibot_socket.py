"""The AI bot over its long connection (`[aibot] mode = "websocket"`), end to end through the
emulator's WebSocket gateway: the bot connects out, subscribes, and everything a member says in
a grid group or alone reaches the same inbox and handlers as the callbacks; answers come back as
stream frames on the callback's req_id. Also the connection itself: heartbeats, a dropped
connection and what is lost with it, a kick by a second connection, wrong credentials."""

from __future__ import annotations

import asyncio
import io
import random

import pytest
from loguru import logger
from PIL import Image
from pydantic import SecretStr

from bot.emulator import cipher as crypto
from bot.events import TextMessage
from bot.router import Router
from bot.wecom.aibot_relay import STORE_FAILED
from bot.wecom.aibot_socket import AibotSocket, SocketError
from bot.wecom.selfcheck import aibot_check

from tests.support.socket_harness import WS_SECRET, start_ws, until, ws_config


def jpeg(seed: int = 0) -> bytes:
    img = Image.new("RGB", (64, 48), ((seed * 53) % 256, (seed * 97) % 256, (seed * 31) % 256))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture
async def ws(aiohttp_client, tmp_path, clock):
    return await start_ws(aiohttp_client, ws_config(tmp_path), clock)


def reports_of(h, userid: str) -> list[dict]:
    return [r for r in h.store.docs("reports") if r["userid"] == userid]


def replies_sent(h) -> list[dict]:
    return [f for f in h.gateway.frames if f.get("cmd") == "aibot_respond_msg"]


def put_in_front(h, router: Router) -> None:
    """A test router ahead of the real handlers (slow or long answers on demand)."""
    h.runtime.inbox.router = Router("test-front").include(router, h.runtime.inbox.router)


@pytest.fixture
def log_lines():
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(m.record["level"].name + " " + m.record["message"]), level="INFO")
    yield lines
    logger.remove(sink)


# --- people's messages, end to end ---------------------------------------------------------------


async def test_group_report_is_answered_in_the_group_over_the_socket(ws):
    d = await ws.group("lisi", "清理小广告15处,入户走访十二户")
    assert d.ok
    [answer] = ws.answers(grid="g1")
    assert answer.startswith("<@lisi>\n") and "已记录 #R1" in answer and "入户走访 12户" in answer
    [report] = reports_of(ws, "lisi")
    assert [(i["category"], i["quantity"]) for i in report["items"]] == [("ads", 15), ("visit", 12)]
    assert ws.store.get("inbox", d.msgid) is not None
    # One finished frame on the callback's own req_id; no app message beside it.
    [frame] = replies_sent(ws)
    [sent] = [c for c in ws.gateway.connections[0].callbacks.items() if c[1].msgid == d.msgid]
    assert frame["headers"]["req_id"] == sent[0]
    assert frame["body"]["stream"]["finish"] is True
    assert ws.replies("lisi") == []


async def test_single_chat_photo_is_downloaded_and_decrypted_with_its_own_key(ws):
    d = await ws.side.image("lisi", [(jpeg(1), "a.jpg", "image/jpeg")])
    await ws.settle()
    [answer] = ws.answers(to="lisi")
    assert "打卡成功" in answer
    [c] = list(ws.store.docs("checkins"))
    assert c["userid"] == "lisi" and c["grid"] == "g1"
    # The message carried the key; the file is not encrypted with the bot's configured key.
    image = ws.side.callbacks[-1]["image"]
    assert image["aeskey"] and len(image["aeskey"]) == 43
    token = image["url"].rsplit("/", 1)[1]
    encrypted = ws.side.files[token][0]
    assert crypto.decrypt_file(image["aeskey"], encrypted) == jpeg(1)
    with pytest.raises(ValueError):
        crypto.decrypt_file(ws.bot.config.aibot.encoding_aes_key.get_secret_value(), encrypted)
    assert d.ok


async def test_mixed_problem_with_photo_is_one_answer_and_the_photo_joins_the_problem(ws):
    await ws.side.image("lisi", [(jpeg(3), "a.jpg", "image/jpeg")], text="问题:幸福路3号楼下堆放建筑垃圾")
    await ws.settle()
    [answer] = ws.answers(to="lisi")
    assert "已登记 #P1" in answer and "已添加现场照片到 #P1" in answer
    p = ws.store.get("problems", "P1")
    assert p["grid"] == "g1" and len(p["photos_before"]) == 1


async def test_voice_is_a_report_and_the_answer_says_what_was_heard(ws):
    await ws.side.voice("wangwu", "今天入户走访八户")
    await ws.settle()
    [answer] = ws.answers(to="wangwu")
    assert "识别为" in answer and "入户走访 8户" in answer


async def test_enter_chat_is_greeted_with_a_welcome_frame(ws):
    await ws.side.event("lisi", "enter_chat")
    await ws.settle()
    [answer] = ws.answers(to="lisi")
    assert "李四" in answer
    [frame] = [f for f in ws.gateway.frames if f.get("cmd") == "aibot_respond_welcome_msg"]
    assert frame["body"]["msgtype"] == "text"


async def test_unregistered_sender_is_told_and_nothing_is_stored(ws):
    await ws.group("stranger", "清理小广告15处")
    [answer] = ws.answers(grid="g1")
    assert "尚未登记" in answer
    assert not list(ws.store.docs("inbox"))


async def test_a_message_delivered_twice_is_recorded_and_answered_once(ws):
    chat = ws.side.group("lisi", "g1")
    for _ in range(2):
        await ws.side.deliver(chat, "text", {"content": "@网格助手 清理小广告15处"}, msgid="twice-1")
    await ws.settle()
    assert len(reports_of(ws, "lisi")) == 1
    assert len(ws.answers(grid="g1")) == 1


async def test_a_message_that_cannot_be_stored_asks_to_send_it_again(ws, monkeypatch):
    async def disk_full(*a, **kw):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(ws.store, "put_many", disk_full)
    await ws.group("lisi", "清理小广告15处")
    [answer] = ws.answers(grid="g1")
    assert STORE_FAILED in answer and answer.startswith("<@lisi>")
    assert not reports_of(ws, "lisi")


# --- answers within WeCom's limits ---------------------------------------------------------------


async def test_an_answer_longer_than_a_stream_frame_comes_whole_in_several_bubbles(ws):
    router = Router("long")
    lines = [f"第{i}项:幸福路{i}号楼下堆放杂物已清理,居民反映情况已回复。" for i in range(600)]

    @router.on(TextMessage, filter=lambda e, ctx: e.content == "全部问题")
    async def long_answer(event, ctx):
        ctx.reply("\n".join(lines))
    put_in_front(ws, router)
    await ws.group("lisi", "全部问题")
    shown = ws.answers(grid="g1")
    assert len(shown) >= 2 and all(len(s.encode()) <= 20480 for s in shown)
    assert "\n".join(shown).replace("<@lisi>\n", "") == "\n".join(lines)  # nothing cut
    assert "截断" not in "".join(shown) and ws.side.errors == []
    frames = replies_sent(ws)
    assert len({f["headers"]["req_id"] for f in frames}) == 1  # all on the callback's req_id
    assert len({f["body"]["stream"]["id"] for f in frames}) == len(shown)


async def test_slow_answer_shows_working_then_replaces_it_in_the_same_stream(aiohttp_client, tmp_path, clock):
    h = await start_ws(aiohttp_client, ws_config(tmp_path, reply_wait_seconds=0), clock)
    router, go = Router("slow"), asyncio.Event()

    @router.on(TextMessage, filter=lambda e, ctx: e.content.startswith("慢"))
    async def slow(event, ctx):
        await go.wait()
        ctx.reply("处理完了")
    put_in_front(h, router)
    await h.group("lisi", "慢慢来", settle=False)
    await until(lambda: replies_sent(h), what="the first frame")
    [first] = replies_sent(h)
    assert first["body"]["stream"]["finish"] is False and "正在处理" in first["body"]["stream"]["content"]
    go.set()
    await h.settle()
    last = replies_sent(h)[-1]["body"]["stream"]
    assert last["id"] == first["body"]["stream"]["id"] and last["finish"] is True
    assert h.answers(grid="g1") == ["<@lisi>\n处理完了"]


async def test_stream_about_to_expire_is_closed_and_the_answer_comes_by_response_url(aiohttp_client, tmp_path,
                                                                                      clock):
    h = await start_ws(aiohttp_client, ws_config(tmp_path, reply_wait_seconds=0, stream_seconds=0.5), clock)
    router, go = Router("slow"), asyncio.Event()

    @router.on(TextMessage, filter=lambda e, ctx: e.content.startswith("慢"))
    async def slow(event, ctx):
        await go.wait()
        ctx.reply("清理小广告已记录")
    put_in_front(h, router)
    await h.group("lisi", "慢慢来", settle=False)
    await until(lambda: any(f["body"]["stream"]["finish"] for f in replies_sent(h)), what="the closing frame")
    shown = h.side.answers(grid="g1")
    assert [a["content"] for a in shown] == ["消息已收到,处理结果将稍后单独发送。"]
    await asyncio.sleep(0.2)  # the stream's time is up
    go.set()
    await h.settle()
    late = h.side.answers(grid="g1")[-1]
    assert late["via"] == "response_url" and late["content"] == "<@lisi>\n清理小广告已记录"


# --- the connection ------------------------------------------------------------------------------


async def test_heartbeats_keep_the_connection_and_a_silent_gateway_is_left_for_a_new_one(aiohttp_client, tmp_path,
                                                                                          clock):
    h = await start_ws(aiohttp_client, ws_config(tmp_path, heartbeat_seconds=1, ack_timeout_seconds=0.3), clock)
    await until(lambda: h.gateway.pings >= 2, 5, "two pings")
    assert [f["cmd"] for f in h.gateway.frames] == ["aibot_subscribe", "ping", "ping"]
    assert h.gateway.subscribes == 1
    # The gateway stops answering: after two unanswered pings the bot connects again.
    h.gateway.ack_delay = 0.5
    await until(lambda: h.gateway.subscribes >= 2, 10, "a new subscribe")
    h.gateway.ack_delay = 0
    await h.connected(2)
    d = await h.group("lisi", "清理小广告3处")
    assert d.ok and "小广告清理 3处" in h.answers(grid="g1")[-1]


async def test_reconnect_after_a_drop_loses_nothing_the_bot_received(aiohttp_client, tmp_path, clock):
    h = await start_ws(aiohttp_client, ws_config(tmp_path, reply_wait_seconds=0), clock)
    h.gateway.ack_delay = 0.3
    # A message reaches the bot; the connection drops while its answer is on the way.
    d1 = await h.group("lisi", "清理小广告15处", settle=False)
    await until(lambda: replies_sent(h), what="the first frame")
    h.gateway.drop()
    h.gateway.ack_delay = 0
    # Said while the bot is away: the gateway drops it, as WeCom does, and says so.
    d2 = await h.group("wangwu", "入户走访3户")
    assert not d2.ok and d2.status == 0 and "没有送达" in d2.error and d2.msgid in h.gateway.lost
    await h.connected(2)
    d3 = await h.group("wangwu", "入户走访5户")
    await h.settle()
    # The first message was journaled before any frame went out: stored once, and answered by
    # response_url, since its req_id died with the connection.
    assert h.store.get("inbox", d1.msgid) is not None
    assert len(reports_of(h, "lisi")) == 1
    [late] = [a for a in h.side.answers(grid="g1", to="lisi") if "已记录" in a["content"]]
    assert late["via"] == "response_url"
    assert [r["items"][0]["quantity"] for r in reports_of(h, "wangwu")] == [5]
    assert d3.ok and "入户走访 5户" in h.answers(grid="g1", to="wangwu")[-1]


async def test_kicked_by_a_second_connection_the_bot_stops_and_says_so(ws, log_lines):
    other = AibotSocket(lambda: ws.bot.config.aibot, ws.relay.url, lambda *a: None)
    other.start()
    try:
        await until(lambda: ws.relay.socket.state == "kicked", 5, "the kick")
        assert ws.gateway.subscribes == 2 and ws.gateway.current is not None
        await asyncio.sleep(1.5)  # longer than the first backoff: it does not come back
        assert ws.gateway.subscribes == 2 and ws.relay.socket.state == "kicked"
        assert any(line.startswith("ERROR") and "挤下线" in line and "不会自动重连" in line for line in log_lines)
        await ws.settle()
        assert "挤下线" in ws.last_reply("admin")  # the admins hear it too
        [result] = await aibot_check(ws.bot.config, ws.relay)
        assert not result.ok and "挤下线" in result.message
        # Messages now go to the other connection, not to this bot.
        await ws.side.group_text("lisi", "g1", "清理小广告15处")
        await asyncio.sleep(0.2)
        assert not reports_of(ws, "lisi")
    finally:
        await other.stop()


async def test_a_reset_secret_is_explained_and_the_new_one_taken_without_restart(aiohttp_client, tmp_path,
                                                                                   clock, log_lines):
    h = await start_ws(aiohttp_client, ws_config(tmp_path, reconnect_max_seconds=1), clock)
    sock = h.relay.socket
    # An admin resets the Secret in the console; the next connection is refused.
    h.gateway.credentials = ("aibot-test-1", "rotated-secret-2")
    h.gateway.drop()
    await until(lambda: sock.state == "refused", 10, "the refusal")
    assert not sock.subscribed.is_set()
    assert sock.backoff(0) == 1  # refused: the longest delay (subscribing is rate-protected)
    [result] = await aibot_check(h.bot.config, h.relay)
    assert not result.ok and "Bot ID 或 Secret 不正确" in result.message and "853000" in result.message
    assert WS_SECRET not in result.message
    assert any(line.startswith("ERROR") and "Secret 不正确" in line for line in log_lines)
    # The new secret goes into the config (hot reload): taken at the next attempt.
    cfg = h.bot.config
    h.runtime.apply_config(cfg.model_copy(update={"aibot": cfg.aibot.model_copy(
        update={"secret": SecretStr("rotated-secret-2")})}))
    await h.connected(2)
    assert sock.state == "subscribed"
    d = await h.group("lisi", "清理小广告2处")
    assert d.ok and "小广告清理 2处" in h.answers(grid="g1")[-1]


async def test_self_check_reports_a_working_connection(ws):
    [result] = await aibot_check(ws.bot.config, ws.relay)
    assert result.ok and "订阅成功" in result.message


def test_backoff_doubles_with_jitter_up_to_the_ceiling(config_path):
    from bot.config_loading import load_config
    cfg = load_config(config_path).aibot.model_copy(update={"reconnect_max_seconds": 30})
    sock = AibotSocket(lambda: cfg, lambda: "ws://x", lambda *a: None, rng=random.Random(7))
    delays = [[sock.backoff(n) for n in range(8)] for _ in range(50)]
    for row in delays:
        for n, d in enumerate(row):
            top = min(30, 2 ** n)
            assert top / 2 <= d <= top
    assert len({row[3] for row in delays}) > 10  # spread, not one value for every bot


# --- answers matched by req_id, against a scripted gateway ------------------------------------------


@pytest.fixture
async def scripted(aiohttp_server):
    """A gateway that answers each frame after `delay` seconds (in its own time, not in order),
    as `answer(frame)` says, and notes when each frame arrived."""
    from aiohttp import web

    class Gateway:
        delay = 0.2
        delay_of = None  # a function of the frame, else `delay`
        arrived: list[tuple[float, dict]] = []
        answer = staticmethod(lambda f: {"headers": f["headers"], "errcode": 0, "errmsg": "ok"})
        ws = None

    async def handle(request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        Gateway.ws = ws
        loop = asyncio.get_running_loop()
        tasks = set()
        async for msg in ws:
            frame = __import__("json").loads(msg.data)
            Gateway.arrived.append((loop.time(), frame))
            delay = (0 if frame.get("cmd") == "aibot_subscribe" else
                     Gateway.delay_of(frame) if Gateway.delay_of else Gateway.delay)

            async def later(frame=frame, delay=delay):
                await asyncio.sleep(delay)
                await ws.send_str(__import__("json").dumps(Gateway.answer(frame)))
            t = loop.create_task(later())
            tasks.add(t)
            t.add_done_callback(tasks.discard)
        return ws

    app = web.Application()
    app.router.add_get("/ws", handle)
    server = await aiohttp_server(app)
    Gateway.url = str(server.make_url("/ws")).replace("http", "ws", 1)
    return Gateway


async def connected_socket(config_path, url, **settings):
    from bot.config_loading import load_config
    cfg = load_config(config_path).aibot.model_copy(update={"secret": SecretStr("s"), **settings})
    heard = []
    sock = AibotSocket(lambda: cfg, lambda: url, lambda *a: heard.append(a))
    sock.start()
    await asyncio.wait_for(sock.subscribed.wait(), 5)
    return sock, heard


@pytest.mark.parametrize("in_flight", [1, 2])
async def test_frames_of_one_reply_wait_for_their_answers_as_configured(scripted, config_path, in_flight):
    sock, _ = await connected_socket(config_path, scripted.url, frames_in_flight=in_flight)
    scripted.delay = 0.6
    try:
        await asyncio.gather(*(sock.request("aibot_respond_msg", {"n": i}, req_id="R1") for i in range(2)))
        [(t0, f0), (t1, f1)] = [(t, f) for t, f in scripted.arrived if f.get("cmd") == "aibot_respond_msg"]
        assert (f0["body"], f1["body"]) == ({"n": 0}, {"n": 1})  # in order
        if in_flight == 1:
            assert t1 - t0 >= 0.55  # the second went out only after the first's answer
        else:
            assert t1 - t0 < 0.3  # pipelined
    finally:
        await sock.stop()


async def test_answers_find_their_frames_by_req_id_whatever_their_order(scripted, config_path):
    sock, _ = await connected_socket(config_path, scripted.url)
    scripted.answer = staticmethod(lambda f: {"headers": f["headers"], "errcode": 0 if f["headers"]["req_id"] == "A"
                                              else 846605, "errmsg": "invalid req_id"})
    # A's answer comes after B's.
    scripted.delay_of = staticmethod(lambda f: 0.3 if f["headers"]["req_id"] == "A" else 0.0)
    try:
        a = asyncio.create_task(sock.request("aibot_respond_msg", {}, req_id="A"))
        b = asyncio.create_task(sock.request("aibot_respond_msg", {}, req_id="B"))
        with pytest.raises(SocketError) as e:
            await b
        assert e.value.errcode == 846605 and not e.value.transient and not a.done()
        assert (await a)["errcode"] == 0
    finally:
        await sock.stop()


async def test_a_pong_answers_a_ping_and_raw_control_characters_are_read(scripted, config_path):
    import json
    scripted.answer = staticmethod(lambda f: {"cmd": "pong", "headers": f["headers"]})
    sock, heard = await connected_socket(config_path, scripted.url)
    try:
        assert (await sock.request("ping"))["cmd"] == "pong"
        raw = json.dumps({"cmd": "aibot_msg_callback", "headers": {"req_id": "X"},
                          "body": {"msgtype": "text", "text": {"content": "巡查TAB"}}}).replace("TAB", "\t\x01")
        await scripted.ws.send_str(raw)
        await until(lambda: heard, 5, "the callback")
        assert heard[0][2]["text"]["content"] == "巡查\t\x01"
    finally:
        await sock.stop()
