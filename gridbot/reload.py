"""Hot reload: the running bot follows its config file, and refuses a broken one."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web
from loguru import logger

from .config import ConfigError, load_config


def _stamp(path: Path) -> tuple[float, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime, st.st_size


async def apply_file(app: web.Application, path: Path) -> bool:
    """Validate and apply the config file; on error keep the last good config and tell admins."""
    from .app import RUNTIME_KEY
    from .schedules.runner import sync_schedules
    rt = app[RUNTIME_KEY]
    bot = rt.bot
    try:
        cfg = load_config(path)
    except ConfigError as e:
        logger.error("config change refused, still running on the last good config:\n{}", e)
        for admin in bot.config.people_with_role("admin"):
            bot.transport.send_text(admin.userid, f"【网格助手】配置文件修改有误,未生效,仍按原配置运行:\n{e}")
        return False
    rt.apply_config(cfg)
    scheduler = bot.extras.get("scheduler")
    if scheduler is not None:
        sync_schedules(scheduler, bot, cfg)
    logger.info("config reloaded: {} grids, {} people, {} schedules", len(cfg.grids), len(cfg.people),
                len(cfg.schedules))
    return True


async def watch_config(app: web.Application, path: Path, interval: float = 1.0) -> None:
    last = _stamp(path)
    while True:
        await asyncio.sleep(interval)
        now = _stamp(path)
        if now is not None and now != last:
            last = now
            await apply_file(app, path)
