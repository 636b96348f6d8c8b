"""The one error path for handlers and jobs (as python-telegram-bot routes both to one hook).

A failure is logged with its context and traceback; admins are told once per kind per hour
(a handler failing on every message must not flood them); the caller tells the person.
"""

from __future__ import annotations

from loguru import logger

from bot.context import Bot

ADMIN_NOTICE_SECONDS = 3600


def report_failure(bot: Bot, kind: str, error: BaseException, what: str) -> None:
    """`kind` groups failures for the admins' notice ("handler:text", "job:weekly_digest");
    `what` says in Chinese what was being done."""
    logger.opt(exception=error).error("{} failed: {}", kind, what)
    now = bot.clock.now().timestamp()
    last = bot.error_notices.get(kind)
    if last is not None and now - last < ADMIN_NOTICE_SECONDS:
        return
    bot.error_notices[kind] = now
    for admin in bot.config.people_with_role("admin"):
        bot.transport.send_text(admin.userid, f"【网格助手】{what}:{type(error).__name__}。详情见日志。")
