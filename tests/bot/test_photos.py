"""Fingerprints, EXIF, the duplicate index and geofences, without the bot around them."""

from __future__ import annotations

import io
import random
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from PIL import Image

from bot.config import Geofence
from bot.photos import duplicates, exif, files, geo, hashing

from tests.support.photo_samples import cropped, jpeg, reencode, resized, scene, screenshot

TZ = ZoneInfo("Asia/Shanghai")
LIMIT = 6  # the default [checkin] duplicate_distance


def facts(data: bytes) -> hashing.PhotoFacts:
    return hashing.analyze(data, TZ)


@pytest.fixture(scope="module")
def originals() -> list[bytes]:
    return [jpeg(scene(seed, (1200, 900) if seed % 2 else (900, 1200))) for seed in range(24)]


@pytest.fixture(scope="module")
def prints(originals) -> list[hashing.PhotoFacts]:
    return [facts(d) for d in originals]


# --- fingerprints ---------------------------------------------------------------------

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
            assert hashing.match_distance(f, ref, LIMIT) is not None, f"{what} copy drifted {hashing.distance(f, ref)} bits"


def test_different_photos_are_far_apart(prints):
    pairs = [(a, b) for i, a in enumerate(prints) for b in prints[i + 1:]]
    assert min(hashing.distance(a, b) for a, b in pairs) > LIMIT + 4
    assert all(hashing.match_distance(a, b, LIMIT) is None for a, b in pairs)


def test_exif_rotation_does_not_change_the_fingerprint():
    img = scene(3)
    upright = facts(jpeg(img))
    # Stored sideways with "rotate 90° clockwise to view" (orientation 6), as phones do.
    sideways = facts(jpeg(img.transpose(Image.Transpose.ROTATE_90), orientation=6))
    assert hashing.distance(upright, sideways) <= 2


def test_blank_and_tiny_pictures_do_not_break_anything():
    for img in (Image.new("RGB", (640, 480), (0, 0, 0)), Image.new("RGB", (1, 1), (200, 10, 10)),
                Image.new("L", (3000, 20), 255)):
        f = facts(jpeg(img.convert("RGB")))
        assert len(f.hashes) == 1 + len(hashing.CROPS)


