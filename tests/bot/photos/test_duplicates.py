"""The duplicate index: the same answers as a scan of every photo, from a fraction of the work."""

from __future__ import annotations

import random
from zoneinfo import ZoneInfo

import pytest

from bot.photos.duplicates import PhotoIndex, build_index, linear_search
from bot.photos.hashing import PhotoFacts, analyze, hex64

from tests.support.photo_samples import cropped, jpeg, scene

TZ = ZoneInfo("Asia/Shanghai")
LIMIT = 6  # the default [checkin] duplicate_distance


def facts(data: bytes) -> PhotoFacts:
    return analyze(data, TZ)


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
    idx = PhotoIndex()
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
        want = linear_search(entries, q, distance)
        assert (got and (got.key, got.distance)) == (want and (want.key, want.distance))
        hits += got is not None
    assert hits > 20


def test_index_checks_a_small_fraction_of_what_it_holds():
    entries = random_entries(20_000, seed=1)
    idx = PhotoIndex()
    idx.add_many(entries)
    idx.search(entries[123][2], LIMIT)
    stored = len(entries) * 9
    assert idx.last_candidates < stored / 50


def test_index_window_and_earliest_original():
    idx = PhotoIndex()
    h = [0x0F0F_1234_5678_9ABC] + [0x0F0F_1234_5678_9ABC ^ 0xFF] * 8
    idx.add("C1", 100.0, h)
    idx.add("C2", 200.0, h)
    assert idx.search(h, LIMIT).key == "C1"
    assert idx.search(h, LIMIT, since=150.0).key == "C2"
    assert idx.search(h, LIMIT, since=250.0) is None


def test_index_built_from_records_skips_what_it_cannot_read():
    f = facts(jpeg(scene(4)))
    docs = [{"id": "C1", "time": 10, "phash": hex64(f.phash),
             "phash_crops": [hex64(h) for h in f.hashes[1:]]},
            {"id": "C2", "time": 11, "phash": "not hex"},
            {"id": "C3", "time": 12}]
    idx = build_index(docs, 0.0)
    assert len(idx) == 1
    assert idx.search(facts(cropped(jpeg(scene(4)), 0.05, 0, 0, 0.05)).hashes, LIMIT).key == "C1"
