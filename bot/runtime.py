"""The running bot's parts, built from config, with their start and stop.

`create_app` (bot.app) wires a BotRuntime into aiohttp; the command-line jobs build the same
parts without a server.
"""

from __future__ import annotations

import asyncio
import gc
import sys
from typing import Callable
from urllib.parse import parse_qs, urlsplit

from loguru import logger

from bot import data_lock
from bot.clock import Clock
from bot.config import Config
from bot.context import Bot
from bot.inbox import Inbox
from bot.photos.checks import photo_index
from bot.photos.duplicates import photo_lock
from bot.photos.files import PhotoSource
from bot.router import Router
from bot.store_choice import outbox_for, store_for
from bot.transport import Transport
from bot.wecom.aibot_endpoint import Answers
from bot.wecom.api import WecomClient


SWITCH_INTERVAL = 0.001  # seconds a thread may hold the GIL when another asks for it


def robot_url_for(runtime: "BotRuntime") -> Callable[[str], str]:
    def resolve(grid_id: str) -> str:
        cfg = runtime.bot.config
        grid = cfg.grid(grid_id)
        if grid is None:
            return ""
        if cfg.wecom.mode == "emulator":
            # In emulator mode robots live under the emulator's api_base, keyed as configured.
            key = parse_qs(urlsplit(grid.robot_webhook).query).get("key", [grid.id])[0]
            return f"{runtime.client.api_base}webhook/send?key={key}"
        return grid.robot_webhook
    return resolve


