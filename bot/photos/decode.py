"""One bounded decode per photo: a small upright picture (the preview) that thumbnails and hashes
are made from, without ever holding the full-size pixels of a big photo.

A phone's long screenshot (1242×26000) or a 7000×7000 PNG is 130 to 200 MB of pixels decoded
whole, twice that with a conversion, and a process keeps what it once used. Here:
- JPEG is decoded at a reduced scale by libjpeg itself (Pillow's draft());
- an 8-bit PNG is decoded a band of rows at a time: its zlib stream is inflated in pieces, each
  band re-wrapped as a small PNG (with the row above it, so PNG's row filters still work) for
  Pillow to decode, reduced at once, and dropped;
- other images (GIF, WEBP, BMP, 16-bit or interlaced PNG) are decoded whole only up to
  FULL_DECODE_PIXELS, and converted a band at a time.
The preview has at most about PREVIEW_PIXELS pixels, in RGB, turned upright by its EXIF
orientation. Afterwards freed memory is handed back to the system (glibc keeps it otherwise).
"""

from __future__ import annotations

import ctypes
import io
import math
import struct
import zlib
from dataclasses import dataclass
from struct import error as struct_error
from typing import Iterator

from PIL import Image

PREVIEW_PIXELS = 2_000_000  # ~1630×1220: plenty for a 480 px thumbnail and a 256 px hash
FULL_DECODE_PIXELS = 24_000_000  # formats decoded whole: at most ~96 MB of pixels
BAND_BYTES = 4 * 1024 * 1024  # raw PNG rows inflated at a time
_PNG = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # PNG colour type → samples per pixel
_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
              4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
              6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}
ORIENTATION = 0x0112
DECODE_ERRORS = (OSError, SyntaxError, ValueError, TypeError, IndexError, struct_error, EOFError, zlib.error,
                 Image.DecompressionBombError)


class DecodeError(Exception):
    """Not decodable within the budget, or broken; the caller words it for the person."""


@dataclass(frozen=True)
class Developed:
    preview: Image.Image  # upright RGB, at most about PREVIEW_PIXELS
    exif: Image.Exif


def reduction(width: int, height: int) -> int:
    return max(1, math.ceil(math.sqrt(width * height / PREVIEW_PIXELS)))


def develop(img: Image.Image, data: bytes) -> Developed:
    """The preview and EXIF of `img`, opened lazily from `data` (nothing decoded yet)."""
    try:
        f = reduction(img.width, img.height)
        exif = None
        if img.format in ("JPEG", "MPO"):
            img.draft("RGB", (math.ceil(img.width / f), math.ceil(img.height / f)))
            img.load()
            small = _reduce(img.convert("RGB"))
            exif = img.getexif()
        elif img.format == "PNG" and (banded := _png_by_bands(data, f)) is not None:
            small, raw_exif = banded
            exif = Image.Exif()
            if raw_exif or img.info.get("exif"):
                exif.load(raw_exif or img.info["exif"])
        else:
            if img.width * img.height > FULL_DECODE_PIXELS:
                raise DecodeError(f"{img.format} of {img.width}×{img.height} is too large to decode")
            img.load()
            small = _by_bands(img, f)
            exif = img.getexif()
        turn = _TRANSPOSE.get(exif.get(ORIENTATION, 1) if exif is not None else 1)
        return Developed(small.transpose(turn) if turn is not None else small, exif or Image.Exif())
    except DecodeError:
        raise
    except DECODE_ERRORS as e:
        raise DecodeError(type(e).__name__) from None
    finally:
        give_back_memory()


def _rgb(img: Image.Image) -> Image.Image:
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")  # Pillow's way for a palette with transparency; alpha dropped next
    return img.convert("RGB")


def _reduce(img: Image.Image) -> Image.Image:
    k = reduction(img.width, img.height)
    return img.reduce(k) if k > 1 else img


