"""Real photos for check-in tests: seeded random scenes (so different seeds are perceptually
different pictures), JPEG bytes with chosen EXIF, and the copies people make of a photo."""

from __future__ import annotations

import io
import random
import struct
import zlib
from datetime import datetime
from fractions import Fraction

import numpy as np
from PIL import Image, ImageDraw
from PIL.TiffImagePlugin import IFDRational


def scene(seed: int, size: tuple[int, int] = (1200, 900)) -> Image.Image:
    """Shapes of random colours on a random background, with sensor-like noise."""
    rnd = random.Random(seed)
    w, h = size
    img = Image.new("RGB", size, tuple(rnd.randrange(60, 200) for _ in range(3)))
    d = ImageDraw.Draw(img)
    for _ in range(rnd.randint(10, 18)):
        x0, y0 = rnd.randrange(w), rnd.randrange(h)
        x1, y1 = x0 + rnd.randrange(w // 20, w // 2), y0 + rnd.randrange(h // 20, h // 2)
        colour = tuple(rnd.randrange(256) for _ in range(3))
        if rnd.random() < 0.5:
            d.rectangle([x0, y0, x1, y1], fill=colour)
        else:
            d.ellipse([x0, y0, x1, y1], fill=colour)
    arr = np.asarray(img).astype(np.int16)
    noise = np.random.default_rng(seed).integers(-12, 13, arr.shape)
    return Image.fromarray(np.clip(arr + noise, 0, 255).astype(np.uint8))


def _dms(value: float) -> tuple:
    value = abs(value)
    d = int(value)
    m = int((value - d) * 60)
    s = (value - d - m / 60) * 3600
    frac = Fraction(s).limit_denominator(10000)
    return (IFDRational(d, 1), IFDRational(m, 1), IFDRational(frac.numerator, frac.denominator))


def jpeg(img: Image.Image, *, quality: int = 88, taken: datetime | None = None, only_ifd0: bool = False,
         offset: str | None = None, gps: tuple[float, float] | None = None, orientation: int | None = None) -> bytes:
    """JPEG bytes; `taken` goes into DateTimeOriginal (Exif IFD) and DateTime (IFD0)."""
    exif = Image.Exif()
    if taken is not None:
        stamp = taken.strftime("%Y:%m:%d %H:%M:%S")
        exif[306] = stamp
        if not only_ifd0:
            exif.get_ifd(0x8769)[36867] = stamp
            if offset:
                exif.get_ifd(0x8769)[36881] = offset
    if gps is not None:
        g = exif.get_ifd(0x8825)
        g[1] = "N" if gps[0] >= 0 else "S"
        g[2] = _dms(gps[0])
        g[3] = "E" if gps[1] >= 0 else "W"
        g[4] = _dms(gps[1])
    if orientation is not None:
        exif[274] = orientation
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality, exif=exif.tobytes() if len(exif) or exif.get_ifd(0x8825) else b"")
    return buf.getvalue()


def reencode(data: bytes, quality: int = 60) -> bytes:
    """What a chat app does when a photo is forwarded: decoded and saved again, EXIF dropped."""
    buf = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def resized(data: bytes, factor: float = 0.5, quality: int = 80) -> bytes:
    img = Image.open(io.BytesIO(data)).convert("RGB")
    img = img.resize((round(img.width * factor), round(img.height * factor)), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def cropped(data: bytes, left: float, top: float, right: float, bottom: float, quality: int = 85) -> bytes:
    img = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = img.size
    img = img.crop((round(w * left), round(h * top), round(w * (1 - right)), round(h * (1 - bottom))))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def screenshot(data: bytes, quality: int = 80) -> bytes:
    """A phone screenshot of the photo shown full-width on black, with a status bar on top."""
    photo = Image.open(io.BytesIO(data)).convert("RGB")
    screen = Image.new("RGB", (1080, 2340), (0, 0, 0))
    photo = photo.resize((1080, round(1080 * photo.height / photo.width)), Image.Resampling.BICUBIC)
    screen.paste(photo, (0, (2340 - photo.height) // 2))
    d = ImageDraw.Draw(screen)
    d.text((48, 36), "09:41", fill=(255, 255, 255))
    d.rectangle([900, 36, 1010, 66], fill=(255, 255, 255))
    buf = io.BytesIO()
    screen.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge canvas: a decompression bomb's calling card."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))
