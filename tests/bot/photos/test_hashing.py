"""Fingerprints: the copies people make stay close, different photos stay apart."""

from __future__ import annotations

import io
import random
from zoneinfo import ZoneInfo

import pytest
from PIL import Image

from bot.photos.hashing import CROPS, PhotoFacts, analyze, content_box, distance, match_distance

from tests.support.photo_samples import cropped, jpeg, reencode, resized, scene, screenshot

TZ = ZoneInfo("Asia/Shanghai")
LIMIT = 6  # the default [checkin] duplicate_distance


def facts(data: bytes) -> PhotoFacts:
    return analyze(data, TZ)


@pytest.fixture(scope="module")
def originals() -> list[bytes]:
    return [jpeg(scene(seed, (1200, 900) if seed % 2 else (900, 1200))) for seed in range(24)]


@pytest.fixture(scope="module")
def prints(originals) -> list[PhotoFacts]:
    return [facts(d) for d in originals]


def test_copies_people_make_stay_within_the_distance(originals, prints):
    rnd = random.Random(7)
    for data, ref in zip(originals, prints):
        edges = [rnd.uniform(0, 0.05) for _ in range(4)]
        copies = {
            "re-encoded": reencode(data, 55),
            "resized": resized(data, 0.4),
            "cropped ≤5% per edge": cropped(data, *edges),
            "cropped 5% each side": cropped(data, 0.05, 0.05, 0.05, 0.05),
            "screenshot": screenshot(data),
        }
        for what, copy in copies.items():
            f = facts(copy)
            assert match_distance(f, ref, LIMIT) is not None, f"{what} copy drifted {distance(f, ref)} bits"


def test_different_photos_are_far_apart(prints):
    pairs = [(a, b) for i, a in enumerate(prints) for b in prints[i + 1:]]
    assert min(distance(a, b) for a, b in pairs) > LIMIT + 4
    assert all(match_distance(a, b, LIMIT) is None for a, b in pairs)


def test_exif_rotation_does_not_change_the_fingerprint():
    img = scene(3)
    upright = facts(jpeg(img))
    # Stored sideways with "rotate 90° clockwise to view" (orientation 6), as phones do.
    sideways = facts(jpeg(img.transpose(Image.Transpose.ROTATE_90), orientation=6))
    assert distance(upright, sideways) <= 2


def test_blank_and_tiny_pictures_do_not_break_anything():
    for img in (Image.new("RGB", (640, 480), (0, 0, 0)), Image.new("RGB", (1, 1), (200, 10, 10)),
                Image.new("L", (3000, 20), 255)):
        f = facts(jpeg(img.convert("RGB")))
        assert len(f.hashes) == 1 + len(CROPS)


def test_letterbox_bars_are_trimmed_but_a_dark_photo_is_not():
    import numpy as np
    shot = np.asarray(Image.open(io.BytesIO(screenshot(jpeg(scene(5))))).convert("L").resize((118, 256)))
    x0, y0, x1, y1 = content_box(shot)
    assert (x0, x1) == (0, 118) and 70 < y1 - y0 < 100  # the 4:3 photo in a 1080×2340 screen
    dark = np.asarray(scene(6).convert("L").point(lambda v: v // 3).resize((256, 192)))
    assert content_box(dark) == (0, 0, 256, 192)
