"""The aiohttp application: the WeCom callback, the lifecycle of every part, and the inbox.

A message is acknowledged (HTTP 200) only after it is in the journal; the work happens in a
tracked background task, one sender at a time so a photo follows the text it belongs to.
"""

from __future__ import annotations

import asyncio
import gc
from collections import defaultdict
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

from aiohttp import web
from loguru import logger

from . import replies
from .clock import Clock, iso_week, week_bounds
from .aibot import Answers
from .config import Config
from .context import Bot, Context
from .dispatch import Router
from .events import Event, event_from_dict
from .records import weeks_between
from .store import Store
from .transport import Transport
from .wecom.api import WecomClient
from .wecom.inbound import CallbackError, decrypt, make_crypto, query_of, read_capped, to_event, verify_url

BOT_KEY = web.AppKey("bot", Bot)
DONE = "inbox_done"
DONE_BATCH_SECONDS = 0.05
RECENT_WEEKS = 14
CALLBACK_PATH = "/wecom/callback"


def robot_url_for(bot_ref: "BotRuntime"):
    def resolve(grid_id: str) -> str:
        cfg = bot_ref.bot.config
        grid = cfg.grid(grid_id)
        if grid is None:
            return ""
        if cfg.wecom.mode == "emulator":
            # In emulator mode robots live under the emulator's api_base, keyed as configured.
            key = parse_qs(urlsplit(grid.robot_webhook).query).get("key", [grid.id])[0]
            return f"{bot_ref.client.api_base}webhook/send?key={key}"
        return grid.robot_webhook
    return resolve


class BotRuntime:
    """Builds the parts from config and wires them to the app's startup and cleanup."""

    def __init__(self, config: Config, *, clock: Clock | None = None, router: Router | None = None,
                 api_base: str | None = None):
        from .handlers import root_router
        self.clock = clock or Clock(config.tz)
        self.router = router or root_router()
        self.store = Store(config.data_path)
        self.client = WecomClient(api_base or config.wecom.api_base, config.wecom.corp_id,
                                  config.wecom.secret.get_secret_value(), config.wecom.agent_id)
        self.transport = Transport(self.client, robot_url_for(self))
        self.bot = Bot(config=config, store=self.store, transport=self.transport, clock=self.clock)
        self.answers = Answers(self.bot)
        self.crypto = self._crypto(config)
        self._inflight: set[str] = set()
        self._done: list[tuple[str, str]] = []
        self._done_wake = asyncio.Event()
        self._done_task: asyncio.Task | None = None
        self._sender_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    @staticmethod
    def _crypto(cfg: Config):
        w = cfg.wecom
        return make_crypto(w.token.get_secret_value(), w.encoding_aes_key.get_secret_value(), w.corp_id)

    def apply_config(self, config: Config) -> None:
        self.bot.config = config
        self.crypto = self._crypto(config)

    def set_api_base(self, base: str) -> None:
        self.client.api_base = base if base.endswith("/") else base + "/"

    # --- lifecycle -------------------------------------------------------------------
    async def startup(self) -> None:
        self.store.load(today=self.clock.today())
        # Loaded history lives as long as the process; keep it out of the cyclic GC's full
        # collections, which otherwise pause the loop in proportion to the data held.
        gc.collect()
        gc.freeze()
        # Each message makes many short-lived objects; the default threshold (700) ran the
        # young-generation collector thousands of times a second under load (~10% of CPU).
        gc.set_threshold(50_000, 20, 100)
        await self.store.start()
        if self.bot.config.wecom.mode == "live":
            self.bot.spawn(self._self_check(), name="self-check")
        self._done_task = asyncio.create_task(self._write_done_marks(), name="inbox-done")
        recent = weeks_between(self.clock.today() - timedelta(weeks=RECENT_WEEKS), self.clock.today())
        done = {d["id"] for d in self.store.docs(DONE, recent)}
        pending = [d for d in self.store.docs("inbox", recent) if d["id"] not in done]
        if pending:
            logger.info("replaying {} acknowledged message(s) not yet handled", len(pending))
            weeks = {self.store.shard_of("inbox", d["id"]) for d in pending}
            handled = self._handled_keys(weeks)
            for doc in sorted(pending, key=lambda d: (d["event"]["create_time"], d["id"])):
                if doc["id"] in handled:
                    # Handled before the crash, only the "done" mark was lost: never a second record.
                    self._mark_done(doc["id"])
                    continue
                self._schedule(event_from_dict(doc["event"]))

    async def _self_check(self) -> None:
        from .wecom.selfcheck import self_check
        for r in await self_check(self.bot.config, self.client):
            (logger.info if r.ok else logger.error)("self-check {}: {}", r.what, r.message)

    def _handled_keys(self, weeks: set[str]) -> set[str]:
        keys: set[str] = set()
        # A late report may sit in an earlier week than its message: look one week back too.
        shards = set(weeks) | {iso_week(week_bounds(w)[0] - timedelta(days=7)) for w in weeks} | {"main"}
        for table in ("reports", "checkins", "problems"):
            for d in self.store.docs(table, sorted(shards)):
                keys.add(d.get("msgid"))
                keys.update(h.get("msgid") for h in d.get("history", []) if isinstance(h, dict))
        keys.discard(None)
        return keys

    async def shutdown(self) -> None:
        try:
            await self.bot.idle(timeout=10)
        except asyncio.TimeoutError:
            logger.warning("shutdown: some work was still running; the journal replays it at start")
        for t in list(self.bot.tasks):
            t.cancel()
        await asyncio.gather(*self.bot.tasks, return_exceptions=True)
        if self._done_task is not None:
            self._done_task.cancel()
            await asyncio.gather(self._done_task, return_exceptions=True)
            await self._flush_done_marks()
        await self.transport.close()
        await self.client.close()
        await self.store.close()

    async def cleanup_ctx(self, app: web.Application):
        await self.startup()
        yield
        await self.shutdown()

    # --- inbox -----------------------------------------------------------------------
    async def accept(self, event: Event, *more: Event) -> str:
        """Journal a new message (an AI-bot mixed message brings several parts, stored together);
        returns 'new', 'duplicate' or 'unknown_sender'. The first part's key is the dedupe key."""
        cfg = self.bot.config
        person = cfg.person(event.sender)
        if person is None:
            logger.info("message from unregistered sender {}", event.sender)
            if event.via == "app":
                self.transport.send_text(event.sender, replies.UNREGISTERED)
            return "unknown_sender"
        if event.key in self._inflight or self.store.get("inbox", event.key, deep=False) is not None:
            return "duplicate"
        self._inflight.add(event.key)
        try:
            week = iso_week(self.clock.from_timestamp(event.create_time).date())
            received = self.clock.now().timestamp()
            await self.store.put_many([("inbox", {"id": e.key, "event": e.to_dict(), "received": received}, week)
                                       for e in (event, *more)])
        finally:
            self._inflight.discard(event.key)
        for e in (event, *more):
            self._schedule(e)
        return "new"

    def _schedule(self, event: Event) -> None:
        self.bot.spawn(self._handle(event), name=f"handle:{event.key}")

    async def _handle(self, event: Event) -> None:
        async with self._sender_locks[event.sender]:
            person = self.bot.config.person(event.sender)
            ctx = None
            try:
                if person is not None:
                    ctx = Context(self.bot, event, person, **self.answers.channel(event))
                    handled = await self.router.dispatch(event, ctx)
                    if not handled:
                        logger.debug("no handler for {} {}", event.kind, event.key)
            except Exception:
                logger.exception("handler failed for {} from {}", event.kind, event.sender)
                if ctx is not None:
                    ctx.reply(replies.INTERNAL_ERROR)
            finally:
                self.answers.part_done(event)
            self._mark_done(event.key)

    # Done marks are batched: each one is tiny, and a lost one only means the message is
    # looked at again at start, where its record (found by MsgId) stops a second one.
    def _mark_done(self, key: str) -> None:
        shard = self.store.shard_of("inbox", key)
        if shard is not None:
            self._done.append((key, shard))
            self._done_wake.set()

    async def _write_done_marks(self) -> None:
        while True:
            await self._done_wake.wait()
            await asyncio.sleep(DONE_BATCH_SECONDS)
            self._done_wake.clear()
            await self._flush_done_marks()

    async def _flush_done_marks(self) -> None:
        batch, self._done = self._done, []
        if not batch:
            return
        try:
            await self.store.put_many([(DONE, {"id": key}, shard) for key, shard in batch])
        except Exception:
            logger.exception("could not mark {} message(s) handled; they are checked again at start",
                             len(batch))


