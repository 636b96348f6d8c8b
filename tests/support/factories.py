"""Small factories for configs and messages (as python-telegram-bot builds its test messages)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from bot.app import RUNTIME_KEY
from bot.emulator.server import EMULATOR_KEY
from bot.clock import FakeClock

TOKEN = "testtoken123"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
AIBOT_TOKEN = "aibottoken456"
AIBOT_AES_KEY = "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut"
AIBOT_ID = "aibot-test-1"
CORP_ID = "wwtest0000000001"
AGENT_ID = 1000002
SECRET = "test-secret-value-42"
# The store every config written here names: GRIDBOT_TEST_STORE=postgres runs the suite on
# PostgreSQL (tests/conftest.py gives each test a schema of its own, through GRIDBOT_STORE_DSN).
TEST_STORE = os.environ.get("GRIDBOT_TEST_STORE", "tinydb")
# On PostgreSQL, configs parsed without the environment (env={}) still need a DSN: nothing
# listens at this one. The same number of lines either way, so line numbers in errors agree.
STORE_SECTION = (f'[store]\nbackend = "{TEST_STORE}"\n'
                 + ('dsn = "postgresql://gridbot@127.0.0.1:9/unused"\n' if TEST_STORE == "postgres" else 'dsn = ""\n'))

BASE_CONFIG = f"""
[bot]
name = "网格助手"
street = "测试街道"
timezone = "Asia/Shanghai"
data_dir = "data"

[server]
host = "127.0.0.1"
port = 0

{STORE_SECTION}
[wecom]
mode = "emulator"
corp_id = "{CORP_ID}"
agent_id = {AGENT_ID}
secret = "{SECRET}"
token = "{TOKEN}"
encoding_aes_key = "{AES_KEY}"

[aibot]
enabled = true
bot_id = "{AIBOT_ID}"
token = "{AIBOT_TOKEN}"
encoding_aes_key = "{AIBOT_AES_KEY}"

[[communities]]
id = "xingfu"
name = "幸福社区"

[[communities]]
id = "heping"
name = "和平社区"

[[grids]]
id = "g1"
name = "1号网格"
community = "xingfu"
robot_webhook = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k1"
chat_id = "wrg1"
households = 400

[[grids]]
id = "g2"
name = "2号网格"
community = "heping"
robot_webhook = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k2"
households = 300

[[people]]
userid = "zhangsan"
name = "张三"
role = "grid_leader"
grid = "g1"

[[people]]
userid = "lisi"
name = "李四"
role = "member"
grid = "g1"

[[people]]
userid = "wangwu"
name = "王五"
role = "member"
grid = "g1"

[[people]]
userid = "sunqi"
name = "孙七"
role = "grid_leader"
grid = "g2"

[[people]]
userid = "zhouba"
name = "周八"
role = "member"
grid = "g2"

[[people]]
userid = "zhoushuji"
name = "周书记"
role = "leader"
scope = ["xingfu"]

[[people]]
userid = "qian"
name = "钱主任"
role = "leader"

