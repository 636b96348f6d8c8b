"""Evidence checks for photo check-ins: perceptual hashes, EXIF, the duplicate index, geofences.

Fingerprint. imagehash's 64-bit pHash of the upright picture, after trimming black or white bars
(a screenshot of a forwarded photo shows it letterboxed), plus the pHashes of eight fixed crops of
it (CROPS). pHash alone survives re-encoding and resizing but not cropping: 5 % off each edge
moves it by about 10 bits. Two photos match when the whole-picture hash of either is within the
configured distance of any hash of the other; a copy cropped by up to 5 % on any edges is then
caught (tests/test_photos.py measures it), and unrelated photos stay far apart.

Index. Multi-index hashing (Norouzi, Punjani & Fleet, 2012): each hash is cut into four 16-bit
bands; two hashes within distance d differ in at most d // 4 bits on some band (pigeonhole), so a
query probes, per band, only the buckets within d // 4 bits of its own band and checks what it
finds there, instead of every stored photo. Buckets are sorted numpy arrays, compact for a million
entries, plus a short list of recent additions that is merged in now and then.

Places. WeCom location messages and Chinese maps use GCJ-02 coordinates while cameras write
WGS-84 into EXIF; the two differ by up to ~700 m in China, so EXIF GPS is converted before it is
compared with a grid's geofence (which is read as GCJ-02, like everything people pick on a map).
"""

from __future__ import annotations

import asyncio
import math
import re
from array import array
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Any, Iterable, Sequence

import imagehash
import numpy as np
from PIL import Image, ImageOps

from bot import media
from bot.clock import iso_week, week_bounds
from bot.config import Geofence

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
BANDS = 4
BAND_BITS = 16
MAX_PROBE_RADIUS = 3  # from distance 16 on, probing costs more than scanning
MERGE_AT = 1024  # recent additions are scanned directly until there are this many (or 1/32 of the rest)
REBUILD_AFTER = 14 * 86400  # drop photos older than the window at most this late
SUPPORT_SLACK = 2  # see match_distance
SUPPORT_MIN = 5


# --- fingerprints ---------------------------------------------------------------------

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


def analyze(data: bytes, tz: tzinfo) -> PhotoFacts:
    """Fingerprint, capture time and GPS of untrusted bytes (run it in a thread)."""
    img = media.open_lazy(data)
    exif_time, gps = read_exif(img, tz)
    return PhotoFacts(fingerprint(img), exif_time, gps)


def fingerprint(img: Image.Image) -> tuple[int, ...]:
    try:
        img.draft("L", (NORM_PX * 2, NORM_PX * 2))  # JPEG: decode at reduced scale
        img = ImageOps.exif_transpose(img) or img
        gray = img.convert("L")
    except (OSError, SyntaxError, ValueError, TypeError, IndexError, EOFError) as e:
        raise media.PhotoError(type(e).__name__) from None
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


# --- EXIF -----------------------------------------------------------------------------

