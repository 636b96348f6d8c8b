"""One loguru setup for the whole process; stdlib logging (aiohttp, APScheduler) is bridged in.

Secrets never reach a sink: the filter masks every configured secret value, wherever it appears,
and every credential in a URL (the access token WeCom hands out, a robot's key), in messages
and in tracebacks alike: aiohttp writes the whole URL into its errors.
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from datetime import timedelta, timezone, tzinfo
from pathlib import Path

from loguru import logger

_secrets: set[str] = set()
_tz: tzinfo | None = None
FILE_FORMAT = "{time:YYYY-MM-DD HH:mm:ss.SSS Z} | {level: <7} | {name}:{function}:{line} - {message}"


class _Intercept(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        frame, depth = logging.currentframe(), 2
        while frame and frame.f_code.co_filename == logging.__file__:
            frame, depth = frame.f_back, depth + 1
        logger.opt(depth=depth, exception=record.exc_info).log(level, record.getMessage())


# A credential in a URL's query, also percent-encoded inside another URL (a redirect's target).
_URL_CREDENTIAL = re.compile(r"(?i)((?<![\w-])(?:access_token|corpsecret|secret|key)(?:=|%3D))[^&\s'\"<>),;]+")


def mask(text: str) -> str:
    for s in _secrets:
        if s and s in text:
            text = text.replace(s, "***")
    return _URL_CREDENTIAL.sub(r"\1***", text)


def _with_traceback(base: str):
    """A sink format that renders the traceback itself, masked. Loguru's own {exception} would
    print it unmasked, and with diagnose on, the values of local variables (a token, a URL)."""
    def fmt(record) -> str:
        exc = record["exception"]
        if exc is None:
            return base + "\n"
        record["extra"]["masked_traceback"] = mask("".join(
            traceback.format_exception(exc.type, exc.value, exc.traceback)))
        return base + "\n{extra[masked_traceback]}"
    return fmt


def _patch(record) -> None:
    record["message"] = mask(record["message"])
    if _tz is not None:
        # The bot's timezone, not the server's: an admin compares log lines with the times the
        # bot's replies and reminders show (servers often run on UTC).
        # Loguru formats offsets from a fixed-offset zone, so the zone is pinned per record.
        t = record["time"].astimezone(_tz)
        record["time"] = t.replace(tzinfo=timezone(t.utcoffset() or timedelta(0), t.tzname()))


def register_secrets(*values: str) -> None:
    _secrets.update(v for v in values if v and len(v) >= 4)


def setup_logging(log_dir: Path | None, level: str = "INFO", *, console: bool = True,
                  tz: tzinfo | None = None) -> None:
    global _tz
    _tz = tz
    logger.remove()
    logger.configure(patcher=_patch)
    if console:
        logger.add(sys.stderr, level=level, diagnose=False,
                   format=_with_traceback("<green>{time:HH:mm:ss}</green> {level: <7} {message}"))
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        logger.add(log_dir / "bot.log", level=level, rotation="10 MB", retention=10,
                   compression="gz", enqueue=True, encoding="utf-8", diagnose=False,
                   format=_with_traceback(FILE_FORMAT))
    logging.basicConfig(handlers=[_Intercept()], level=0, force=True)
    for name in ("aiohttp.access", "apscheduler"):
        logging.getLogger(name).setLevel(logging.WARNING)
