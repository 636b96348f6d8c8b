"""The aiohttp application: wiring only. The parts live in BotRuntime (bot.runtime), messages
enter through the inbox (bot.inbox), features are found through their entry points."""

from __future__ import annotations

from aiohttp import web

from bot.clock import Clock
from bot.config import Config
from bot.config_watch import attach_watcher
from bot.context import Bot
from bot.features import load_features, root_router
from bot.runtime import BotRuntime
from bot.scheduler import attach_scheduler
from bot.wecom.aibot_endpoint import attach_aibot
from bot.wecom.aibot_relay import attach_aibot_socket
from bot.wecom.callback import AppCallback

BOT_KEY = web.AppKey("bot", Bot)
RUNTIME_KEY = web.AppKey("runtime", BotRuntime)
PAGE_UPLOAD_LIMIT = 25 * 1024 * 1024


def create_app(config: Config, *, clock: Clock | None = None, with_emulator: bool | None = None,
               api_base: str | None = None) -> web.Application:
    # Photos from the chat page are larger than callbacks; the callback checks its own cap.
    app = web.Application(client_max_size=max(config.server.max_body_bytes, PAGE_UPLOAD_LIMIT))
    rt = BotRuntime(config, router=root_router(), clock=clock, api_base=api_base)
    if with_emulator is None:
        # In live mode the chat page is only for an admin who asked for it, with a token.
        with_emulator = config.wecom.mode == "emulator" or config.emulator.enabled_in_live
    rt.with_emulator = with_emulator
    app[RUNTIME_KEY] = rt
    app[BOT_KEY] = rt.bot
    AppCallback(rt.inbox).attach(app)
    if config.aibot.enabled and config.aibot.mode == "callback":
        attach_aibot(app, rt, config.aibot.path)
    app.cleanup_ctx.append(rt.cleanup_ctx)
    if config.aibot.enabled and config.aibot.mode == "websocket":
        attach_aibot_socket(app, rt)  # after the runtime: the inbox is ready when messages come
    for feature in load_features():
        for hook in feature.hooks:
            hook(app, rt)
    attach_scheduler(app, rt)
    attach_watcher(app, rt)
    return app