[[people]]
userid = "admin"
name = "管理员"
role = "admin"
"""


def on_store(backend: str, more: str = "") -> str:
    """The test config with its [store] section saying `backend` (and `more` lines), whatever
    store this test run uses."""
    section = f'[store]\nbackend = "{backend}"\n' + (more or 'dsn = ""\n')
    return BASE_CONFIG.replace(STORE_SECTION, section)


def write_config(folder: Path, extra: str = "", base: str = BASE_CONFIG) -> Path:
    path = folder / "config.toml"
    text = base + extra
    if TEST_STORE == "postgres" and "[store]" not in text:  # a test's own base
        text += '\n[store]\nbackend = "postgres"\n'
    path.write_text(text, encoding="utf-8")
    return path


def many_grids(communities: int, per_community: int, people: int = 1) -> str:
    """Config tables for a district-sized scope, besides the test config's own: communities
    c1…cN of grids "c{c}g{k}" ("{c}-{k}号网格"), each with `people` members "c{c}g{k}p{i}"."""
    out = []
    for c in range(1, communities + 1):
        out.append(f'[[communities]]\nid = "c{c}"\nname = "第{c}社区"\n')
        for k in range(per_community):
            g = f"c{c}g{k}"
            out.append(f'[[grids]]\nid = "{g}"\nname = "{c}-{k}号网格"\ncommunity = "c{c}"\n')
            for i in range(people):
                out.append(f'[[people]]\nuserid = "{g}p{i}"\nname = "网格员{g}-{i}"\nrole = "member"\ngrid = "{g}"\n')
    return "\n".join(out)


@dataclass
class BotHarness:
    app: web.Application
    client: TestClient
    clock: FakeClock

    @property
    def runtime(self):
        return self.app[RUNTIME_KEY]

    @property
    def bot(self):
        return self.runtime.bot

    @property
    def store(self):
        return self.bot.store

    @property
    def emulator(self):
        return self.app[EMULATOR_KEY]

    async def send(self, userid: str, msgtype: str, fields: dict[str, Any], *, msgid: str | None = None,
                   at: int | None = None, settle: bool = True) -> int:
        """Deliver one message through the emulator's encrypted callback; returns the HTTP status."""
        ct = at if at is not None else int(self.clock.now().timestamp())
        status, _ = await self.emulator.deliver(userid, msgtype, fields, create_time=ct, msgid=msgid)
        if settle:
            await self.settle()
        return status

    async def text(self, userid: str, content: str, **kw) -> int:
        return await self.send(userid, "text", {"Content": content}, **kw)

    async def image(self, userid: str, data: bytes, **kw) -> int:
        mid = self.emulator._store_media(data, "photo.jpg", "image/jpeg")
        return await self.send(userid, "image", {"PicUrl": "", "MediaId": mid}, **kw)

    async def location(self, userid: str, lat: float, lng: float, label: str = "", **kw) -> int:
        return await self.send(userid, "location", {"Location_X": lat, "Location_Y": lng, "Scale": 15,
                                                     "Label": label}, **kw)

    def cards(self, userid: str) -> list[dict]:
        """Template cards the bot sent to a person (feed entries), oldest first."""
        return [e for e in self.emulator.sent("app_message") if userid in e["to"] and e.get("msgtype") == "template_card"]

    async def tap(self, userid: str, button: str, *, card: dict | None = None, reason: str | None = None,
                  settle: bool = True) -> dict:
        """Tap `button` (its text) on the person's latest card (or `card`), as on the chat page;
        `reason` picks an option of the card's drop-down by its text. Returns the page's answer."""
        card = card or self.cards(userid)[-1]
        tc = card["card"]
        key = next(b["key"] for b in tc["button_list"] if b["text"] == button)
        selected = {}
        if reason is not None:
            sel = tc["button_selection"]
            selected[sel["question_key"]] = next(o["id"] for o in sel["option_list"] if o["text"] == reason)
        r = await self.client.post("/emulator/ui/card", json={"userid": userid, "seq": card["seq"], "key": key,
                                                              "selected": selected})
        answer = await r.json()
        if settle:
            await self.settle()
        return answer

    async def settle(self) -> None:
        await self.bot.idle(timeout=20)

    def replies(self, userid: str) -> list[str]:
        """Texts the bot sent to a person (app messages), oldest first."""
        return [e["content"] for e in self.emulator.sent("app_message") if userid in e["to"]]

    def last_reply(self, userid: str) -> str:
        r = self.replies(userid)
        assert r, f"no reply to {userid}"
        return r[-1]

    def pushes(self, grid_id: str | None = None) -> list[dict]:
        return [e for e in self.emulator.sent("robot") if grid_id is None or e["to"] == grid_id]

    def clear(self) -> None:
        self.emulator.clear_feed()


async def start_harness(aiohttp_client, config_path: Path, clock: FakeClock) -> BotHarness:
    """A bot on `config_path` behind the test client, as the `harness` fixture makes one (a test
    that needs two, or its own config)."""
    from bot.app import create_app
    from bot.config_loading import load_config
    app = create_app(load_config(config_path), clock=clock)
    h = BotHarness(app, await aiohttp_client(app), clock)
    h.emulator.set_origin(str(h.client.make_url("")).rstrip("/"))
    return h


def now_ts() -> int:
    return int(time.time())