async def callback_get(request: web.Request) -> web.Response:
    rt: BotRuntime = request.app[RUNTIME_KEY]
    q = query_of(request)
    try:
        plain = verify_url(rt.crypto, q.get("msg_signature", ""), q.get("timestamp", ""),
                           q.get("nonce", ""), q.get("echostr", ""))
    except CallbackError as e:
        logger.warning("callback URL check refused: {}", e)
        return web.Response(status=403, text="forbidden")
    return web.Response(text=plain)


async def callback_post(request: web.Request) -> web.Response:
    rt: BotRuntime = request.app[RUNTIME_KEY]
    body = await read_capped(request, rt.bot.config.server.max_body_bytes)
    if isinstance(body, web.Response):
        return body
    q = query_of(request)
    try:
        xml = decrypt(rt.crypto, body, q.get("msg_signature", ""), q.get("timestamp", ""), q.get("nonce", ""))
        event = to_event(xml)
    except CallbackError as e:
        logger.warning("callback refused: {}", e)
        return web.Response(status=403, text="forbidden")
    if not event.sender:
        return web.Response(status=400, text="bad request")
    try:
        await rt.accept(event)
    except OSError as e:
        # Not stored, so not acknowledged: WeCom will retry.
        logger.error("could not store message {}: {}", event.key, e)
        return web.Response(status=503, text="try again")
    return web.Response(text="")


RUNTIME_KEY = web.AppKey("runtime", BotRuntime)


def create_app(config: Config, *, clock: Clock | None = None, with_emulator: bool | None = None,
               api_base: str | None = None) -> web.Application:
    limit = config.server.max_body_bytes
    # Photos from the chat page are larger than callbacks; the callback checks its own cap.
    app = web.Application(client_max_size=max(limit, 25 * 1024 * 1024))
    rt = BotRuntime(config, clock=clock, api_base=api_base)
    app[RUNTIME_KEY] = rt
    app[BOT_KEY] = rt.bot
    app.router.add_get(CALLBACK_PATH, callback_get)
    app.router.add_post(CALLBACK_PATH, callback_post)
    if config.aibot.enabled:
        from .aibot import attach_aibot
        attach_aibot(app, rt, config.aibot.path)
    app.cleanup_ctx.append(rt.cleanup_ctx)
    if with_emulator is None:
        # In live mode the chat page is only for an admin who asked for it, with a token.
        with_emulator = config.wecom.mode == "emulator" or config.emulator.enabled_in_live
    if with_emulator:
        from .emulator.server import Emulator
        Emulator(config).attach(app, rt)
    from .schedules.runner import attach_scheduler
    attach_scheduler(app, rt)
    from .reload import attach_watcher
    attach_watcher(app, rt)
    return app
