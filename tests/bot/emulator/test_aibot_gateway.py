"""The emulator's AI-bot gateway (长连接), spoken to frame by frame with a bare WebSocket client,
as the protocol notes say WeCom's behaves: answers without cmd echoing the req_id, credentials,
one subscribed connection per bot and the kick, pings, idle and dropped connections, the rules
for replies (req_id, message type, size, stream state and expiry, welcome) and pushes (only to
chats that talked to the bot, per-chat caps), and images behind short-lived URLs with their own
keys. The shared test config runs the AI bot by callback; the gateway is there all the same."""

from __future__ import annotations

import asyncio
import base64
import json

import aiohttp
import pytest

from bot.emulator import cipher as crypto
from bot.emulator.aibot_gateway import GATEWAY_PATH
from bot.emulator.aibot_gateway_rules import (ERR_BAD_CREDENTIALS, ERR_EXPIRED, ERR_FINISHED, ERR_MSGTYPE,
                                              ERR_NOT_ALLOWED, ERR_NOT_SUBSCRIBED, ERR_RATE, ERR_REQ_ID,
                                              ERR_TOO_LONG)

from tests.support.factories import AIBOT_ID

SECRET = "gateway-secret-1"


class Raw:
    """A bare client: frames in and out, answers matched by req_id, callbacks kept aside."""

    def __init__(self, ws):
        self.ws = ws
        self.n = 0
        self.callbacks: list[dict] = []

    async def send(self, cmd: str, body: dict | None = None, req_id: str | None = None) -> str:
        self.n += 1
        req_id = req_id or f"{cmd}_{self.n}"
        frame = {"cmd": cmd, "headers": {"req_id": req_id}}
        if body is not None:
            frame["body"] = body
        await self.ws.send_str(json.dumps(frame, ensure_ascii=False))
        return req_id

    async def next_frame(self, timeout: float = 5) -> dict:
        msg = await self.ws.receive(timeout)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        return json.loads(msg.data)

    async def call(self, cmd: str, body: dict | None = None, req_id: str | None = None) -> dict:
        req_id = await self.send(cmd, body, req_id)
        while True:
            frame = await self.next_frame()
            if "cmd" in frame:
                self.callbacks.append(frame)
                continue
            assert frame["headers"]["req_id"] == req_id
            return frame

    async def callback(self, timeout: float = 5) -> dict:
        if self.callbacks:
            return self.callbacks.pop(0)
        frame = await self.next_frame(timeout)
        assert "cmd" in frame, frame
        return frame

    async def subscribe(self, secret: str = SECRET) -> dict:
        return await self.call("aibot_subscribe", {"bot_id": AIBOT_ID, "secret": secret})


@pytest.fixture
async def connect(harness):
    harness.emulator.gateway.credentials = (AIBOT_ID, SECRET)
    opened = []

    async def open_one(subscribe: bool = True) -> Raw:
        raw = Raw(await harness.client.ws_connect(GATEWAY_PATH))
        opened.append(raw)
        if subscribe:
            assert (await raw.subscribe())["errcode"] == 0
        return raw
    yield open_one
    for raw in opened:
        await raw.ws.close()


def stream(sid: str, content: str, finish: bool) -> dict:
    return {"msgtype": "stream", "stream": {"id": sid, "finish": finish, "content": content}}


async def say_in_group(harness, raw: Raw, text: str = "@网格助手 清理小广告1处", userid: str = "lisi") -> dict:
    gw = harness.emulator.gateway
    await gw.deliver(harness.emulator.aibot.group(userid, "g1"), "text", {"content": text},
                     msgid=f"m{gw.sent + 1}")
    return await raw.callback()


# --- subscribing --------------------------------------------------------------------------------


async def test_wrong_credentials_are_refused_and_the_socket_stays_open(connect):
    raw = await connect(subscribe=False)
    answer = await raw.subscribe("wrong")
    assert "cmd" not in answer and answer["headers"]["req_id"] == "aibot_subscribe_1"
    assert answer["errcode"] == ERR_BAD_CREDENTIALS and "invalid bot_id or secret" in answer["errmsg"]
    assert (await raw.call("ping"))["errcode"] == 0  # still open, still answering
    assert (await raw.call("aibot_send_msg", {"chatid": "wrg1", "msgtype": "markdown",
                                              "markdown": {"content": "x"}}))["errcode"] == ERR_NOT_SUBSCRIBED
    assert await raw.subscribe() == {"headers": {"req_id": "aibot_subscribe_4"}, "errcode": 0, "errmsg": "ok"}


