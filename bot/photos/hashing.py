"""Fingerprints of photos: perceptual hashes that survive the copies people make.

imagehash's 64-bit pHash of the upright picture, after trimming black or white bars (a
screenshot of a forwarded photo shows it letterboxed), plus the pHashes of eight fixed crops of
it (CROPS). pHash alone survives re-encoding and resizing but not cropping: 5 % off each edge
moves it by about 10 bits. Two photos match when the whole-picture hash of either is within the
configured distance of any hash of the other; a copy cropped by up to 5 % on any edges is then
caught (tests/bot/photos/test_hashing.py measures it), and unrelated photos stay far apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Sequence

import imagehash
import numpy as np
from PIL import Image

from bot.photos.exif import read_exif
from bot.photos.files import Photo, PhotoError, inspect

NORM_PX = 256  # every photo is hashed from this size, whatever it was sent at
# (left, top, right, bottom) fractions cut off: two centred crops, two bands and the four corners.
# Chosen by measurement: with these, copies cut by up to 5 % on any edges match at distance 6.
CROPS: tuple[tuple[float, float, float, float], ...] = (
    (0.03, 0.03, 0.03, 0.03),
    (0.06, 0.06, 0.06, 0.06),
    (0.05, 0.0, 0.05, 0.0),
    (0.0, 0.05, 0.0, 0.05),
    (0.0, 0.0, 0.05, 0.05),
    (0.05, 0.0, 0.0, 0.05),
    (0.0, 0.05, 0.05, 0.0),
    (0.05, 0.05, 0.0, 0.0),
)
SUPPORT_SLACK = 2  # see match_distance
SUPPORT_MIN = 5


@dataclass(frozen=True)
class PhotoFacts:
    hashes: tuple[int, ...]  # [0]: the whole picture; then one per CROPS entry
    exif_time: datetime | None  # capture time, aware, in the bot's timezone
    gps: tuple[float, float] | None  # (lat, lng) WGS-84, as the camera wrote it

    @property
    def phash(self) -> int:
        return self.hashes[0]


def hex64(h: int) -> str:
    return f"{h:016x}"


def analyze(photo: Photo | bytes, tz: tzinfo) -> PhotoFacts:
    """Fingerprint, capture time and GPS of a photo (bytes are decoded first; run it in a
    thread). Made from the photo's preview: no second decode."""
    if not isinstance(photo, Photo):
        photo = inspect(photo)
    assert photo.preview is not None
    exif_time, gps = read_exif(photo.exif or Image.Exif(), tz)
    return PhotoFacts(fingerprint(photo.preview), exif_time, gps)


def fingerprint(img: Image.Image) -> tuple[int, ...]:
    """The hashes of an upright picture (a photo's preview: at most ~2 MP)."""
    try:
        gray = img.convert("L")
    except (OSError, SyntaxError, ValueError, TypeError, IndexError, EOFError) as e:
        raise PhotoError(type(e).__name__) from None
    small = _shrink(gray)
    x0, y0, x1, y1 = content_box(np.asarray(small))
    if (x0, y0, x1, y1) != (0, 0, small.width, small.height):
        sx, sy = gray.width / small.width, gray.height / small.height
        gray = gray.crop((round(x0 * sx), round(y0 * sy), round(x1 * sx), round(y1 * sy)))
        small = _shrink(gray)
    return tuple(_phash(_window(small, c)) for c in ((0.0, 0.0, 0.0, 0.0),) + CROPS)


def _shrink(img: Image.Image) -> Image.Image:
    img = img.copy()
    img.thumbnail((NORM_PX, NORM_PX), Image.Resampling.LANCZOS)
    return img


def _window(img: Image.Image, crop: tuple[float, float, float, float]) -> Image.Image:
    left, top, right, bottom = crop
    w, h = img.size
    box = (round(w * left), round(h * top), w - round(w * right), h - round(h * bottom))
    return img if box == (0, 0, w, h) else img.crop(box)


def _phash(img: Image.Image) -> int:
    return int(str(imagehash.phash(img)), 16)


def _bar_lines(a: np.ndarray) -> np.ndarray:
    """Per row of `a`: is it (mostly) one black or white colour, as letterbox and status bars are?"""
    # Screen bars are flat black or white (give or take JPEG noise); a dark sky or a white wall in
    # a photo is not that flat, and trimming it would make the same photo hash differently.
    med = np.median(a, axis=1, keepdims=True)
    near = np.count_nonzero(np.abs(a.astype(np.int16) - med.astype(np.int16)) <= 6, axis=1) / a.shape[1]
    return ((med[:, 0] <= 24) | (med[:, 0] >= 232)) & (near >= 0.8)


def _edge(bar: np.ndarray) -> int:
    """How many lines to cut from the start: up to the last bar line within the first 45 % that
    still has mostly bar lines before it (status-bar text and icons sit inside a black bar)."""
    n = len(bar)
    limit = int(n * 0.45)
    seen = np.cumsum(bar[:limit]) / np.arange(1, limit + 1)
    ok = np.flatnonzero(bar[:limit] & (seen >= 0.8))
    return int(ok[-1]) + 1 if len(ok) else 0


def content_box(a: np.ndarray) -> tuple[int, int, int, int]:
    """The picture inside black/white bars, as (x0, y0, x1, y1); the whole image if it is mostly bar."""
    h, w = a.shape
    rows = _bar_lines(a)
    y0, y1 = _edge(rows), h - _edge(rows[::-1])
    if y1 - y0 < max(16, 0.3 * h):
        return 0, 0, w, h  # a blank or nearly blank picture: nothing to trim to
    cols = _bar_lines(a[y0:y1].T)
    x0, x1 = _edge(cols), w - _edge(cols[::-1])
    if x1 - x0 < max(16, 0.3 * w):
        return 0, 0, w, h
    return x0, y0, x1, y1


def _hashes(x: PhotoFacts | Sequence[int]) -> Sequence[int]:
    return x.hashes if isinstance(x, PhotoFacts) else x


def distance(a: PhotoFacts | Sequence[int], b: PhotoFacts | Sequence[int]) -> int:
    """The closest of the pairs the rule compares: whole against whole or crop, crop against whole."""
    ha, hb = _hashes(a), _hashes(b)
    return min(min((ha[0] ^ h).bit_count() for h in hb), min((h ^ hb[0]).bit_count() for h in ha))


def support(a: Sequence[int], b: Sequence[int], within: int) -> int:
    """How many of all hash pairs (any window of one against any of the other) lie within `within`."""
    return sum(1 for x in a for y in b if (x ^ y).bit_count() <= within)


def match_distance(a: PhotoFacts | Sequence[int], b: PhotoFacts | Sequence[int], max_distance: int) -> int | None:
    """The duplicate rule: the distance when the two photos match, else None.

    Whole pictures within the distance match (plain pHash). A match found only through a crop
    window must be backed by other window pairs too: a cropped copy agrees with its original in
    several windows, while two different photos that happen to meet in one pair do not. With
    nine hashes a side, chance meetings would otherwise come seventeen times as often.
    """
    ha, hb = _hashes(a), _hashes(b)
    whole = (ha[0] ^ hb[0]).bit_count()
    if whole <= max_distance:
        return whole
    best = distance(ha, hb)
    if best <= max_distance and support(ha, hb, max_distance + SUPPORT_SLACK) >= SUPPORT_MIN:
        return best
    return None

