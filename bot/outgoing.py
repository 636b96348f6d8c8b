"""One outgoing message and the small rules about its shape: WeCom's size limits and rate caps,
the flood summary's wording, the robot's image limit. The transport (bot.transport) queues and
sends them; the outbox (bot.outbox) keeps them on disk until they are sent.
"""

from __future__ import annotations

import contextvars
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from loguru import logger

TEXT_LIMIT = 2048
ROBOT_MARKDOWN_LIMIT = 4096
APP_PER_MINUTE = 30
APP_PER_HOUR = 1000
ROBOT_PER_MINUTE = 20
ROBOT_IMAGE_LIMIT = 2 * 1024 * 1024
# What WeCom takes in one upload. media/upload (上传临时素材, developer.work.weixin.qq.com/document/
# path/90253): 图片(image) 10MB, 普通文件(file) 20MB, every file over 5 bytes; the group robot's
# webhook/upload_media: a file of 5B-20MB (in /work/shared/wecom-protocol.md, from third-party
# code: WeCom's page was not at hand; the same cap as the app's). "MB" read the strict way (10^6 bytes):
# a file a few KB under 20 MiB that WeCom counted differently would be lost. The document jobs
# read this at call time, so a test can shrink it.
MEDIA_LIMITS = {"image": 10_000_000, "file": 20_000_000, "robot_file": 20_000_000}

# The inbound message (its dedupe key) whose handling is sending: set by the inbox for each
# message it dispatches, so a reply is filed under the message it answers. After a crash that
# tells "handled and answered" from "handled, but the answer was never kept".
REPLY_TO: contextvars.ContextVar[str | None] = contextvars.ContextVar("reply_to", default=None)


@dataclass
class FireParts:
    """The job fire whose run is sending (set by bot.scheduler.fire): on PostgreSQL a job's messages
    are keyed (schedule, fire time, recipient, part), so a run taken over from a dead worker does
    not send again what the first run had already put in the outbox (bot.pg_outbox)."""
    schedule: str
    at: int  # the fire time, epoch seconds
    parts: dict[str, int] = field(default_factory=dict)  # recipient → messages keyed so far

    def key(self, recipient: str) -> str:
        n = self.parts[recipient] = self.parts.get(recipient, 0) + 1
        return f"{self.schedule}|{self.at}|{recipient}|{n}"


FIRE: contextvars.ContextVar[FireParts | None] = contextvars.ContextVar("fire", default=None)


class MediaTooLarge(ValueError):
    """A file WeCom would refuse for its size: refused here, before any upload."""

    def __init__(self, filename: str, size: int, limit: int):
        super().__init__(f"{filename}: {size / 1e6:.1f} MB, over WeCom's {limit / 1e6:.0f} MB upload limit")
        self.filename, self.size, self.limit = filename, size, limit


def media_limit(kind: str) -> int:
    return MEDIA_LIMITS[kind]


def check_media(kind: str, data: bytes, filename: str) -> None:
    """Raise MediaTooLarge (logged for the admin) when `data` is over WeCom's cap for `kind`."""
    if len(data) > (limit := MEDIA_LIMITS[kind]):
        err = MediaTooLarge(filename, len(data), limit)
        logger.error("not sending {} ({:,} bytes): over WeCom's {:,}-byte limit for a {} upload",
                     filename, len(data), limit, kind.replace("_", " "))
        raise err


def split_text(text: str, limit: int) -> list[str]:
    """Split on line boundaries into parts of at most `limit` UTF-8 bytes."""
    if len(text.encode()) <= limit:
        return [text]
    parts, cur = [], ""
    for line in text.split("\n"):
        while len(line.encode()) > limit:  # a single overlong line: cut by characters
            cut = limit
            while len(line[:cut].encode()) > limit:
                cut -= 1
            if cur:
                parts.append(cur)
                cur = ""
            parts.append(line[:cut])
            line = line[cut:]
        candidate = f"{cur}\n{line}" if cur else line
        if len(candidate.encode()) > limit:
            parts.append(cur)
            cur = line
        else:
            cur = candidate
    if cur:
        parts.append(cur)
    return parts


