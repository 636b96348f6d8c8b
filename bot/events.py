"""Platform-neutral inbound events: what handlers see, whatever the transport."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields
from typing import Any, ClassVar

# CreateTimes a genuine message can carry. Beyond them a date cannot even be formed (10**15 is
# past the year 9999), or the message would be filed under a week nobody will ever look at.
MIN_CREATE_TIME = 946_684_800  # 2000-01-01
MAX_CREATE_TIME = 4_102_444_800  # 2100-01-01


def create_time_ok(t: int) -> bool:
    return MIN_CREATE_TIME <= t < MAX_CREATE_TIME


def derived_key(kind: str, sender: str, create_time: int, content: str) -> str:
    """A dedupe key for a message WeCom sent without MsgId: WeCom's resend of it (same sender,
    time and content) gets the same key, another message in the same second does not."""
    digest = hashlib.sha256(content.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{kind}:{sender}:{create_time}:{digest}"


@dataclass(frozen=True)
class Event:
    kind: ClassVar[str] = "event"
    key: str  # MsgId for messages (derived_key when WeCom gives none); sender+time+event for events
    sender: str
    create_time: int  # unix seconds from WeCom's CreateTime: the work date comes from here
    agent_id: int | None = None
    # Which inbound transport it came by: "app" (the self-built app's XML callback) or "aibot"
    # (the 智能机器人's JSON callback, which also hears grid groups).
    via: str = "app"
    chat_id: str = ""  # the group's chatid when said in a group (AI bot only)
    response_url: str = ""  # AI bot: the one-shot URL for an answer that missed the stream
    thread: str = ""  # AI bot: the callback these events came in; they share one answer
    parts: int = 1  # AI bot: how many events that callback carried (a mixed message has several)

    def to_dict(self) -> dict[str, Any]:
        # Fields are plain values, so the instance dict is the record (asdict deep-copies).
        return {"kind": self.kind, **self.__dict__}


@dataclass(frozen=True)
class TextMessage(Event):
    kind: ClassVar[str] = "text"
    content: str = ""
    spoken: bool = False  # WeCom's speech-to-text of a voice message, not typed


@dataclass(frozen=True)
class ImageMessage(Event):
    kind: ClassVar[str] = "image"
    media_id: str = ""
    pic_url: str = ""
    # AI bot over the long connection: the photo's own key (each message brings one); the
    # callback's photos use the bot's EncodingAESKey instead.
    aes_key: str = ""


@dataclass(frozen=True)
class LocationMessage(Event):
    kind: ClassVar[str] = "location"
    lat: float = 0.0
    lng: float = 0.0
    label: str = ""


@dataclass(frozen=True)
class VoiceMessage(Event):
    kind: ClassVar[str] = "voice"
    media_id: str = ""
    format: str = ""


@dataclass(frozen=True)
class OtherMessage(Event):
    """Link, file, video or anything we do not act on: answered with a hint."""
    kind: ClassVar[str] = "other"
    msg_type: str = ""


@dataclass(frozen=True)
class AppEvent(Event):
    kind: ClassVar[str] = "app_event"
    event: str = ""  # enter_agent, location, click, ...
    lat: float | None = None
    lng: float | None = None


@dataclass(frozen=True)
class CardAction(Event):
    """A tap on a template card's button (WeCom's "template_card_event"; bot.cards)."""
    kind: ClassVar[str] = "card_action"
    event_key: str = ""  # the button's key
    task_id: str = ""
    card_type: str = ""
    response_code: str = ""  # lets the card be updated once (message/update_template_card)
    selected: dict[str, list[str]] | None = None  # question key → option ids (drop-downs)


_KINDS = {c.kind: c for c in (TextMessage, ImageMessage, LocationMessage, VoiceMessage, OtherMessage, AppEvent,
                              CardAction)}


def event_from_dict(d: dict[str, Any]) -> Event:
    cls = _KINDS[d["kind"]]
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in names})
