"""WeCom's 智能机器人 (AI bot) callback: JSON envelopes, the same crypto through wechatpy, events.

wechatpy has no AI-bot module, but its WeChatCrypto with an empty receive id is exactly the AI
bot's scheme; only the envelope differs (JSON `{"encrypt": …}` instead of XML).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import replace
from typing import Any

import xmltodict
from wechatpy.crypto.base import BasePrpCrypto
from wechatpy.enterprise.crypto import WeChatCrypto

from bot.events import AppEvent, Event, ImageMessage, OtherMessage, TextMessage, create_time_ok
from bot.wecom.inbound import BadMessage, CallbackError

RECEIVE_ID = ""  # the AI bot's payloads carry an empty receive id
FILE_BLOCK = 32
MAX_ITEMS = 20  # a mixed message with more parts than this is not a person's message


class AibotCodec:
    def __init__(self, token: str, aes_key: str):
        self.crypto = WeChatCrypto(token, aes_key, RECEIVE_ID)

    def verify_url(self, signature: str, timestamp: str, nonce: str, echostr: str) -> str:
        try:
            plain = self.crypto.check_signature(signature, timestamp, nonce, echostr)
        except Exception as e:  # wechatpy raises several unrelated types; all mean "refuse"
            raise CallbackError(type(e).__name__) from None
        return plain.decode() if isinstance(plain, bytes) else str(plain)

    def decrypt(self, body: bytes, signature: str, timestamp: str, nonce: str) -> dict[str, Any]:
        try:
            envelope = json.loads(body)
            encrypted = envelope["encrypt"]
            if not isinstance(encrypted, str):
                raise TypeError("encrypt is not a string")
        except (ValueError, KeyError, TypeError, RecursionError) as e:  # RecursionError: "[[[[…"
            raise CallbackError(f"bad envelope: {type(e).__name__}") from None
        try:
            plain = self.crypto.decrypt_message({"Encrypt": encrypted}, signature, timestamp, nonce)
        except Exception as e:
            raise CallbackError(type(e).__name__) from None
        try:
            payload = json.loads(plain)
        except (ValueError, RecursionError):
            raise CallbackError("plaintext is not JSON") from None
        if not isinstance(payload, dict):
            raise CallbackError("plaintext is not an object")
        return payload

    def encrypt(self, payload: dict[str, Any], nonce: str, timestamp: str | None = None) -> bytes:
        """The passive reply: encrypted JSON, signed, with the callback's nonce."""
        xml = self.crypto.encrypt_message(json.dumps(payload, ensure_ascii=False), nonce,
                                          timestamp or str(int(time.time())))
        x = xmltodict.parse(xml)["xml"]
        return json.dumps({"encrypt": x["Encrypt"], "msgsignature": x["MsgSignature"],
                           "timestamp": x["TimeStamp"], "nonce": x["Nonce"]}).encode()

def decrypt_file(aes_key: str, data: bytes) -> bytes:
    """Images behind the AI bot's short-lived URLs: AES-256-CBC, IV = key[:16], PKCS#7 to 32."""
    if not data or len(data) % 16:
        raise CallbackError("encrypted file has a bad length")
    plain = BasePrpCrypto(WeChatCrypto("", aes_key, RECEIVE_ID).key).cipher.decrypt(data)
    pad = plain[-1]
    if not 1 <= pad <= FILE_BLOCK or plain[-pad:] != bytes([pad]) * pad:
        raise CallbackError("encrypted file has bad padding (wrong key?)")
    return plain[:-pad]


def strip_mention(text: str, bot_name: str) -> str:
    """Drop the @-mention of the bot that WeCom leaves in group text ("@网格助手 清理…")."""
    text = text.replace(f"@{bot_name}", " ") if bot_name else text
    # Whatever the bot is called in that group, a mention at the very start is the bot's.
    return re.sub(r"^\s*@\S+\s+", "", text).strip()


def _str(d: Any, *path: str) -> str:
    for p in path:
        if not isinstance(d, dict):
            return ""
        d = d.get(p)
    return d if isinstance(d, str) else ""


def to_events(payload: dict[str, Any], *, bot_name: str, received: int) -> list[Event]:
    """A decrypted callback → events sharing one answer. Stream refreshes are not events."""
    msgid = _str(payload, "msgid")
    sender = _str(payload, "from", "userid")
    chat_id = _str(payload, "chatid") if _str(payload, "chattype") == "group" else ""
    msgtype = _str(payload, "msgtype")
    created = payload.get("create_time")
    if not isinstance(created, int) or isinstance(created, bool) or created <= 0:
        # WeCom gives AI-bot messages no send time: the moment they arrive stands for it.
        created = received
    elif not create_time_ok(created):
        raise BadMessage(f"create_time {created} is out of range")
    common = dict(sender=sender, via="aibot", chat_id=chat_id, response_url=_str(payload, "response_url"),
                  create_time=created)
    if msgtype == "event":
        name = _str(payload, "event", "eventtype")
        key = msgid or f"ev:{sender}:{common['create_time']}:{name}"
        return [AppEvent(key=key, event=name, thread=key, **common)]
    if not msgid:
        raise CallbackError("message without msgid")
    if msgtype == "mixed":
        items = (payload.get("mixed") or {}).get("msg_item")
        if not isinstance(items, list) or not items or len(items) > MAX_ITEMS:
            raise CallbackError("mixed message without usable items")
    else:
        items = [payload]
    out: list[Event] = []
    for item in items:
        ev = _item(item if isinstance(item, dict) else {}, bot_name, common)
        if ev is not None:
            out.append(ev)
    if not out:
        out = [OtherMessage(key="", msg_type=msgtype or "unknown", **common)]
    n = len(out)
    # The first part keeps the msgid itself, so dedupe sees a resent callback at once.
    return [_rekey(ev, msgid if i == 0 else f"{msgid}#{i}", msgid, n) for i, ev in enumerate(out)]


def _item(item: dict[str, Any], bot_name: str, common: dict) -> Event | None:
    t = _str(item, "msgtype")
    if t == "text":
        text = strip_mention(_str(item, "text", "content"), bot_name)
        return TextMessage(key="", content=text, **common) if text else None
    if t == "voice":
        text = _str(item, "voice", "content").strip()
        return TextMessage(key="", content=text, spoken=True, **common) if text else None
    if t == "image":
        url = _str(item, "image", "url")
        return ImageMessage(key="", pic_url=url, **common) if url else None
    return OtherMessage(key="", msg_type=t or "unknown", **common)


def _rekey(ev: Event, key: str, thread: str, parts: int) -> Event:
    return replace(ev, key=key, thread=thread, parts=parts)