@dataclass(eq=False)
class Outgoing:
    channel: str  # "app" (a person), "robot" (a grid group), "appchat" or "answer" (AI bot)
    target: str  # userid, grid id or chat id
    msgtype: str  # text, markdown, image, file
    content: Any
    mentioned: list[str] = field(default_factory=list)
    filename: str = ""
    attempts: int = 0
    fallback: str = ""  # "answer": the person who gets it as an app message if the URL refuses
    alt_text: str = ""  # a card's text version, sent instead if WeCom refuses the card
    # A summary being gathered while the person's cap is reached: the first line of each reply
    # folded into it (its own first), sent as one message when the cap allows.
    folded: list[str] = field(default_factory=list)
    covers: list["Outgoing"] = field(default_factory=list)  # the replies the summary stands for
    # --- set by the outbox when it keeps the message (bot.outbox) ---
    id: str = ""  # its record in the outbox ("O12")
    cause: str | None = None  # the inbound message it answers (REPLY_TO), if any
    created: float = 0.0  # wall-clock seconds
    until: float | None = None  # after this it no longer makes sense: given up, not sent late
    dedupe: int = 0  # message/send's duplicate_check_interval (s); 0: sent without the check
    digest: str = ""  # what WeCom's duplicate check compares: recipient, type and content
    media_id: str = ""  # an image or file once uploaded: every retry sends the same request
    kept: Any = None  # a future, done once the outbox has the message on disk
    # --- the shared outbox on PostgreSQL (bot.pg_outbox) ---
    seq: int = 0  # its row
    fire_key: str | None = None  # a job's message: (schedule, fire time, recipient, part)
    tried: bool = False  # a call went out whose answer is not known: the uncertain rule applies
    sent_at: float = 0.0  # its last attempt, on the pace's shared clock (bot.pg_pace)

    @property
    def idempotency_key(self) -> str:
        """The same on every attempt, before and after a restart; unique beyond this data folder
        (the record's number alone would repeat if the outbox were ever deleted)."""
        return f"{self.id}-{int(self.created * 1000):x}" if self.id else ""

    def describe(self) -> str:
        # A response_url carries its own credential: never in a log line.
        target = "response_url" if self.channel == "answer" else self.target
        return f"{self.channel}:{target}:{self.msgtype}"


class RateWindow:
    def __init__(self, limits: list[tuple[int, float]]):
        self.limits = limits
        self.sent: deque[float] = deque()

    def wait_time(self, now: float) -> float:
        horizon = max(p for _, p in self.limits)
        while self.sent and now - self.sent[0] >= horizon:
            self.sent.popleft()
        wait = 0.0
        # `sent` is in time order, so the cap is reached when the count-th latest send is
        # still inside the period: one lookup per cap, not a scan of the last hour.
        for count, period in self.limits:
            if len(self.sent) >= count:
                t = self.sent[-count]
                if now - t < period:
                    wait = max(wait, t + period - now)
        return wait

    def record(self, now: float) -> None:
        self.sent.append(now)


def first_line(text: str) -> str:
    return text.split("\n", 1)[0]


def flood_summary(lines: list[str]) -> str:
    head = f"【消息较多,合并回复】您的{len(lines)}条消息均已记录:"
    body, used = [head], len(head.encode())
    for i, line in enumerate(lines):
        tail = f"……另有{len(lines) - i}条回复从略。"
        if used + len(line.encode()) + len(tail.encode()) + 2 > TEXT_LIMIT:
            body.append(tail)
            break
        body.append(line)
        used += len(line.encode()) + 1
    return "\n".join(body)


def as_list(users: str | list[str]) -> list[str]:
    return [users] if isinstance(users, str) else list(users)


def fit_robot_image(data: bytes) -> bytes:
    """Robots take at most 2 MB: downscale larger images until they fit."""
    if len(data) <= ROBOT_IMAGE_LIMIT:
        return data
    import io

    from PIL import Image
    img = Image.open(io.BytesIO(data)).convert("RGB")
    while True:
        img = img.resize((max(1, img.width * 3 // 4), max(1, img.height * 3 // 4)))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=85)
        if buf.tell() <= ROBOT_IMAGE_LIMIT:
            return buf.getvalue()
