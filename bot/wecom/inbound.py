"""WeCom callback → events: verification, decryption and parsing through wechatpy."""

from __future__ import annotations

import asyncio
from urllib.parse import unquote
from xml.parsers import expat

from aiohttp import web
from wechatpy.crypto import PrpCrypto
from wechatpy.enterprise import parse_message
from wechatpy.enterprise.crypto import WeChatCrypto
from wechatpy.enterprise.events import EVENT_TYPES
from wechatpy.enterprise.messages import MESSAGE_TYPES
from wechatpy.messages import UnknownMessage

from bot.events import (AppEvent, CardAction, Event, ImageMessage, LocationMessage, OtherMessage, TextMessage,
                      VoiceMessage, create_time_ok, derived_key)

# How far a callback's signed timestamp may be from the bot's clock. WeCom signs each attempt
# as it sends it and retries within minutes; a request signed days ago is a captured one
# replayed (dedupe by MsgId alone forgets after weeks) or a server whose clock is wrong.
MAX_SKEW_SECONDS = 86_400


class CallbackError(Exception):
    """Anything wrong with a callback request (403); the message is safe to log (no secrets)."""


class BadMessage(CallbackError):
    """Genuine (the signature holds) but unusable, like a CreateTime no date can be made of: 400."""


def check_signed_time(timestamp: str, now: float) -> None:
    """Refuses a callback whose signed timestamp is more than MAX_SKEW_SECONDS from `now`."""
    try:
        t = int(timestamp)
    except ValueError:
        raise CallbackError("timestamp is not a number") from None
    if abs(t - now) > MAX_SKEW_SECONDS:
        hours = (t - now) / 3600
        raise CallbackError(f"signed timestamp {t} is {hours:+.1f} h from the bot's clock "
                            f"(a replayed request, or a wrong clock on this server)")


def query_of(request: web.Request) -> dict[str, str]:
    # yarl turns a literal '+' into a space; WeCom sends %2B, but be safe for hand-made URLs.
    raw = request.rel_url.raw_query_string
    out: dict[str, str] = {}
    for part in raw.split("&"):
        if not part:
            continue
        k, _, v = part.partition("=")
        out[unquote(k)] = unquote(v)
    return out


async def read_capped(request: web.Request, limit: int, timeout: float = 10.0) -> bytes | web.Response:
    """The whole body, or the 4xx answer when it is over `limit`, unreadable, or still not all
    there after `timeout` seconds (a client trickling its body holds a socket and a task)."""
    try:
        async with asyncio.timeout(timeout):
            return await _read_capped(request, limit)
    except TimeoutError:
        return web.Response(status=408, text="request timeout", headers={"Connection": "close"})


async def _read_capped(request: web.Request, limit: int) -> bytes | web.Response:
    if request.content_length is not None:
        if request.content_length > limit:
            return web.Response(status=413, text="too large")
        try:
            # The announced length is within the cap, and aiohttp reads no more than it announces.
            return await request.read()
        except Exception:
            return web.Response(status=400, text="bad request")
    body = bytearray()
    try:
        # read(n) returns what has arrived so far, not n bytes: collect until EOF or the cap.
        while chunk := await request.content.read(min(65536, limit + 1 - len(body))):
            body += chunk
            if len(body) > limit:
                return web.Response(status=413, text="too large")
    except Exception:
        return web.Response(status=400, text="bad request")
    return bytes(body)


class _Crypto(WeChatCrypto):
    """wechatpy's WeChatCrypto with its AES cipher built once, not once per message."""

    def __init__(self, token: str, aes_key: str, corp_id: str):
        super().__init__(token, aes_key, corp_id)
        prp = PrpCrypto(self.key)
        self._prp = lambda key: prp

    def decrypt_message(self, msg, signature, timestamp, nonce):
        return self._decrypt_message(msg, signature, timestamp, nonce, self._prp)


def make_crypto(token: str, aes_key: str, corp_id: str) -> WeChatCrypto:
    return _Crypto(token, aes_key, corp_id)


def verify_url(crypto: WeChatCrypto, signature: str, timestamp: str, nonce: str, echostr: str) -> str:
    try:
        plain = crypto.check_signature(signature, timestamp, nonce, echostr)
    except Exception as e:  # wechatpy raises several unrelated types; all mean "refuse"
        raise CallbackError(type(e).__name__) from None
    return plain.decode() if isinstance(plain, bytes) else str(plain)


def _flat_fields(raw: bytes | str, strip: bool) -> dict[str, str | None]:
    """The children of a flat <xml>…</xml> document. Refuses (ValueError) a DOCTYPE, entities
    and elements nested deeper than two."""
    parser = expat.ParserCreate()
    fields: dict[str, str | None] = {}
    text: list[str] = []
    depth = 0

    def start(name, attrs):
        nonlocal depth
        depth += 1
        if depth > 2:
            raise ValueError("nested element")
        text.clear()

    def end(name):
        nonlocal depth
        if depth == 2:
            value = "".join(text)
            if strip:
                value = value.strip() or None  # as xmltodict reads it for wechatpy
            fields[name] = value
        depth -= 1

    def refuse(*args):
        raise ValueError("declarations are not allowed")

    parser.StartElementHandler, parser.EndElementHandler = start, end
    parser.CharacterDataHandler = text.append
    parser.StartDoctypeDeclHandler = parser.EntityDeclHandler = refuse
    parser.Parse(raw, True)
    return fields


