"""The one error path for handlers and jobs (as python-telegram-bot routes both to one hook).

A failure is logged with its context and traceback; admins are told once per kind per hour
(a handler failing on every message must not flood them); the caller tells the person.
"""

from __future__ import annotations

import errno

from loguru import logger

from bot.context import Bot

ADMIN_NOTICE_SECONDS = 3600
# The kernel's ways of saying "no room": a full disk, a full quota, a file-size limit.
NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def out_of_space(error: BaseException) -> bool:
    """Did this failure come from a full disk (anywhere in its chain of causes)? Such a
    failure is not the message's fault: it is handled again when space is back."""
    seen = 0
    e: BaseException | None = error
    while e is not None and seen < 10:
        if isinstance(e, OSError) and e.errno in NO_SPACE:
            return True
        e, seen = e.__cause__ or e.__context__, seen + 1
    return False


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
