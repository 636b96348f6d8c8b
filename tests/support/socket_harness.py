"""The bot in websocket mode (`[aibot] mode = "websocket"`) against the emulator's gateway: the
bot connects out to /emulator/aibot/ws on its own server, as it would to WeCom's."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.app import create_app
from bot.config_loading import load_config

from tests.support.factories import BotHarness, write_config

WS_SECRET = "ws-secret-for-tests-0001"


def ws_config(folder: Path, **settings) -> Path:
    """The shared test config with the AI bot on its long connection; `settings` go into [aibot]."""
    path = write_config(folder)
    extra = "".join(f"\n{k} = {_toml(v)}" for k, v in settings.items())
    text = path.read_text(encoding="utf-8").replace(
        "[aibot]\nenabled = true", f'[aibot]\nenabled = true\nmode = "websocket"\nsecret = "{WS_SECRET}"{extra}')
    path.write_text(text, encoding="utf-8")
    return path


def _toml(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    return str(v)


async def until(check, timeout: float = 10.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not check():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


class SocketHarness(BotHarness):
    @property
    def relay(self):
        return self.runtime.aibot_relay

    @property
    def gateway(self):
        return self.emulator.gateway

    @property
    def side(self):
        return self.emulator.aibot

    async def connected(self, count: int = 1):
        return await self.gateway.wait_subscribed(count)

    async def settle(self) -> None:
        """Everything the gateway sent has reached the bot, and the bot's work (answers
        included: each waits for its frames' acks) is done."""
        try:
            await until(lambda: self.relay.socket.received >= self.gateway.sent, 3.0)
        except AssertionError:
            pass  # sent on a connection that went away: WeCom would not send it again either
        await self.bot.idle(timeout=20)

    async def group(self, userid: str, text: str, grid: str = "g1", settle: bool = True):
        d = await self.side.group_text(userid, grid, text)
        if settle:
            await self.settle()
        return d

    async def single(self, userid: str, text: str, settle: bool = True):
        d = await self.side.single_text(userid, text)
        if settle:
            await self.settle()
        return d

    def answers(self, **where) -> list[str]:
        return [e["content"] for e in self.side.answers(**where)]


async def start_ws(aiohttp_client, path: Path, clock) -> SocketHarness:
    app = create_app(load_config(path), clock=clock)
    client = await aiohttp_client(app)
    h = SocketHarness(app, client, clock)
    h.emulator.set_origin(str(client.make_url("")).rstrip("/"))
    await h.connected()
    return h