def envelope_fields(raw: bytes) -> dict[str, str]:
    """The flat <xml><Encrypt>…</Encrypt>…</xml> envelope, read before the signature can be checked.

    Anyone can post here, so it is read with a parser that refuses what an envelope never has:
    a DOCTYPE, entities, elements nested deeper than two (100,000 nested tags under the body cap
    otherwise cost wechatpy's xmltodict 0.5 s of the loop each).
    """
    return _flat_fields(raw, strip=False)  # type: ignore[return-value]


def parse_plaintext(xml: str):
    """wechatpy's `parse_message` for the decrypted message, with its message and event classes.

    Messages are flat, so they are read with the envelope's expat reader (22 µs a message
    against 49 through xmltodict); the few nested events (menu pictures, scans) go through
    wechatpy whole."""
    try:
        fields = _flat_fields(xml, strip=True)
    except ValueError:
        return parse_message(xml)
    message_type = (fields.get("MsgType") or "").lower()
    if message_type == "event":
        cls = EVENT_TYPES.get((fields.get("Event") or "").lower(), UnknownMessage)
    else:
        cls = MESSAGE_TYPES.get(message_type, UnknownMessage)
    return cls(fields)


def decrypt(crypto: WeChatCrypto, body: bytes, signature: str, timestamp: str, nonce: str) -> str:
    try:
        return crypto.decrypt_message(envelope_fields(body), signature, timestamp, nonce)
    except Exception as e:
        raise CallbackError(type(e).__name__) from None


def to_event(xml: str) -> Event:
    try:
        return _to_event(parse_plaintext(xml))
    except CallbackError:  # BadMessage included
        raise
    except Exception as e:  # wechatpy and field conversions raise many kinds; all mean "refuse"
        raise CallbackError(f"unparseable message: {type(e).__name__}") from None


def _agent(msg) -> int | None:
    raw = getattr(msg, "agent", None) or msg._data.get("AgentID")
    try:
        return int(raw) if raw not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _to_event(msg) -> Event:
    common = dict(sender=str(msg.source or ""), create_time=int(msg.time or 0), agent_id=_agent(msg))
    if not create_time_ok(common["create_time"]):
        raise BadMessage(f"CreateTime {common['create_time']} is out of range")
    t = msg.type
    if msg.id:
        key = str(msg.id)
    else:
        # No MsgId (WeCom always sends one; a proxy or an old deployment may not): the whole
        # message stands for it, so a second, different message is not taken for a resend.
        fields = "\x00".join(f"{k}={v}" for k, v in sorted(msg._data.items()) if v is not None)
        key = derived_key(t if t != "unknown" else "ot", common["sender"], common["create_time"], fields)
    if t == "text":
        return TextMessage(key=key, content=msg.content or "", **common)
    if t == "image":
        return ImageMessage(key=key, media_id=msg.media_id or "", pic_url=msg.image or "", **common)
    if t == "location":
        return LocationMessage(key=key, lat=float(msg.location_x), lng=float(msg.location_y),
                               label=msg.label or "", **common)
    if t == "voice":
        return VoiceMessage(key=key, media_id=msg.media_id or "", format=msg.format or "", **common)
    if t == "event":
        name = str(getattr(msg, "event", "") or "").lower()
        ekey = f"ev:{common['sender']}:{common['create_time']}:{name}"
        lat = getattr(msg, "latitude", None)
        lng = getattr(msg, "longitude", None)
        return AppEvent(key=ekey, event=name, lat=float(lat) if lat is not None else None,
                        lng=float(lng) if lng is not None else None, **common)
    data = getattr(msg, "_data", {}) or {}
    if str(data.get("MsgType", "")).lower() == "event" and str(data.get("Event", "")).lower() == "template_card_event":
        return card_action(data, common)
    raw_type = t if t != "unknown" else str(msg._data.get("MsgType", "unknown"))
    return OtherMessage(key=key, msg_type=raw_type, **common)


def _as_list(v) -> list:
    return v if isinstance(v, list) else [] if v is None else [v]


def card_action(data: dict, common: dict) -> CardAction:
    """A template card's button tap. WeCom keys events by sender and time; the card's task id and
    the button are added, so two taps within a second on different cards stay two events."""
    key, task = str(data.get("EventKey") or ""), str(data.get("TaskId") or "")
    selected: dict[str, list[str]] = {}
    items = data.get("SelectedItems")
    for item in _as_list(items.get("SelectedItem") if isinstance(items, dict) else None):
        if isinstance(item, dict) and item.get("QuestionKey"):
            ids = item.get("OptionIds")
            selected[str(item["QuestionKey"])] = [str(o) for o in _as_list(
                ids.get("OptionId") if isinstance(ids, dict) else None)]
    return CardAction(key=f"ev:{common['sender']}:{common['create_time']}:card:{task}:{key}", event_key=key,
                      task_id=task, card_type=str(data.get("CardType") or ""),
                      response_code=str(data.get("ResponseCode") or ""), selected=selected or None, **common)