def test_letterbox_bars_are_trimmed_but_a_dark_photo_is_not():
    import numpy as np
    shot = np.asarray(Image.open(io.BytesIO(screenshot(jpeg(scene(5))))).convert("L").resize((118, 256)))
    x0, y0, x1, y1 = hashing.content_box(shot)
    assert (x0, x1) == (0, 118) and 70 < y1 - y0 < 100  # the 4:3 photo in a 1080×2340 screen
    dark = np.asarray(scene(6).convert("L").point(lambda v: v // 3).resize((256, 192)))
    assert hashing.content_box(dark) == (0, 0, 256, 192)


# --- EXIF ------------------------------------------------------------------------------

def test_capture_time_from_the_exif_ifd_with_its_offset():
    f = facts(jpeg(scene(1), taken=datetime(2026, 11, 25, 8, 50), offset="+00:00"))
    assert f.exif_time == datetime(2026, 11, 25, 16, 50, tzinfo=TZ)


def test_capture_time_falls_back_to_ifd0_datetime():
    f = facts(jpeg(scene(1), taken=datetime(2026, 11, 24, 7, 5), only_ifd0=True))
    assert f.exif_time == datetime(2026, 11, 24, 7, 5, tzinfo=TZ)


def test_no_exif_and_nonsense_exif_give_no_time():
    assert facts(jpeg(scene(1))).exif_time is None
    assert exif.parse_exif_time("0000:00:00 00:00:00", None, TZ) is None
    assert exif.parse_exif_time("2026:13:45 99:00:00", None, TZ) is None
    assert exif.parse_exif_time(b"1970:01:01 00:00:00\x00", None, TZ) is None
    assert exif.parse_exif_time(12345, None, TZ) is None


def test_gps_in_every_hemisphere():
    assert facts(jpeg(scene(1), gps=(31.1774276, 121.5272106))).gps == pytest.approx((31.177428, 121.527211), abs=1e-5)
    assert facts(jpeg(scene(1), gps=(-33.8568, -70.6483))).gps == pytest.approx((-33.8568, -70.6483), abs=1e-5)
    assert exif.parse_gps({1: "N", 2: (0, 0, 0), 3: "E", 4: (0, 0, 0)}) is None


@pytest.mark.filterwarnings("ignore:Corrupt EXIF")
def test_garbage_exif_block_is_ignored():
    img = scene(2)
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff" + b"\x07" * 40)
    f = facts(buf.getvalue())
    assert f.exif_time is None and f.gps is None


# --- the index -----------------------------------------------------------------------

def random_entries(n: int, seed: int) -> list[tuple[str, float, list[int]]]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        whole = rnd.getrandbits(64)
        # Crop hashes sit near the whole hash, as real ones do.
        crops = [whole ^ sum(1 << b for b in rnd.sample(range(64), rnd.randint(4, 12))) for _ in range(8)]
        out.append((f"C{i + 1}", 1_000_000.0 + i, [whole] + crops))
    return out


def near(h: int, bits: int, rnd: random.Random) -> int:
    return h ^ sum(1 << b for b in rnd.sample(range(64), bits))


@pytest.mark.parametrize("distance", [0, 3, 6, 11, 20])
def test_index_agrees_with_a_linear_scan(distance):
    entries = random_entries(1500, seed=distance)
    idx = duplicates.PhotoIndex()
    idx.add_many(entries[:600])
    for e in entries[600:]:  # some merged, some still in the recent list
        idx.add(*e)
    rnd = random.Random(99)
    queries = []
    for i in range(100):
        key, t, hs = rnd.choice(entries)
        if i % 2:  # a copy: every window a few bits off the original's
            queries.append([near(h, rnd.randint(0, distance + 1), rnd) for h in hs])
            continue
        q0 = near(hs[rnd.randrange(len(hs))], rnd.randint(0, distance + 3), rnd)  # one window close
        queries.append([q0] + [near(q0, rnd.randint(4, 12), rnd) for _ in range(8)])
    queries += [[rnd.getrandbits(64) for _ in range(9)] for _ in range(30)]
    hits = 0
    for q in queries:
        got = idx.search(q, distance)
        want = duplicates.linear_search(entries, q, distance)
        assert (got and (got.key, got.distance)) == (want and (want.key, want.distance))
        hits += got is not None
    assert hits > 20


def test_index_checks_a_small_fraction_of_what_it_holds():
    entries = random_entries(20_000, seed=1)
    idx = duplicates.PhotoIndex()
    idx.add_many(entries)
    idx.search(entries[123][2], LIMIT)
    stored = len(entries) * 9
    assert idx.last_candidates < stored / 50


def test_index_window_and_earliest_original():
    idx = duplicates.PhotoIndex()
    h = [0x0F0F_1234_5678_9ABC] + [0x0F0F_1234_5678_9ABC ^ 0xFF] * 8
    idx.add("C1", 100.0, h)
    idx.add("C2", 200.0, h)
    assert idx.search(h, LIMIT).key == "C1"
    assert idx.search(h, LIMIT, since=150.0).key == "C2"
    assert idx.search(h, LIMIT, since=250.0) is None


def test_index_built_from_records_skips_what_it_cannot_read():
    f = facts(jpeg(scene(4)))
    docs = [{"id": "C1", "time": 10, "phash": hashing.hex64(f.phash),
             "phash_crops": [hashing.hex64(h) for h in f.hashes[1:]]},
            {"id": "C2", "time": 11, "phash": "not hex"},
            {"id": "C3", "time": 12}]
    idx = duplicates.build_index(docs, 0.0)
    assert len(idx) == 1
    assert idx.search(facts(cropped(jpeg(scene(4)), 0.05, 0, 0, 0.05)).hashes, LIMIT).key == "C1"


# --- places ---------------------------------------------------------------------------

def test_wgs84_to_gcj02_matches_the_published_transform():
    lat, lng = geo.wgs84_to_gcj02(31.1774276, 121.5272106)  # Shanghai
    assert (lat, lng) == pytest.approx((31.17530398364597, 121.531541859215), abs=1e-9)
    assert geo.wgs84_to_gcj02(48.8584, 2.2945) == (48.8584, 2.2945)  # outside China: unchanged


def test_circle_fence():
    fence = Geofence(lat=39.9087, lng=116.3975, radius_m=300)
    assert geo.check_fence(fence, 39.9100, 116.3990).inside
    far = geo.check_fence(fence, 39.9200, 116.3975)
    assert not far.inside and far.from_centre_m == pytest.approx(1256, rel=0.01)


def test_concave_polygon_fence():
    # An L-shaped grid: the notch at the top right is outside.
    poly = [(30.000, 120.000), (30.000, 120.010), (30.005, 120.010), (30.005, 120.005),
            (30.010, 120.005), (30.010, 120.000)]
    fence = Geofence(polygon=poly)
    assert geo.check_fence(fence, 30.002, 120.008).inside
    assert geo.check_fence(fence, 30.008, 120.002).inside
    assert not geo.check_fence(fence, 30.008, 120.008).inside
    assert not geo.check_fence(fence, 29.999, 120.005).inside


def test_distance_m():
    # One degree of latitude is about 111.2 km.
    assert geo.distance_m(30, 120, 31, 120) == pytest.approx(111_195, rel=1e-3)


# --- media ----------------------------------------------------------------------------

def test_huge_or_broken_bytes_are_refused_before_decoding():
    from tests.support.photo_samples import png_claiming
    ok = jpeg(scene(1))
    for bad in (b"", b"not an image at all", ok[: len(ok) // 2], png_claiming(8000, 8000),
                png_claiming(100_000, 100_000), ok + b"\x00" * (20 * 1024 * 1024)):
        with pytest.raises(files.PhotoError):
            files.inspect(bad)


def test_thumbnail_is_small_and_upright():
    img = scene(8, (1600, 1200))
    thumb = Image.open(io.BytesIO(files.make_thumbnail(jpeg(img.transpose(Image.Transpose.ROTATE_90), orientation=6))))
    assert max(thumb.size) == 480 and thumb.width > thumb.height
