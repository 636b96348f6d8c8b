"""The rules WeCom's AI-bot gateway holds the bot's replies and pushes to (see aibot_gateway).

A reply must name a req_id that this connection was given, for the right kind of callback
(846605 otherwise): a message's req_id takes `aibot_respond_msg`, an enter_chat's takes one
`aibot_respond_welcome_msg` within 5 seconds. `text` is no reply message type (40008). A stream
frame holds at most 20480 bytes; a new stream id opens a bubble, the same id replaces its content,
`finish` closes it, and a stream takes no frame after it finished or once its time is up (846608;
6 minutes by WeCom's docs, 10 seen over the socket: `stream_limit`). A push (`aibot_send_msg`)
goes only to a chat that has talked to the bot, at most 30 a minute and 1000 an hour per chat,
replies included. What the chats show goes to the emulator's feed.
Where WeCom's error code for a case is not known the emulator uses its own (84000x), so tests can
tell the cases apart.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

from bot.emulator.aibot_side import AibotSide, Chat

ERR_BAD_CREDENTIALS = 853000
ERR_NOT_SUBSCRIBED = 846609
ERR_REQ_ID = 846605
ERR_EXPIRED = 846608
ERR_MSGTYPE = 40008
ERR_RATE = 45009
ERR_TOO_LONG = 840001
ERR_FINISHED = 840002
ERR_NOT_ALLOWED = 840003
ERR_BAD_FRAME = 840004
CONTENT_LIMIT = 20480  # bytes of markdown in a stream frame, a reply or a push
WELCOME_SECONDS = 5.0
STREAM_SECONDS = 6 * 60.0
CAPS = ((30, 60.0), (1000, 3600.0))  # per chat: replies and pushes


@dataclass
class Stream:
    started: float
    content: str = ""
    finished: bool = False


@dataclass
class Callback:
    """A req_id the gateway gave out with a callback, and the replies made on it."""
    kind: str  # "msg", "enter_chat" or "event"
    chat: Chat
    msgid: str
    at: float
    streams: dict[str, Stream] = field(default_factory=dict)
    welcomed: bool = False


class ReplyRules:
    def __init__(self, side: AibotSide):
        self.side = side
        self.heard: set[str] = set()  # chats (a group's chatid, a person's userid) that talked to the bot
        self.groups: set[str] = set()
        self.sends: dict[str, list[float]] = {}  # chat → times of replies and pushes (caps)
        # Knobs (tests, demos): the readings of WeCom's facts that the sources disagree on.
        self.stream_limit = STREAM_SECONDS
        self.welcome_limit = WELCOME_SECONDS
        self.require_chat_type = False  # one report: a push without chat_type failed
        self.allow_group_push = True  # one client says groups take no pushes
        self.rate_errcode = ERR_RATE  # WeCom's code for a chat over its cap is not known

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def heard_from(self, chat: Chat) -> None:
        self.heard.add(chat.chatid or chat.userid)
        if chat.chattype == "group":
            self.groups.add(chat.chatid)

    def _within_caps(self, chat: Chat) -> bool:
        key, now = chat.chatid or chat.userid, self._now()
        recent = [t for t in self.sends.get(key, []) if now - t < CAPS[-1][1]]
        for count, period in CAPS:
            if sum(1 for t in recent if now - t < period) >= count:
                self.sends[key] = recent
                return False
        self.sends[key] = recent + [now]
        return True

    # --- replies on a callback's req_id ------------------------------------------------------------
    def respond(self, cb: Callback | None, body: dict) -> tuple[int, str]:
        if cb is None or cb.kind != "msg":
            return ERR_REQ_ID, "invalid req_id"
        kind = body.get("msgtype")
        if kind == "stream":
            return self._stream(cb, body.get("stream"))
        if kind == "markdown":
            content = _content(body.get("markdown"))
            if content is None:
                return ERR_BAD_FRAME, "markdown needs a content"
            if len(content.encode()) > CONTENT_LIMIT:
                return ERR_TOO_LONG, f"content exceeds {CONTENT_LIMIT} bytes"
            if not self._within_caps(cb.chat):
                return self.rate_errcode, "api freq out of limit"
            self.side._answered(cb.chat, cb.msgid, content, "passive", "markdown")
            return 0, "ok"
        if kind in ("template_card", "stream_with_template_card"):
            self.side._answered(cb.chat, cb.msgid, json.dumps(body, ensure_ascii=False)[:500], "passive", kind)
            return 0, "ok"
        return ERR_MSGTYPE, f"invalid message type {str(kind)[:20]}"

    def _stream(self, cb: Callback, s) -> tuple[int, str]:
        if not isinstance(s, dict) or not isinstance(s.get("id"), str) or not s["id"]:
            return ERR_BAD_FRAME, "stream needs an id"
        sid, content = s["id"], s.get("content", "")
        if not isinstance(content, str):
            return ERR_BAD_FRAME, "stream content must be a string"
        if len(content.encode()) > CONTENT_LIMIT:
            return ERR_TOO_LONG, f"content exceeds {CONTENT_LIMIT} bytes"
        st, now = cb.streams.get(sid), self._now()
        if st is None:
            if not self._within_caps(cb.chat):
                return self.rate_errcode, "api freq out of limit"
            st = cb.streams[sid] = Stream(now)
        elif st.finished:
            return ERR_FINISHED, "stream already finished"
        if now - st.started > self.stream_limit:
            return ERR_EXPIRED, "stream message update expired"
        if content:
            st.content = content  # each frame is the whole text so far, not an addition
        st.finished = bool(s.get("finish"))
        self.side._answered(cb.chat, cb.msgid, st.content, "stream", "markdown", stream_id=sid, final=st.finished)
        return 0, "ok"

    def welcome(self, cb: Callback | None, body: dict) -> tuple[int, str]:
        if cb is None or cb.kind != "enter_chat" or cb.welcomed:
            return ERR_REQ_ID, "invalid req_id"
        if self._now() - cb.at > self.welcome_limit:
            return ERR_EXPIRED, "welcome message expired"
        kind = body.get("msgtype")
        if kind == "text":
            content = _content(body.get("text"))
            if content is None:
                return ERR_BAD_FRAME, "text needs a content"
            text = content
        elif kind == "template_card":
            text = json.dumps(body.get("template_card"), ensure_ascii=False)[:500]
        else:
            return ERR_MSGTYPE, f"invalid message type {str(kind)[:20]}"
        cb.welcomed = True
        self.side._answered(cb.chat, cb.msgid, text, "passive", kind)
        return 0, "ok"

    def card_update(self, cb: Callback | None, body: dict) -> tuple[int, str]:
        # The emulator sends no template-card events, so no req_id can take a card update.
        return ERR_REQ_ID, "invalid req_id"

    # --- pushes --------------------------------------------------------------------------------------
    def push(self, body: dict) -> tuple[int, str]:
        chatid, chat_type = body.get("chatid"), body.get("chat_type")
        if not isinstance(chatid, str) or not chatid:
            return ERR_BAD_FRAME, "chatid required"
        if chat_type is None and self.require_chat_type:
            return ERR_BAD_FRAME, "chat_type required"
        group = chat_type == 2 or (chat_type is None and chatid in self.groups)
        if group and not self.allow_group_push:
            return ERR_NOT_ALLOWED, "pushes to groups are not allowed"
        if chatid not in self.heard:
            return ERR_NOT_ALLOWED, "the chat has not talked to the bot"
        kind = body.get("msgtype")
        if kind != "markdown":
            return ERR_MSGTYPE, f"invalid message type {str(kind)[:20]}"
        content = _content(body.get("markdown"))
        if content is None:
            return ERR_BAD_FRAME, "markdown needs a content"
        if len(content.encode()) > CONTENT_LIMIT:
            return ERR_TOO_LONG, f"content exceeds {CONTENT_LIMIT} bytes"
        grid = self.side.grid_of(chatid)
        chat = Chat("group", "", chatid, grid.id if grid else "") if group else self.side.single(chatid)
        if not self._within_caps(chat):
            return self.rate_errcode, "api freq out of limit"
        self.side._answered(chat, "", content, "push", "markdown")
        return 0, "ok"


def _content(part) -> str | None:
    if not isinstance(part, dict) or not isinstance(part.get("content"), str) or not part["content"].strip():
        return None
    return part["content"]
