"""Photos: download through the transport, validate safely, store under data_dir, thumbnail.

Files are named by date, person and content hash, never by anything the sender controls, and
written atomically. Pillow's decompression-bomb guard is tightened to our own pixel cap.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from .clock import iso_week
from .store import atomic_write
from .transport import Transport
from .wecom.api import MediaExpired

MAX_BYTES = 20 * 1024 * 1024
MAX_PIXELS = 50_000_000
THUMB_PX = 480
_SAFE = re.compile(r"[^A-Za-z0-9_-]")


class PhotoError(Exception):
    """The bytes are not a usable photo (not an image, too large, a decompression bomb)."""


class PhotoExpired(Exception):
    """WeCom no longer has the media (errcode 40007, after 3 days)."""


@dataclass(frozen=True)
class Photo:
    data: bytes
    sha256: str
    width: int
    height: int
    format: str

    @property
    def ext(self) -> str:
        return {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp"}.get(self.format, "img")


def open_image(data: bytes) -> Image.Image:
    """Open untrusted bytes; raises PhotoError for anything we will not decode."""
    if len(data) > MAX_BYTES:
        raise PhotoError("too large")
    try:
        img = Image.open(io.BytesIO(data))
        if img.width * img.height > MAX_PIXELS:
            raise PhotoError("too many pixels")
        img.verify()  # checks integrity without decoding all pixels
        img = Image.open(io.BytesIO(data))
        img.load()
    except PhotoError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise PhotoError(type(e).__name__) from None
    return img


def inspect(data: bytes) -> Photo:
    img = open_image(data)
    return Photo(data, hashlib.sha256(data).hexdigest(), img.width, img.height, img.format or "")


async def download(transport: Transport, media_id: str) -> Photo:
    try:
        data = await transport.download_media(media_id)
    except MediaExpired as e:
        raise PhotoExpired(media_id) from e
    return await asyncio.to_thread(inspect, data)


def photo_path(data_dir: Path, day: date, grid: str, userid: str, photo: Photo, kind: str = "checkin") -> Path:
    """Relative path: media/<week>/<grid>/<date>_<kind>_<userid>_<sha12>.<ext> (sanitised)."""
    safe_grid = _SAFE.sub("_", grid or "none")[:40]
    safe_user = _SAFE.sub("_", userid)[:40]
    name = f"{day.isoformat()}_{kind}_{safe_user}_{photo.sha256[:12]}.{photo.ext}"
    return Path("media") / iso_week(day) / safe_grid / name


def _write(data_dir: Path, rel: Path, photo: Photo) -> Path:
    full = data_dir / rel
    if not full.exists():
        atomic_write(full, photo.data)
    thumb = full.with_name(full.stem + ".thumb.jpg")
    if not thumb.exists():
        img = open_image(photo.data).convert("RGB")
        img.thumbnail((THUMB_PX, THUMB_PX))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=80)
        atomic_write(thumb, buf.getvalue())
    return rel.with_name(full.stem + ".thumb.jpg")


async def save(data_dir: Path, day: date, grid: str, userid: str, photo: Photo,
               kind: str = "checkin") -> tuple[str, str]:
    """Store the original and a thumbnail; returns their paths relative to data_dir."""
    rel = photo_path(data_dir, day, grid, userid, photo, kind)
    thumb = await asyncio.to_thread(_write, data_dir, rel, photo)
    return rel.as_posix(), thumb.as_posix()