class BotRuntime:
    def __init__(self, config: Config, *, router: Router, clock: Clock | None = None,
                 api_base: str | None = None):
        self.clock = clock or Clock(config.tz)
        self.store = store_for(config)
        self.client = WecomClient(api_base or config.wecom.api_base, config.wecom.corp_id,
                                  config.wecom.secret.get_secret_value(), config.wecom.agent_id)
        # Every message kept until WeCom took it: on disk (bot.outbox), replayed at start, or in
        # the table all workers drain (bot.pg_outbox).
        self.outbox = outbox_for(config, self.store, self.clock)
        self.transport = Transport(self.client, robot_url_for(self), outbox=self.outbox)
        self.outbox.attach(self.transport)
        self._apply_sending(config)
        # The built-in emulator drops a repeated Idempotency-Key; WeCom does not (bot.delivery).
        self.transport.keyed_receiver = config.wecom.mode == "emulator"
        photos = PhotoSource(self.client, lambda: self.bot.config.aibot.encoding_aes_key.get_secret_value())
        self.bot = Bot(config=config, store=self.store, transport=self.transport, clock=self.clock,
                       photo_source=photos)
        self.transport.ready = self.bot.api_ready
        self.answers = Answers(self.bot)
        self.inbox = Inbox(self.bot, router, self.answers.channel, self.answers.part_done)
        # In emulator mode the WeCom API is served by this very process: outbound calls wait
        # until the emulator knows the address it listens on (set_api_base).
        self.api_is_local = False
        self.with_emulator = False  # create_app decides; the emulator feature reads it
        # Called with the server's origin once it listens; each may return a line to print.
        self.on_listening: list[Callable[[str], str | None]] = []
        # The AI bot's long connection (websocket mode), and in emulator mode the emulator's
        # gateway address, which replaces [aibot] ws_url (set once the server listens).
        self.aibot_relay = None
        self.aibot_ws_url: str | None = None

    def apply_config(self, config: Config) -> None:
        self.bot.config = config
        self._apply_sending(config)

    def _apply_sending(self, config: Config) -> None:
        """[transport]: for messages queued from now on (and the next attempt of the others)."""
        sending = config.transport
        self.client.set_timeout(sending.timeout_seconds)
        self.outbox.reply_seconds = sending.reply_hours * 3600
        self.transport.pace.configure(sending.api_per_minute, sending.api_per_hour)
        self.transport.max_backoff = sending.retry_max_seconds

    def set_api_base(self, base: str) -> None:
        self.client.api_base = base if base.endswith("/") else base + "/"
        self.bot.api_ready.set()

    def listening(self, origin: str) -> list[str]:
        return [line for hook in self.on_listening if (line := hook(origin))]

    async def startup(self) -> None:
        # Before the store is read: a second bot on this data dir must not replay or journal.
        data_lock.acquire(self.store.data_dir)
        try:
            await self._start_parts()
        except BaseException:
            data_lock.release(self.store.data_dir)
            raise

    async def _start_parts(self) -> None:
        self.store.load(today=self.clock.today())
        # Loaded history lives as long as the process; keep it out of the cyclic GC's full
        # collections, which otherwise pause the loop in proportion to the data held. No full
        # collection first: the store loads with the collector off and parsing JSON makes no
        # cycles, so it would only walk everything once more (0.8 s for a big street).
        gc.freeze()
        # Each message makes many short-lived objects; the default threshold (700) ran the
        # young-generation collector thousands of times a second under load (~10% of CPU).
        gc.set_threshold(50_000, 20, 100)
        # A thread working in Python (a checkpoint, the weekly tally and digest on a snapshot,
        # the warm-up) keeps the GIL up to this long each time the loop lets it go for I/O, and
        # a callback lets it go many times: at the default 5 ms, callbacks waited hundreds of
        # milliseconds behind such a thread. 1 ms gives the loop its turn five times sooner.
        sys.setswitchinterval(SWITCH_INTERVAL)
        await self.store.start()
        self.outbox.load()
        await self.outbox.start()
        if not self.api_is_local:
            self.bot.api_ready.set()
        if self.bot.config.wecom.mode == "live":
            self.bot.spawn(self._self_check(), name="self-check")
        # What was kept unsent goes out first: each person's older replies before the notices
        # and answers the inbox's replay brings.
        self.transport.resend_kept()
        await self.inbox.start()
        self.outbox.replay_done()
        self.bot.spawn(self._warm_photo_index(), name="photo-index")

    async def _warm_photo_index(self) -> None:
        """The duplicate-photo index of the window, built once the store's own warm-up is done,
        so the first photo after a restart does not wait for it (a district's 1.5 million
        check-ins: 8 s in a thread). A photo that comes first builds it, as before."""
        await self.store.warmed()
        async with photo_lock(self.bot):
            await photo_index(self.bot, self.clock.now())

    async def _self_check(self) -> None:
        from bot.wecom.selfcheck import APP_OPTIONAL, aibot_check, live_checks
        results = await live_checks(self.bot.config, self.client)
        results += await aibot_check(self.bot.config, self.aibot_relay)
        for r in results:
            (logger.info if r.ok else logger.warning if r.optional else logger.error)(
                "self-check {}: {}", r.what, r.message)
        if any(r.optional and not r.ok for r in results):
            logger.warning("self-check: {}", APP_OPTIONAL)

    async def shutdown(self) -> None:
        try:
            # The handlers first; the transport's own stop (below) decides how long to wait for
            # sends: not through an outage, since every waiting message is kept.
            await asyncio.wait_for(self._handlers_done(), timeout=10)
        except asyncio.TimeoutError:
            logger.warning("shutdown: some work was still running; the journal replays it at start")
        for t in list(self.bot.tasks):
            t.cancel()
        await asyncio.gather(*self.bot.tasks, return_exceptions=True)
        await self.inbox.stop()
        await self.transport.close()
        await self.client.close()
        try:
            await self.outbox.close()
        except OSError as e:
            # Its journal holds every message not yet marked; replayed at the next start.
            logger.error("closing the outbox failed: {}", e)
        try:
            await self.store.close()
        finally:
            data_lock.release(self.store.data_dir)

    async def _handlers_done(self) -> None:
        while pending := [t for t in self.bot.tasks if not t.done()]:
            await asyncio.gather(*pending, return_exceptions=True)

    async def cleanup_ctx(self, app):
        await self.startup()
        yield
        await self.shutdown()