async def test_a_second_subscribe_kicks_the_first_connection(harness, connect):
    gw = harness.emulator.gateway
    gw.kick_close_after = 0.3
    first = await connect()
    second = await connect()
    kick = await first.callback()
    assert kick["cmd"] == "aibot_event_callback" and kick["body"]["event"]["eventtype"] == "disconnected_event"
    assert "from" not in kick["body"]
    # The kicked connection still answers pings but takes no sends, and gets no messages.
    assert (await first.call("ping"))["errcode"] == 0
    assert (await first.call("aibot_send_msg", {"chatid": "lisi"}))["errcode"] == ERR_NOT_SUBSCRIBED
    got = await say_in_group(harness, second)
    assert got["cmd"] == "aibot_msg_callback" and got["body"]["from"] == {"userid": "lisi"}
    # Dropped a little later, without a close frame.
    msg = await first.ws.receive(3)
    assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE)
    assert first.ws.close_code in (None, 1006)


async def test_a_connection_that_stops_pinging_is_dropped(harness, connect):
    harness.emulator.gateway.idle_timeout = 0.3
    raw = await connect()
    msg = await raw.ws.receive(5)
    assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)


async def test_what_is_said_while_nobody_is_connected_is_lost(harness, connect):
    gw = harness.emulator.gateway
    d = await gw.deliver(harness.emulator.aibot.single("lisi"), "text", {"content": "巡查2次"}, msgid="gone-1")
    assert (d.status, d.msgid) == (0, "gone-1") and "没有送达" in d.error and gw.lost == ["gone-1"]


async def test_after_a_restart_old_req_ids_are_refused(harness, connect):
    raw = await connect()
    cb = await say_in_group(harness, raw)
    harness.emulator.gateway.restart()
    again = await connect()
    answer = await again.call("aibot_respond_msg", stream("s1", "好", True), req_id=cb["headers"]["req_id"])
    assert answer["errcode"] == ERR_REQ_ID


# --- replies -------------------------------------------------------------------------------------


async def test_message_callback_carries_what_the_bot_needs(harness, connect):
    raw = await connect()
    cb = await say_in_group(harness, raw, "@网格助手 清理小广告15处")
    body = cb["body"]
    assert cb["cmd"] == "aibot_msg_callback" and cb["headers"]["req_id"].startswith("emu_")
    assert (body["chattype"], body["chatid"], body["msgtype"]) == ("group", "wrg1", "text")
    assert body["text"]["content"] == "@网格助手 清理小广告15处"
    assert body["response_url"].startswith("http") and body["msgid"]


async def test_replies_are_held_to_wecoms_rules(harness, connect):
    raw = await connect()
    rid = (await say_in_group(harness, raw))["headers"]["req_id"]
    assert (await raw.call("aibot_respond_msg", stream("s1", "好", True), req_id="nobody"))["errcode"] == ERR_REQ_ID
    text = {"msgtype": "text", "text": {"content": "好"}}
    assert (await raw.call("aibot_respond_msg", text, req_id=rid))["errcode"] == ERR_MSGTYPE
    too_long = "字" * 6827  # 20481 bytes
    assert (await raw.call("aibot_respond_msg", stream("s1", too_long, True), req_id=rid))["errcode"] == ERR_TOO_LONG
    assert (await raw.call("aibot_respond_msg", stream("s1", "正在处理", False), req_id=rid))["errcode"] == 0
    shown = harness.emulator.sent("aibot_reply")
    assert [(e["content"], e["final"], e["grid"]) for e in shown] == [("正在处理", False, "g1")]
    # The same id replaces the bubble's text; finished, it takes nothing more.
    assert (await raw.call("aibot_respond_msg", stream("s1", "<@lisi>\n已记录", True), req_id=rid))["errcode"] == 0
    assert harness.emulator.aibot.answers(grid="g1")[-1]["content"] == "<@lisi>\n已记录"
    assert (await raw.call("aibot_respond_msg", stream("s1", "再改", True), req_id=rid))["errcode"] == ERR_FINISHED
    # A second stream on the same req_id is a second bubble.
    assert (await raw.call("aibot_respond_msg", stream("s2", "续", True), req_id=rid))["errcode"] == 0
    assert [a["content"] for a in harness.emulator.aibot.answers(grid="g1")] == ["<@lisi>\n已记录", "续"]


async def test_a_stream_expires(harness, connect):
    harness.emulator.gateway.rules.stream_limit = 0.2
    raw = await connect()
    rid = (await say_in_group(harness, raw))["headers"]["req_id"]
    assert (await raw.call("aibot_respond_msg", stream("s1", "正在处理", False), req_id=rid))["errcode"] == 0
    await asyncio.sleep(0.3)
    answer = await raw.call("aibot_respond_msg", stream("s1", "好了", True), req_id=rid)
    assert answer["errcode"] == ERR_EXPIRED and "expired" in answer["errmsg"]