EXIF_IFD = 0x8769
GPS_IFD = 0x8825
DATETIME = 306
DATETIME_ORIGINAL = 36867
DATETIME_DIGITIZED = 36868
OFFSET_TIME_ORIGINAL = 36881
_EXIF_TIME = re.compile(r"(\d{4})[:\-](\d{2})[:\-](\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_OFFSET = re.compile(r"([+-])(\d{2}):?(\d{2})")


def read_exif(img: Image.Image, tz: tzinfo) -> tuple[datetime | None, tuple[float, float] | None]:
    """Capture time and GPS position; (None, None) when absent or unreadable, never an error."""
    try:
        exif = img.getexif()
        sub = exif.get_ifd(EXIF_IFD)
        raw = sub.get(DATETIME_ORIGINAL) or sub.get(DATETIME_DIGITIZED) or exif.get(DATETIME)
        when = parse_exif_time(raw, sub.get(OFFSET_TIME_ORIGINAL), tz)
    except Exception:  # malformed EXIF comes in every shape; a check-in must not fail on it
        when = None
        exif = None
    try:
        gps = parse_gps(exif.get_ifd(GPS_IFD)) if exif is not None else None
    except Exception:
        gps = None
    return when, gps


def _text(v: Any) -> str:
    if isinstance(v, bytes):
        v = v.decode("ascii", "ignore")
    return v if isinstance(v, str) else ""


def parse_exif_time(raw: Any, offset: Any, tz: tzinfo) -> datetime | None:
    m = _EXIF_TIME.search(_text(raw))
    if not m:
        return None
    try:
        naive = datetime(*(int(g) for g in m.groups()))
    except ValueError:
        return None
    if naive.year < 2001:  # a camera whose clock was reset: the time says nothing
        return None
    zone: tzinfo = tz
    om = _OFFSET.fullmatch(_text(offset).strip())
    if om:
        mins = int(om.group(2)) * 60 + int(om.group(3))
        zone = timezone(timedelta(minutes=-mins if om.group(1) == "-" else mins))
    return naive.replace(tzinfo=zone).astimezone(tz)


def _degrees(v: Any) -> float:
    parts = [float(x) for x in v]
    while len(parts) < 3:
        parts.append(0.0)
    return parts[0] + parts[1] / 60 + parts[2] / 3600


def parse_gps(gps: dict) -> tuple[float, float] | None:
    if not gps or 2 not in gps or 4 not in gps:
        return None
    lat, lng = _degrees(gps[2]), _degrees(gps[4])
    if _text(gps.get(1)).upper().startswith("S"):
        lat = -lat
    if _text(gps.get(3)).upper().startswith("W"):
        lng = -lng
    if not (math.isfinite(lat) and math.isfinite(lng)) or abs(lat) > 90 or abs(lng) > 180:
        return None
    if lat == 0 and lng == 0:  # "no fix" written as zeros
        return None
    return round(lat, 6), round(lng, 6)


# --- places ---------------------------------------------------------------------------

EARTH_RADIUS_M = 6_371_008.8


def distance_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def in_polygon(lat: float, lng: float, polygon: Sequence[Sequence[float]]) -> bool:
    """Ray casting on (lng, lat) as plane coordinates: exact enough for a grid's few hundred metres."""
    inside = False
    n = len(polygon)
    for i in range(n):
        (ay, ax), (by, bx) = polygon[i], polygon[(i + 1) % n]
        if (ay > lat) != (by > lat):
            x = ax + (lat - ay) * (bx - ax) / (by - ay)
            if lng < x:
                inside = not inside
    return inside


@dataclass(frozen=True)
class FenceResult:
    inside: bool
    from_centre_m: float | None  # for a circular fence


def check_fence(fence: Geofence, lat: float, lng: float) -> FenceResult:
    """Inside the polygon or the circle (either one counts when both are configured)."""
    inside, dist, judged = False, None, False
    if fence.polygon and len(fence.polygon) >= 3:
        judged = True
        inside = in_polygon(lat, lng, fence.polygon)
    if None not in (fence.lat, fence.lng, fence.radius_m):
        judged = True
        dist = distance_m(fence.lat, fence.lng, lat, lng)  # type: ignore[arg-type]
        inside = inside or dist <= fence.radius_m  # type: ignore[operator]
    return FenceResult(inside or not judged, dist)


_GCJ_A = 6378245.0
_GCJ_EE = 0.00669342162296594323


def _out_of_china(lat: float, lng: float) -> bool:
    return not (72.004 <= lng <= 137.8347 and 0.8293 <= lat <= 55.8271)


def _gcj_dlat(x: float, y: float) -> float:
    r = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    r += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    r += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    r += (160.0 * math.sin(y / 12.0 * math.pi) + 320.0 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    return r


def _gcj_dlng(x: float, y: float) -> float:
    r = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    r += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    r += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    r += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    return r


def wgs84_to_gcj02(lat: float, lng: float) -> tuple[float, float]:
    """The published GCJ-02 transform; identity outside China, where the offset does not apply."""
    if _out_of_china(lat, lng):
        return lat, lng
    dlat = _gcj_dlat(lng - 105.0, lat - 35.0)
    dlng = _gcj_dlng(lng - 105.0, lat - 35.0)
    rad = lat / 180.0 * math.pi
    magic = 1 - _GCJ_EE * math.sin(rad) ** 2
    sq = math.sqrt(magic)
    dlat = (dlat * 180.0) / ((_GCJ_A * (1 - _GCJ_EE)) / (magic * sq) * math.pi)
    dlng = (dlng * 180.0) / (_GCJ_A / sq * math.cos(rad) * math.pi)
    return lat + dlat, lng + dlng


# --- the duplicate index --------------------------------------------------------------

if hasattr(np, "bitwise_count"):
    def _popcount(x: np.ndarray) -> np.ndarray:
        return np.bitwise_count(x)
else:  # numpy < 2.0
    _POP8 = np.array([bin(i).count("1") for i in range(256)], np.uint8)

    def _popcount(x: np.ndarray) -> np.ndarray:
        b = np.ascontiguousarray(x, dtype=np.uint64).view(np.uint8)
        return _POP8[b].reshape(-1, 8).sum(axis=1)

_MASKS: dict[int, np.ndarray] = {}


def _probe_masks(r: int) -> np.ndarray:
    """All BAND_BITS-bit masks with at most r bits set."""
    if r not in _MASKS:
        _MASKS[r] = np.array([m for m in range(1 << BAND_BITS) if m.bit_count() <= r], np.uint16)
    return _MASKS[r]


_EMPTY_I = np.empty(0, np.int64)


class HashTable:
    """Multi-index over (64-bit hash, owner) entries: which entries lie within distance d of a hash."""

    def __init__(self) -> None:
        self.hashes = np.empty(0, np.uint64)
        self.owners = np.empty(0, np.uint32)
        self._bands: list[tuple[np.ndarray, np.ndarray]] = []
        self._new_hashes: list[int] = []
        self._new_owners: list[int] = []
        self._new_arrays: tuple[np.ndarray, np.ndarray] | None = None
        self.checked = 0  # entries compared so far (benchmark, tests)

    def __len__(self) -> int:
        return len(self.hashes) + len(self._new_hashes)

    def stage(self, h: int, owner: int) -> None:
        """Add without merging (bulk loads merge once at the end)."""
        self._new_hashes.append(h)
        self._new_owners.append(owner)
        self._new_arrays = None

    def add(self, h: int, owner: int) -> None:
        self.stage(h, owner)
        # Re-sorting costs time in proportion to the whole table: do it rarely when it is big.
        if len(self._new_hashes) >= max(MERGE_AT, len(self.hashes) // 32):
            self.merge()

    def merge(self) -> None:
        if not self._new_hashes:
            return
        self.hashes = np.concatenate([self.hashes, np.array(self._new_hashes, np.uint64)])
        self.owners = np.concatenate([self.owners, np.array(self._new_owners, np.uint32)])
        self._new_hashes, self._new_owners = [], []
        self._new_arrays = None
        self._bands = []
        for j in range(BANDS):
            vals = ((self.hashes >> np.uint64(BAND_BITS * j)) & np.uint64(0xFFFF)).astype(np.uint16)
            order = np.argsort(vals, kind="stable").astype(np.uint32)
            self._bands.append((vals[order], order))

    def near(self, q: int, d: int) -> tuple[np.ndarray, np.ndarray]:
        """(owners, distances) of the entries within distance d of q (an owner may repeat)."""
        qq = np.uint64(q)
        r = d // BANDS
        if r > MAX_PROBE_RADIUS:
            cand: np.ndarray = np.arange(len(self.hashes))
        else:
            masks = _probe_masks(r)
            parts = []
            for j, (vals, order) in enumerate(self._bands):
                probes = np.uint16((q >> (BAND_BITS * j)) & 0xFFFF) ^ masks
                lo = np.searchsorted(vals, probes, "left")
                hi = np.searchsorted(vals, probes, "right")
                for a, b in zip(lo.tolist(), hi.tolist()):
                    if b > a:
                        parts.append(order[a:b])
            cand = np.concatenate(parts) if parts else _EMPTY_I
        dist = _popcount(self.hashes[cand] ^ qq)
        keep = dist <= d
        owners, dists = self.owners[cand][keep], dist[keep]
        checked = len(cand)
        if self._new_hashes:
            if self._new_arrays is None:
                self._new_arrays = (np.array(self._new_hashes, np.uint64), np.array(self._new_owners, np.uint32))
            new_h, new_o = self._new_arrays
            nd = _popcount(new_h ^ qq)
            nk = nd <= d
            owners = np.concatenate([owners, new_o[nk]])
            dists = np.concatenate([dists, nd[nk]])
            checked += len(self._new_hashes)
        self.checked += checked
        return owners, dists


@dataclass(frozen=True)
class Match:
    key: str  # the earlier check-in's id
    distance: int
    time: float


class PhotoIndex:
    """Fingerprints of stored photos: whole-picture hashes and crop hashes in two tables.

    A query's whole hash is looked up in both; its crop hashes only among whole hashes, as the
    matching rule says (crop against crop would only add false alarms).
    """

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.times = array("d")
        self._flat = array("Q")  # every photo's hashes, one after another
        self._start = array("Q")
        self.whole = HashTable()
        self.crops = HashTable()
        self.covers_from = 0.0  # photos from this time on are all in the index
        self.last_candidates = 0  # hashes compared by the last search (benchmark, tests)

    def __len__(self) -> int:
        return len(self.keys)

    def _own(self, key: str, time: float, hashes: Sequence[int]) -> int:
        owner = len(self.keys)
        self.keys.append(key)
        self.times.append(float(time))
        self._start.append(len(self._flat))
        self._flat.extend(hashes)
        return owner

    def hashes_of(self, owner: int) -> Sequence[int]:
        end = self._start[owner + 1] if owner + 1 < len(self._start) else len(self._flat)
        return self._flat[self._start[owner]:end]

    def add(self, key: str, time: float, hashes: Sequence[int]) -> None:
        owner = self._own(key, time, hashes)
        self.whole.add(hashes[0], owner)
        for h in hashes[1:]:
            self.crops.add(h, owner)

    def add_many(self, items: Iterable[tuple[str, float, Sequence[int]]]) -> None:
        """Bulk load: one merge at the end instead of one per MERGE_AT additions."""
        for key, t, hashes in items:
            owner = self._own(key, t, hashes)
            self.whole.stage(hashes[0], owner)
            for h in hashes[1:]:
                self.crops.stage(h, owner)
        self.whole.merge()
        self.crops.merge()

    def search(self, hashes: Sequence[int], max_distance: int, since: float | None = None) -> Match | None:
        """The earliest stored photo (at or after `since`) that matches, else None."""
        before = self.whole.checked + self.crops.checked
        found = [self.whole.near(hashes[0], max_distance), self.crops.near(hashes[0], max_distance)]
        found += [self.whole.near(h, max_distance) for h in hashes[1:]]
        owners = {o for got, _d in found for o in got.tolist()}
        self.last_candidates = self.whole.checked + self.crops.checked - before
        best: tuple[float, int, int] | None = None
        for o in owners:
            t = self.times[o]
            if since is not None and t < since:
                continue
            d = match_distance(hashes, self.hashes_of(o), max_distance)
            if d is not None and (best is None or (t, d, o) < best):
                best = (t, d, o)
        if best is None:
            return None
        return Match(self.keys[best[2]], best[1], best[0])


def linear_search(entries: Sequence[tuple[str, float, Sequence[int]]], hashes: Sequence[int],
                  max_distance: int, since: float | None = None) -> Match | None:
    """The same rule by comparing with every stored photo: the baseline and the tests' reference."""
    best = None
    for key, t, stored in entries:
        if since is not None and t < since:
            continue
        d = match_distance(hashes, stored, max_distance)
        if d is not None and (best is None or (t, d) < (best.time, best.distance)):
            best = Match(key, d, t)
    return best


def stored_hashes(doc: dict) -> list[int] | None:
    """The fingerprint a check-in record carries (phash, phash_crops), or None."""
    try:
        whole = int(doc["phash"], 16)
        return [whole] + [int(h, 16) for h in doc.get("phash_crops") or []]
    except (KeyError, TypeError, ValueError):
        return None


def build_index(docs: Iterable[dict], covers_from: float) -> PhotoIndex:
    idx = PhotoIndex()
    items = []
    for d in docs:
        hs = stored_hashes(d)
        if hs is not None:
            items.append((d["id"], float(d.get("time") or 0), hs))
    items.sort(key=lambda it: it[1])
    idx.add_many(items)
    idx.covers_from = covers_from
    return idx


def photo_lock(bot: Any) -> asyncio.Lock:
    """One check-in at a time between "search the index" and "add to it", so two people sending
    the same photo at once do not both count."""
    return bot.locks["photos"]


async def photo_index(bot: Any, now: datetime) -> PhotoIndex:
    """The index on the Bot, built lazily from the store's check-ins of the duplicate window."""
    days = bot.config.checkin.duplicate_days
    cutoff = now - timedelta(days=days)
    idx: PhotoIndex | None = bot.photo_index
    cutoff_ts = cutoff.timestamp()
    if idx is None or cutoff_ts < idx.covers_from or cutoff_ts - idx.covers_from > REBUILD_AFTER:
        first_week = iso_week(cutoff.date())
        monday: date = week_bounds(first_week)[0]
        covers_from = datetime.combine(monday, datetime.min.time(), now.tzinfo).timestamp()
        store = bot.store
        docs = [c for s in store.shards() if s >= first_week for c in store.docs("checkins", [s])]
        idx = await asyncio.to_thread(build_index, docs, covers_from)
        bot.photo_index = idx
    return idx
