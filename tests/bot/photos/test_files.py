"""Untrusted bytes refused before decoding; thumbnails."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from bot.photos.files import PhotoError, inspect, make_thumbnail

from tests.support.photo_samples import jpeg, png_claiming, scene


def test_huge_or_broken_bytes_are_refused_before_decoding():
    ok = jpeg(scene(1))
    for bad in (b"", b"not an image at all", ok[: len(ok) // 2], png_claiming(8000, 8000),
                png_claiming(100_000, 100_000), ok + b"\x00" * (20 * 1024 * 1024)):
        with pytest.raises(PhotoError):
            inspect(bad)


def test_thumbnail_is_small_and_upright():
    img = scene(8, (1600, 1200))
    thumb = Image.open(io.BytesIO(make_thumbnail(jpeg(img.transpose(Image.Transpose.ROTATE_90), orientation=6))))
    assert max(thumb.size) == 480 and thumb.width > thumb.height
