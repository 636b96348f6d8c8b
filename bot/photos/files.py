"""Photos: download through the transport, validate safely, store (bot.photos.media_store), thumbnail.

Files are named by date, person and content hash, never by anything the sender controls, and
written atomically (temp file, fsync, rename), so a crash leaves no half-written photo. Untrusted
bytes are checked for size and pixel count before any pixel is decoded (decompression bombs), and
only the formats phones send are opened: Pillow's other plugins (EPS runs Ghostscript) stay shut.

Each photo is decoded once, to a bounded preview (bot.photos.decode), by at most DECODES_AT_ONCE
photos at a time: the thumbnail and the fingerprints are made from that preview.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
import weakref
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Callable
from struct import error as struct_error  # Pillow lets it escape on some malformed headers

import aiohttp
from loguru import logger
from PIL import Image, UnidentifiedImageError

from bot.clock import iso_week
from bot.photos.decode import DecodeError, develop
from bot.photos.media_store import MediaStore
from bot.events import ImageMessage
from bot.wecom.aibot_codec import decrypt_file
from bot.wecom.api import MediaExpired, WecomClient, WecomError
from bot.wecom.inbound import CallbackError

MAX_BYTES = 20 * 1024 * 1024
MAX_PIXELS = 50_000_000
THUMB_PX = 480
# MPO is how Pillow names the JPEGs many phones write (a JPEG with a second, depth/preview frame).
FORMATS = ("JPEG", "MPO", "PNG", "GIF", "WEBP", "BMP")
Image.init()  # registers every plugin; FORMATS then picks the few we open
_OPENABLE = tuple(f for f in FORMATS if f in Image.OPEN)
DOWNLOAD_ATTEMPTS = 2
DECODES_AT_ONCE = 2  # one per core: more only adds memory, not speed
RETRY_DELAY = 1.0
_SAFE = re.compile(r"[^A-Za-z0-9_-]")


class PhotoError(Exception):
    """The bytes are not a usable photo (not an image, too large, a decompression bomb)."""


class PhotoExpired(Exception):
    """WeCom no longer has the media (errcode 40007, after 3 days)."""


class PhotoUnavailable(PhotoExpired):
    """The download failed for another reason (network, WeCom error); asking to resend helps.

    A subclass of PhotoExpired so that callers which only know "ask the sender to send it again"
    handle it without change.
    """


@dataclass(frozen=True)
class Photo:
    data: bytes
    sha256: str
    width: int
    height: int
    format: str
    # The one decode of this photo: upright RGB of at most ~2 MP, and its EXIF.
    preview: Image.Image | None = field(default=None, compare=False, repr=False)
    exif: Image.Exif | None = field(default=None, compare=False, repr=False)

    @property
    def ext(self) -> str:
        return {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp",
                "BMP": "bmp"}.get(self.format, "img")


def open_lazy(data: bytes) -> Image.Image:
    """Open untrusted bytes without decoding pixels; raises PhotoError before anything big happens."""
    if len(data) > MAX_BYTES:
        raise PhotoError("too large")
    try:
        img = Image.open(io.BytesIO(data), formats=_OPENABLE)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, TypeError, struct_error,
            Image.DecompressionBombError) as e:
        raise PhotoError(type(e).__name__) from None
    if img.width <= 0 or img.height <= 0 or img.width * img.height > MAX_PIXELS:
        raise PhotoError("too many pixels")
    return img


def inspect(data: bytes) -> Photo:
    """Check and decode untrusted bytes, once, within a memory budget (a truncated or broken
    file fails here, not later in a thumbnail or hash); raises PhotoError."""
    img = open_lazy(data)
    size, fmt = img.size, img.format or ""  # as stored: a reduced decode changes img.size
    try:
        dev = develop(img, data)
    except DecodeError as e:
        raise PhotoError(str(e)) from None
    return Photo(data, hashlib.sha256(data).hexdigest(), *size, fmt, dev.preview, dev.exif)


_decode_slots: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]" = weakref.WeakKeyDictionary()


async def inspect_bounded(data: bytes) -> Photo:
    """inspect() in a worker thread, DECODES_AT_ONCE photos at a time (four long screenshots
    decoded at once would each hold their pixels together)."""
    loop = asyncio.get_running_loop()
    slots = _decode_slots.setdefault(loop, asyncio.Semaphore(DECODES_AT_ONCE))
    async with slots:
        return await asyncio.to_thread(inspect, data)


class PhotoSource:
    """Fetches an image message's photo the way its channel delivers it, so no handler needs to
    know a platform's key: app messages through media/get, AI-bot images from their URL,
    encrypted with the key the message brought (long connection) or else the AI bot's
    EncodingAESKey (callback; read from the current config, which a reload may change)."""

    def __init__(self, client: WecomClient, aibot_key: Callable[[], str]):
        self.client = client
        self._aibot_key = aibot_key

    async def fetch(self, event: ImageMessage) -> Photo:
        """PhotoExpired (40007), PhotoUnavailable (other failures after a retry) or PhotoError
        (not a usable image)."""
        if event.via != "aibot":
            data = await _fetch(lambda: self.client.media_get(event.media_id, MAX_BYTES), "media/get")
            return await inspect_bounded(data)
        # The AI bot's image sits encrypted behind a URL that lives 5 minutes.
        data = await _fetch(lambda: self.client.download(event.pic_url, MAX_BYTES + 64), "AI-bot image")
        try:
            data = decrypt_file(per_message_key(event.aes_key) if event.aes_key else self._aibot_key(), data)
        except CallbackError as e:
            raise PhotoError(str(e)) from None
        return await inspect_bounded(data)


def per_message_key(aeskey: str) -> str:
    """A long-connection image's aeskey as an EncodingAESKey: base64 of 32 bytes, which WeCom
    sends with or without its "=" (the decrypter adds it back)."""
    key = aeskey.strip().rstrip("=")
    if len(key) != 43:
        raise PhotoError("the image's key is not 32 bytes")
    return key


async def _fetch(get, what: str) -> bytes:
    for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
        try:
            return await get()
        except MediaExpired as e:
            raise PhotoExpired(what) from e
        except (WecomError, aiohttp.ClientError, asyncio.TimeoutError) as e:
            if isinstance(e, WecomError) and e.errcode == -3:
                raise PhotoError("larger than 20 MB") from None
            transient = not isinstance(e, WecomError) or e.transient or e.errcode == -1
            logger.warning("{} failed (attempt {}/{}): {}", what, attempt, DOWNLOAD_ATTEMPTS, e)
            if not transient or attempt == DOWNLOAD_ATTEMPTS:
                raise PhotoUnavailable(what) from e
            await asyncio.sleep(RETRY_DELAY)
    raise PhotoUnavailable(what)


def photo_path(day: date, grid: str, userid: str, photo: Photo, kind: str = "checkin") -> Path:
    """Relative path: media/<week>/<grid>/<date>_<kind>_<userid>_<sha12>.<ext> (sanitised)."""
    safe_grid = _SAFE.sub("_", grid or "none")[:40]
    safe_user = _SAFE.sub("_", userid)[:40]
    safe_kind = _SAFE.sub("_", kind)[:20]
    name = f"{day.isoformat()}_{safe_kind}_{safe_user}_{photo.sha256[:12]}.{photo.ext}"
    return Path("media") / iso_week(day) / safe_grid / name


def make_thumbnail(photo: Photo | bytes) -> bytes:
    """An upright JPEG of at most THUMB_PX on the long side, from the photo's preview."""
    preview = (photo if isinstance(photo, Photo) else inspect(photo)).preview
    assert preview is not None
    try:
        img = preview.copy()
        img.thumbnail((THUMB_PX, THUMB_PX), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=80)
    except (OSError, SyntaxError, ValueError, TypeError, IndexError, struct_error, EOFError) as e:
        raise PhotoError(type(e).__name__) from None
    return buf.getvalue()


def _write(media: MediaStore, rel: Path, photo: Photo) -> Path:
    key = rel.as_posix()
    if not media.exists(key):
        media.put(key, photo.data)
    thumb = rel.with_name(rel.stem + ".thumb.jpg")
    if not media.exists(thumb.as_posix()):  # made once: the same photo again reuses it
        media.put(thumb.as_posix(), make_thumbnail(photo))
    return thumb


async def save_photo(media: MediaStore, day: date, grid: str, userid: str, photo: Photo,
                     kind: str = "checkin") -> tuple[str, str]:
    """Store the original and a thumbnail; returns their keys (bot.photos.media_store)."""
    rel = photo_path(day, grid, userid, photo, kind)
    thumb = await asyncio.to_thread(_write, media, rel, photo)
    return rel.as_posix(), thumb.as_posix()
