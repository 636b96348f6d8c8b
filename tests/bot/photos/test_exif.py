"""Capture time and GPS from EXIF, and EXIF that is missing or nonsense."""

from __future__ import annotations

import io
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from bot.photos.exif import parse_exif_time, parse_gps
from bot.photos.hashing import PhotoFacts, analyze

from tests.support.photo_samples import jpeg, scene

TZ = ZoneInfo("Asia/Shanghai")


def facts(data: bytes) -> PhotoFacts:
    return analyze(data, TZ)


def test_capture_time_from_the_exif_ifd_with_its_offset():
    f = facts(jpeg(scene(1), taken=datetime(2026, 11, 25, 8, 50), offset="+00:00"))
    assert f.exif_time == datetime(2026, 11, 25, 16, 50, tzinfo=TZ)


def test_capture_time_falls_back_to_ifd0_datetime():
    f = facts(jpeg(scene(1), taken=datetime(2026, 11, 24, 7, 5), only_ifd0=True))
    assert f.exif_time == datetime(2026, 11, 24, 7, 5, tzinfo=TZ)


def test_no_exif_and_nonsense_exif_give_no_time():
    assert facts(jpeg(scene(1))).exif_time is None
    assert parse_exif_time("0000:00:00 00:00:00", None, TZ) is None
    assert parse_exif_time("2026:13:45 99:00:00", None, TZ) is None
    assert parse_exif_time(b"1970:01:01 00:00:00\x00", None, TZ) is None
    assert parse_exif_time(12345, None, TZ) is None


def test_gps_in_every_hemisphere():
    assert facts(jpeg(scene(1), gps=(31.1774276, 121.5272106))).gps == pytest.approx((31.177428, 121.527211), abs=1e-5)
    assert facts(jpeg(scene(1), gps=(-33.8568, -70.6483))).gps == pytest.approx((-33.8568, -70.6483), abs=1e-5)
    assert parse_gps({1: "N", 2: (0, 0, 0), 3: "E", 4: (0, 0, 0)}) is None


@pytest.mark.filterwarnings("ignore:Corrupt EXIF")
def test_garbage_exif_block_is_ignored():
    img = scene(2)
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff" + b"\x07" * 40)
    f = facts(buf.getvalue())
    assert f.exif_time is None and f.gps is None