async def test_welcome_only_on_enter_chat_and_within_five_seconds(harness, connect):
    gw = harness.emulator.gateway
    raw = await connect()
    await gw.deliver(harness.emulator.aibot.single("lisi"), "event", {"eventtype": "enter_chat"}, msgid="e1")
    rid = (await raw.callback())["headers"]["req_id"]
    welcome = {"msgtype": "text", "text": {"content": "李四,您好"}}
    assert (await raw.call("aibot_respond_msg", stream("s1", "x", True), req_id=rid))["errcode"] == ERR_REQ_ID
    assert (await raw.call("aibot_respond_welcome_msg", welcome, req_id=rid))["errcode"] == 0
    assert harness.emulator.aibot.answers(to="lisi")[-1]["content"] == "李四,您好"
    assert (await raw.call("aibot_respond_welcome_msg", welcome, req_id=rid))["errcode"] == ERR_REQ_ID  # once
    gw.rules.welcome_limit = 0.1
    await gw.deliver(harness.emulator.aibot.single("lisi"), "event", {"eventtype": "enter_chat"}, msgid="e2")
    rid = (await raw.callback())["headers"]["req_id"]
    await asyncio.sleep(0.2)
    assert (await raw.call("aibot_respond_welcome_msg", welcome, req_id=rid))["errcode"] == ERR_EXPIRED


# --- pushes --------------------------------------------------------------------------------------


def push(chatid: str, content: str = "【今日工作提醒】", chat_type: int | None = 2) -> dict:
    body = {"chatid": chatid, "msgtype": "markdown", "markdown": {"content": content}}
    if chat_type is not None:
        body["chat_type"] = chat_type
    return body


async def test_pushes_only_to_chats_that_talked_to_the_bot_and_within_the_caps(harness, connect):
    raw = await connect()
    assert (await raw.call("aibot_send_msg", push("wrg1")))["errcode"] == ERR_NOT_ALLOWED
    await say_in_group(harness, raw)
    assert (await raw.call("aibot_send_msg", push("wrg1")))["errcode"] == 0
    [shown] = [e for e in harness.emulator.sent("aibot_reply") if e["via"] == "push"]
    assert (shown["grid"], shown["chattype"], shown["content"]) == ("g1", "group", "【今日工作提醒】")
    text = {"chatid": "wrg1", "chat_type": 2, "msgtype": "text", "text": {"content": "x"}}
    assert (await raw.call("aibot_send_msg", text))["errcode"] == ERR_MSGTYPE
    codes = [(await raw.call("aibot_send_msg", push("wrg1", f"第{i}条")))["errcode"] for i in range(30)]
    assert codes.count(0) == 29 and codes[-1] == ERR_RATE  # 30 a minute per chat, the first one included


async def test_the_uncertain_push_rules_are_switches(harness, connect):
    rules = harness.emulator.gateway.rules
    raw = await connect()
    await say_in_group(harness, raw)
    rules.require_chat_type = True
    assert (await raw.call("aibot_send_msg", push("wrg1", chat_type=None)))["errcode"] != 0
    rules.require_chat_type, rules.allow_group_push = False, False
    assert (await raw.call("aibot_send_msg", push("wrg1", chat_type=None)))["errcode"] == ERR_NOT_ALLOWED


# --- images --------------------------------------------------------------------------------------


async def test_images_carry_their_own_key_and_their_url_lives_five_minutes(harness, tmp_path):
    side = harness.emulator.aibot
    cfg = harness.bot.config  # the emulator follows the running config: switch it to the socket
    harness.runtime.apply_config(cfg.model_copy(update={"aibot": cfg.aibot.model_copy(update={"mode": "websocket"})}))
    item = side.image_item(b"\xff\xd8 a photo")
    assert set(item) == {"url", "aeskey"} and len(item["aeskey"]) == 43 and not item["aeskey"].endswith("=")
    assert len(base64.b64decode(item["aeskey"] + "=")) == 32
    r = await harness.client.get(item["url"].split(harness.emulator.origin, 1)[1])
    assert r.status == 200
    assert crypto.decrypt_file(item["aeskey"], await r.read()) == b"\xff\xd8 a photo"
    now = harness.emulator.now
    harness.emulator.now = lambda: now() + 301
    r = await harness.client.get(item["url"].split(harness.emulator.origin, 1)[1])
    assert r.status == 404