def _by_bands(img: Image.Image, f: int) -> Image.Image:
    """An image decoded whole, converted to RGB and reduced a band at a time."""
    out = Image.new("RGB", (math.ceil(img.width / f), math.ceil(img.height / f)))
    step = max(f, (BAND_BYTES // max(1, img.width * 4)) // f * f)
    for y in range(0, img.height, step):
        band = _rgb(img.crop((0, y, img.width, min(img.height, y + step))))
        out.paste(band.reduce(f) if f > 1 else band, (0, y // f))
    return out


def _chunks(data: bytes) -> Iterator[tuple[bytes, memoryview]]:
    view = memoryview(data)
    pos = len(_PNG)
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", view[pos:pos + 8])
        yield kind, view[pos + 8:pos + 8 + length]
        pos += 12 + length


def _chunk(kind: bytes, body: bytes | memoryview) -> bytes:
    return struct.pack(">I", len(body)) + kind + bytes(body) + struct.pack(">I", zlib.crc32(kind + bytes(body)))


def _png_by_bands(data: bytes, f: int) -> tuple[Image.Image, bytes | None] | None:
    """The reduced RGB picture of an 8-bit, non-interlaced PNG, and its eXIf chunk; None for a
    PNG this cannot stream (the caller decodes it whole, within FULL_DECODE_PIXELS)."""
    chunks = list(_chunks(data))
    if not chunks or chunks[0][0] != b"IHDR":
        return None
    w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1][:13])
    if depth != 8 or interlace or ctype not in _CHANNELS:
        return None
    keep = b"".join(_chunk(k, body) for k, body in chunks if k in (b"PLTE", b"tRNS"))
    exif = next((bytes(body) for k, body in chunks if k == b"eXIf"), None)
    row = w * _CHANNELS[ctype] + 1  # a filter byte, then the samples
    step = max(f, (BAND_BYTES // row) // f * f)
    rows = _inflated(chunks, step * row)
    out = Image.new("RGB", (math.ceil(w / f), math.ceil(h / f)))
    above = b""  # the row above the band, unfiltered, as a filter-0 row
    for y in range(0, h, step):
        n = min(step, h - y)
        raw = rows(n * row)
        if len(raw) < n * row:
            raise DecodeError("PNG data ends early")
        lead = 1 if above else 0
        ihdr = struct.pack(">IIBBBBB", w, n + lead, 8, ctype, 0, 0, 0)
        band_png = (_PNG + _chunk(b"IHDR", ihdr) + keep
                    + _chunk(b"IDAT", zlib.compress(above + raw, 0)) + _chunk(b"IEND", b""))
        del raw
        band = Image.open(io.BytesIO(band_png), formats=("PNG",))
        band.load()
        del band_png
        above = b"\x00" + band.crop((0, n + lead - 1, w, n + lead)).tobytes()
        rgb = _rgb(band.crop((0, lead, w, n + lead)))
        del band
        out.paste(rgb.reduce(f) if f > 1 else rgb, (0, y // f))
    return out, exif


def _inflated(chunks: list[tuple[bytes, memoryview]], piece: int):
    """A reader of the PNG's inflated pixel stream: read(n) returns up to n bytes. Never inflates
    more than asked for (a small IDAT may inflate a thousandfold)."""
    z = zlib.decompressobj()
    idats = (body for k, body in chunks if k == b"IDAT")
    pending = b""
    state = {"left": b""}

    def read(n: int) -> bytes:
        nonlocal pending
        parts = [pending]
        have = len(pending)
        while have < n:
            src = state["left"] or next(idats, None)
            if src is None:
                break
            got = z.decompress(src, max(piece, n - have))
            state["left"] = z.unconsumed_tail
            parts.append(got)
            have += len(got)
        buf = b"".join(parts)
        pending = buf[n:]
        return buf[:n]
    return read


try:
    _libc = ctypes.CDLL("libc.so.6")
    _malloc_trim = _libc.malloc_trim
except (OSError, AttributeError):  # not glibc: nothing to do
    _malloc_trim = None


def give_back_memory() -> None:
    """glibc keeps freed memory for reuse; after a decode that is tens of MB the process would
    otherwise hold for good."""
    if _malloc_trim is not None:
        _malloc_trim(0)
