"""What the emulator holds, as WeCom would: the feed of everything said (the chat page's
timeline and the tests' transcript, kept on disk by transcript.py so a restart does not empty
the page), uploaded media, access tokens, failures injected by tests, WeCom's rate caps and
message ids. The API paths, the chat page and the AI bot's side all read and write this one
state; `bot.emulator.server.Emulator` builds on it.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from bot.config import Config
from bot.emulator.transcript import Transcript

MEDIA_TTL = 3 * 24 * 3600


@dataclass
class Media:
    data: bytes
    filename: str
    content_type: str
    created: float


@dataclass
class Failure:
    errcode: int = 0
    status: int = 200
    count: int = 1
    delay: float = 0.0
    late: float = 0.0  # the call is carried out, but its answer comes this much later


class EmulatorState:
    def __init__(self, config: Config):
        self._config = config
        self.tokens: dict[str, float] = {}
        self.media: dict[str, Media] = {}
        self.transcript = Transcript(config.data_path / "emulator" / "transcript.jsonl")
        self.feed: list[dict[str, Any]] = self.transcript.load()
        # Sequence numbers go on from the last one on disk: a page that long-polls with
        # `since` across a restart neither misses nor repeats an entry.
        self._seq = itertools.count(max((e["seq"] for e in self.feed), default=0) + 1)
        self._msgid = itertools.count(int(time.time() * 1000))
        self._changed = asyncio.Event()
        self.failures: dict[str, list[Failure]] = {}
        self.calls: dict[str, int] = {}
        self.runtime = None
        self.callback_url: str | None = None
        self.origin: str | None = None
        # WeCom's caps, enforced as WeCom does: app messages beyond 30/min per member are
        # dropped silently; robots answer 45009 beyond 20/min. Tests swap `now` for a fake clock.
        self.now = time.time
        self._app_sends: dict[str, list[float]] = {}
        self._robot_sends: dict[str, list[float]] = {}
        self.dropped: list[dict] = []

    @property
    def config(self) -> Config:
        # Follow hot reloads: the runtime holds the current config.
        return self.runtime.bot.config if self.runtime is not None else self._config

    # --- test and demo controls ----------------------------------------------------------
    def fail_next(self, path: str, *, errcode: int = 0, status: int = 200, count: int = 1,
                  delay: float = 0.0, late: float = 0.0) -> None:
        """Make the next `count` calls of an API path fail (WeCom errcode or HTTP status, after
        `delay` seconds), or with `late`, succeed with an answer that comes `late` seconds after
        (a WeCom that took the message but whose answer was lost on the way)."""
        self.failures.setdefault(path, []).append(Failure(errcode, status, count, delay, late))

    def expire_media(self, media_id: str) -> None:
        self.media.pop(media_id, None)

    def media_alive(self, media_id: str) -> Media | None:
        """The media if the emulator still has it: WeCom forgets it after three days, the
        emulator also on restart (the transcript keeps only the words)."""
        m = self.media.get(media_id)
        return m if m is not None and time.time() - m.created <= MEDIA_TTL else None

    def sent(self, kind: str | None = None) -> list[dict]:
        return [e for e in self.feed if kind is None or e["kind"] == kind]

    def clear_feed(self) -> None:
        """Forget everything said (tests); sequence numbers still go on."""
        self.feed.clear()
        self.transcript.rewrite([])

    # --- the feed --------------------------------------------------------------------------
    def _record(self, **entry) -> dict:
        entry = {"seq": next(self._seq), "time": datetime.now(self.config.tz).isoformat(timespec="seconds"),
                 **entry}
        self.feed.append(entry)
        self.transcript.append(entry)
        if len(self.feed) > self.transcript.limit:
            del self.feed[:-self.transcript.keep]
            self.transcript.rewrite(self.feed)
        self._changed.set()
        self._changed = asyncio.Event()
        return entry

    async def next_change(self, timeout: float) -> None:
        """Waits until the feed grows, at most `timeout` seconds (the page's long poll)."""
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    # --- WeCom's rules -----------------------------------------------------------------------
    def app_message_allowed(self, userid: str) -> bool:
        return self._within(self._app_sends, userid, 30, 60)

    def robot_message_allowed(self, grid_id: str) -> bool:
        return self._within(self._robot_sends, grid_id, 20, 60)

    def _within(self, windows: dict[str, list[float]], key: str, count: int, period: float) -> bool:
        now = self.now()
        recent = [t for t in windows.get(key, []) if now - t < period]
        if len(recent) >= count:
            windows[key] = recent
            return False
        windows[key] = recent + [now]
        return True

    def own_url(self, path: str) -> str:
        """The full URL of one of the emulator's paths that the bot itself will call (an AI-bot
        image, a response_url). In live mode every emulator path wants the admin token, so the
        URL carries it, as WeCom's own URLs carry their credential (the bot never logs them)."""
        if self.origin is None:
            raise RuntimeError("emulator does not know the bot's address yet")
        url = self.origin + path
        token = self.config.emulator.admin_token
        if self.config.wecom.mode != "emulator" and token is not None:
            url += "?token=" + quote(token.get_secret_value(), safe="")
        return url

    def new_msgid(self) -> str:
        return str(next(self._msgid))

    def _name(self, userid: str) -> str:
        p = self.config.person(userid)
        return p.name if p else userid

    def _store_media(self, data: bytes, filename: str, content_type: str) -> str:
        # Like WeCom, forget media after three days, so a long demo does not grow without end.
        now = time.time()
        for mid in [m for m, v in self.media.items() if now - v.created > MEDIA_TTL]:
            del self.media[mid]
        media_id = "emu" + secrets.token_hex(12)
        self.media[media_id] = Media(data, filename, content_type, time.time())
        return media_id

    def create_time(self) -> int:
        # The bot's clock, not the wall clock: a test (or a demo) that sets the date sees
        # its messages land on that date, as WeCom stamps them with the moment they are sent.
        if self.runtime is not None:
            return int(self.runtime.bot.clock.now().timestamp())
        return int(time.time())
