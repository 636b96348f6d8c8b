"""Hot reload: the running bot follows its config file, and refuses a broken one.

The file is polled (once a second: cheap, and works on every filesystem and editor); a change
is validated exactly like `gridbot check-config`. A good file replaces people, grids,
categories and schedules at once; a bad one is logged and reported to admins, and the bot keeps
the last good config.
"""

from __future__ import annotations

import asyncio
import hashlib
import weakref
from pathlib import Path

from aiohttp import web
from loguru import logger

from bot.background import cancel_and_wait
from bot.config import Config
from bot.config_loading import ConfigError, error_report, load_config
from bot.log import register_secrets
from bot.runtime import BotRuntime
from bot.scheduler import sync_schedules

POLL_SECONDS = 1.0
SETTLE_SECONDS = 0.2  # editors write in steps; wait until the file stops changing
# The content each runtime last acted on, whoever applied it (the watcher, or apply_file called
# directly): the watcher does not apply, nor tell admins about, the same file a second time.
_acted_on: "weakref.WeakKeyDictionary[BotRuntime, str | None]" = weakref.WeakKeyDictionary()


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def error_text(e: ConfigError) -> str:
    """The same wording as `gridbot check-config`."""
    return error_report(e)


def needs_restart(old: Config, new: Config) -> list[str]:
    """Changed settings that only take effect after a restart."""
    w0, w1 = old.wecom, new.wecom
    pairs = {
        "bot.data_dir": (old.data_path, new.data_path),
        "store.media_dir": (old.store.media_dir, new.store.media_dir),
        "bot.timezone": (old.bot.timezone, new.bot.timezone),
        "server.host": (old.server.host, new.server.host),
        "server.port": (old.server.port, new.server.port),
        "wecom.mode": (w0.mode, w1.mode),
        "wecom.corp_id": (w0.corp_id, w1.corp_id),
        "wecom.agent_id": (w0.agent_id, w1.agent_id),
        "wecom.secret": (w0.secret.get_secret_value(), w1.secret.get_secret_value()),
        "wecom.api_base": (w0.api_base, w1.api_base),
        "aibot.enabled": (old.aibot.enabled, new.aibot.enabled),
        "aibot.path": (old.aibot.path, new.aibot.path),
        "aibot.mode": (old.aibot.mode, new.aibot.mode),
        "aibot.ws_url": (old.aibot.ws_url, new.aibot.ws_url),
    }
    return [name for name, (a, b) in pairs.items() if a != b]


def _tell_admins(bot, cfg: Config, text: str) -> None:
    for admin in cfg.people_with_role("admin"):
        bot.transport.send_text(admin.userid, text)


async def apply_file(rt: BotRuntime, path: Path) -> bool:
    """Validate and apply the config file; on error keep the last good config and tell admins."""
    bot = rt.bot
    old = bot.config
    _acted_on[rt] = _digest(path)
    try:
        cfg = load_config(path)
    except ConfigError as e:
        logger.error("config change refused, still running on the last good config:\n{}", error_text(e))
        _tell_admins(bot, old, f"【网格助手】配置文件修改有误,未生效,仍按原配置运行。\n{error_text(e)}")
        return False
    restart = needs_restart(old, cfg)
    register_secrets(*cfg.secret_values())  # a new token must be masked from its first log line
    rt.apply_config(cfg)
    if bot.scheduler is not None:
        sync_schedules(bot.scheduler, bot, cfg)
    logger.info("config reloaded: {} grids, {} people, {} schedules", len(cfg.grids), len(cfg.people),
                len(cfg.schedules))
    note = f"【网格助手】配置已更新:{len(cfg.grids)}个网格,{len(cfg.people)}人,{len(cfg.schedules)}个定时任务。"
    if restart:
        logger.warning("config reloaded, but these changes need a restart: {}", ", ".join(restart))
        note += f"\n以下修改需重启后生效:{'、'.join(restart)}"
    # Admins of the new file: someone just added as admin learns it worked.
    _tell_admins(bot, cfg, note)
    return True


async def watch_config(rt: BotRuntime, path: Path, interval: float = POLL_SECONDS) -> None:
    """Poll the file and apply changes until cancelled (started by the app's lifecycle)."""
    path = Path(path)
    stamp = _stamp(path)
    _acted_on.setdefault(rt, _digest(path))
    while True:
        await asyncio.sleep(interval)
        now = _stamp(path)
        if now is None or now == stamp:
            continue
        while True:
            await asyncio.sleep(SETTLE_SECONDS)
            later = _stamp(path)
            if later == now:
                break
            now = later
        stamp = now
        content = _digest(path)
        if content is None or content == _acted_on.get(rt):
            continue  # touched, not changed (or already applied by someone else)
        try:
            await apply_file(rt, path)
        except Exception:
            # Never let the watcher die: the next edit must still be picked up.
            logger.exception("applying the changed config failed")


def attach_watcher(app: web.Application, runtime) -> None:
    """Follow the config file for the app's lifetime (when it was loaded from a file)."""
    async def ctx(app: web.Application):
        source = runtime.bot.config.source
        task = None
        if source is not None:
            task = asyncio.create_task(watch_config(runtime, Path(source)), name="config-watcher")
        yield
        await cancel_and_wait(task)
    app.cleanup_ctx.append(ctx)
