"""Big PNGs written a row at a time (a 7000×7000 picture never sits whole in the test's memory),
with every one of PNG's five row filters in turn, so a decoder that gets a filter wrong shows it."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _filtered(rows: np.ndarray, prev: np.ndarray, bpp: int, kinds: tuple[int, ...]) -> np.ndarray:
    """Row i filtered with kinds[i % len(kinds)] (blocks start at a multiple of 10), filter byte first."""
    x = rows.astype(np.int16)
    b = np.vstack([prev[None, :], rows[:-1]]).astype(np.int16)  # up
    pad = np.zeros((len(rows), bpp), np.int16)
    a = np.hstack([pad, x[:, :-bpp]]) if {1, 3, 4} & set(kinds) else None  # left
    preds = {0: np.zeros_like(x), 2: b}
    if 1 in kinds:
        preds[1] = a
    if 3 in kinds:
        preds[3] = (a + b) // 2
    if 4 in kinds:
        c = np.hstack([pad, b[:, :-bpp]])  # up-left
        p = a + b - c
        pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
        preds[4] = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
    row_kinds = np.array(kinds, np.uint8)[np.arange(len(rows)) % len(kinds)]
    pred = np.choose(np.searchsorted(sorted(preds), row_kinds)[:, None], [preds[k] for k in sorted(preds)])
    out = np.empty((len(rows), rows.shape[1] + 1), np.uint8)
    out[:, 0] = row_kinds
    out[:, 1:] = (x - pred) % 256
    return out


def pixel_rows(y0: int, n: int, width: int, channels: int, seed: int = 0) -> np.ndarray:
    """Rows y0… of a picture of gradients and flat blocks (it compresses like a screenshot)."""
    x = np.arange(width, dtype=np.int64)
    y = np.arange(y0, y0 + n, dtype=np.int64)
    out = np.empty((n, width, channels), np.uint8)
    for ch in range(channels):
        across = ((x * (ch + 1) + seed * 37) // 7 % 256).astype(np.uint8)
        down = ((y * (3 - ch % 3)) // 7 % 256).astype(np.uint8)
        np.add(down[:, None], across[None, :], out=out[:, :, ch])  # wraps at 256
    flat_rows = (y // 400) % 3 == 1
    out[np.ix_(flat_rows, (x % 300) < 150)] = 245  # a chat screenshot's flat background
    return out.reshape(n, -1)


def write_png(path: Path, width: int, height: int, colour_type: int = 2, seed: int = 0,
              palette: bytes | None = None, trns: bytes | None = None,
              filters: tuple[int, ...] = (0, 1, 2, 3, 4)) -> int:
    """Writes the PNG, its rows filtered with `filters` in turn; returns its size."""
    ch = CHANNELS[colour_type]
    z = zlib.compressobj(1)
    prev = np.zeros(width * ch, np.uint8)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)))
        if colour_type == 3:
            f.write(_chunk(b"PLTE", palette or bytes(range(256)) * 3))
        if trns is not None:
            f.write(_chunk(b"tRNS", trns))
        idat = bytearray()
        for y0 in range(0, height, 500):  # a multiple of 10: each block starts with filters[0]
            rows = pixel_rows(y0, min(500, height - y0), width, ch, seed)
            idat += z.compress(_filtered(rows, prev, ch, filters).tobytes())
            prev = rows[-1]
            if len(idat) > 1 << 20:
                f.write(_chunk(b"IDAT", bytes(idat)))
                idat.clear()
        idat += z.flush()
        f.write(_chunk(b"IDAT", bytes(idat)))
        f.write(_chunk(b"IEND", b""))
    return path.stat().st_size
