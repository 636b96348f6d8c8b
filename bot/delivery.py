"""What a failed send means, and how the transport tells about failures: one summary per outage.

A failed call to WeCom is one of three things:
  "refused"    WeCom answered and did not take it (a transient errcode, a 5xx), or the request
               never left (no connection, no token): sending it again cannot make a second copy.
  "permanent"  WeCom answered with an error that will not change (an unknown user, a bad card).
  "unknown"    the request went out and no answer came (a timeout, a connection dropped while
               waiting): WeCom may have delivered it. Sent again only where the receiver drops a
               repeat: message/send with WeCom's duplicate check, or any path of the built-in
               emulator, which honours the Idempotency-Key.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Callable

import aiohttp
from loguru import logger

from bot.outgoing import Outgoing
from bot.wecom.api import ENTERPRISE_RATE, WecomError
from bot.wecom.keepalive import NotSent

REMIND_EVERY = 300.0  # while an outage lasts, a line every five minutes
# App messages sent with WeCom's duplicate check (bot.outbox decides which get it).
CHECKED = {"text", "markdown", "template_card", "image", "file"}


def classify(error: BaseException) -> str:
    if isinstance(error, WecomError):
        return "refused" if error.transient else "permanent"
    if isinstance(error, (NotSent, aiohttp.ClientConnectorError)):
        return "refused"
    if isinstance(error, aiohttp.ClientResponseError):
        return "refused"  # an answer came, and it was an error
    return "unknown"


def too_fast(error: BaseException) -> bool:
    """WeCom refused the call for the enterprise's (or this server's) call rate: the message was
    not delivered, and every send should slow down (bot.send_pace), not only this one."""
    return isinstance(error, WecomError) and error.errcode in ENTERPRISE_RATE


def may_repeat(msg: Outgoing, keyed_receiver: bool, now: float) -> bool:
    """A call went out and no answer came: may it go out again without a second copy?"""
    if keyed_receiver:
        return True
    if msg.channel == "app" and msg.msgtype in CHECKED and msg.dedupe:
        # WeCom drops the same request JSON within the interval, counted from its delivery,
        # which came after `created`: a minute's margin for the clocks.
        return now < msg.created + msg.dedupe - 60
    return False


def backoff(attempt: int, base: float, cap: float) -> float:
    """The wait before attempt `attempt + 1`: doubling from `base` up to `cap`, half of it
    random ("equal jitter"). Queues held by one outage then knock at different moments, so the
    first of them finds WeCom back soon after it is, and its success wakes the others."""
    step = min(cap, base * 2 ** max(0, attempt - 1))
    return step / 2 + random.uniform(0, step / 2)


def reason(error: BaseException) -> str:
    """A short cause for the log. Error texts here never hold a URL (bot.wecom.api strips them)."""
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class OutageLog:
    """Retries are silent; what the log gets is one warning when WeCom stops taking messages,
    a reminder every few minutes while that lasts (attempts, replies waiting), and one line when
    sends succeed again, with how long it took."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self.since: float | None = None
        self.attempts = 0
        self.affected: set[int] = set()
        self._said = 0.0
        self.cause = ""
        self.recovered = asyncio.Event()  # set (and replaced) when sends work again

    def failed(self, msg_key: int, error: BaseException, waiting: int, keep_hours: float | None) -> None:
        now = self._clock()
        self.attempts += 1
        self.affected.add(msg_key)
        self.cause = reason(error)
        if self.since is None:
            self.since = self._said = now
            keep = f"retried for up to {keep_hours:g} h" if keep_hours else "retried a few times"
            logger.warning("WeCom is not taking messages ({}); replies wait and are {}", self.cause, keep)
        elif now - self._said >= REMIND_EVERY:
            self._said = now
            logger.warning("WeCom still not taking messages after {:.0f} s ({}): {} attempts so far, "
                           "{} message(s) waiting", now - self.since, self.cause, self.attempts, waiting)

    def succeeded(self) -> None:
        if self.since is None:
            return
        logger.info("WeCom is taking messages again after {:.0f} s: {} message(s) had to wait, {} failed "
                    "attempt(s); the waiting ones go out now", self._clock() - self.since, len(self.affected),
                    self.attempts)
        self.since, self.attempts, self.affected = None, 0, set()
        self.recovered.set()
        self.recovered = asyncio.Event()
