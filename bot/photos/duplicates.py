"""The duplicate index: which stored check-in photo a new one matches, without comparing it with all.

Multi-index hashing (Norouzi, Punjani & Fleet, 2012): each hash is cut into four 16-bit bands;
two hashes within distance d differ in at most d // 4 bits on some band (pigeonhole), so a query
probes, per band, only the buckets within d // 4 bits of its own band and checks what it finds
there, instead of every stored photo. Buckets are sorted numpy arrays, compact for a million
entries, plus a short list of recent additions that is merged in now and then. The matching rule
itself is bot.photos.hashing.match_distance.
"""

from __future__ import annotations

import asyncio
from array import array
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Iterable, Sequence

import numpy as np

from bot.clock import iso_week, week_bounds
from bot.photos.hashing import match_distance
from bot.checkin_digest import CheckinFacts
from bot.store_digest import facts_of_sources

BANDS = 4
BAND_BITS = 16
MAX_PROBE_RADIUS = 3  # from distance 16 on, probing costs more than scanning
MERGE_AT = 1024  # recent additions are scanned directly until there are this many (or 1/32 of the rest)
REBUILD_AFTER = 14 * 86400  # drop photos older than the window at most this late


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
    name: str = ""  # whose it was: the check-in itself may be in a week not held in memory


class PhotoIndex:
    """Fingerprints of stored photos: whole-picture hashes and crop hashes in two tables.

    A query's whole hash is looked up in both; its crop hashes only among whole hashes, as the
    matching rule says (crop against crop would only add false alarms).
    """

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.names: list[str] = []  # shared strings: a person's name is one object for all their photos
        self._same: dict[str, str] = {}
        self.times = array("d")
        self._flat = array("Q")  # every photo's hashes, one after another
        self._start = array("Q")
        self.whole = HashTable()
        self.crops = HashTable()
        self.covers_from = 0.0  # photos from this time on are all in the index
        self.seen = 0  # on PostgreSQL: the last row of photo_prints held (bot.photos.pg_fingerprints)
        self.last_candidates = 0  # hashes compared by the last search (benchmark, tests)

    def __len__(self) -> int:
        return len(self.keys)

    def _own(self, key: str, time: float, hashes: Sequence[int], name: str = "") -> int:
        owner = len(self.keys)
        self.keys.append(key)
        self.names.append(self._same.setdefault(name, name))
        self.times.append(float(time))
        self._start.append(len(self._flat))
        self._flat.extend(hashes)
        return owner

    def hashes_of(self, owner: int) -> Sequence[int]:
        end = self._start[owner + 1] if owner + 1 < len(self._start) else len(self._flat)
        return self._flat[self._start[owner]:end]

    def add(self, key: str, time: float, hashes: Sequence[int], name: str = "") -> None:
        owner = self._own(key, time, hashes, name)
        self.whole.add(hashes[0], owner)
        for h in hashes[1:]:
            self.crops.add(h, owner)

    def add_many(self, items: Iterable[tuple]) -> None:
        """Bulk load of (key, time, hashes[, name]): one merge at the end instead of one per
        MERGE_AT additions."""
        for key, t, hashes, *name in items:
            owner = self._own(key, t, hashes, name[0] if name else "")
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
        return Match(self.keys[best[2]], best[1], best[0], self.names[best[2]])


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
            items.append((d["id"], float(d.get("time") or 0), hs, d.get("name") or ""))
    items.sort(key=lambda it: it[1])
    idx.add_many(items)
    idx.covers_from = covers_from
    return idx


def build_index_of_facts(facts: Iterable[CheckinFacts], covers_from: float) -> PhotoIndex:
    """build_index over shards' facts, column by column (a district's 90 days are 1.5 million
    check-ins: no dict is made per check-in)."""
    items = []
    for f in facts:
        c = f.columns
        for key, t, whole, crops, name in zip(c["id"], c["time"], c["phash"], c["phash_crops"], c["name"]):
            try:
                hs = [int(whole, 16)] + [int(h, 16) for h in crops or ()]
            except (TypeError, ValueError):
                continue  # no fingerprint (as stored_hashes)
            items.append((key, float(t or 0), hs, name or ""))
    items.sort(key=lambda it: it[1])
    idx = PhotoIndex()
    idx.add_many(items)
    idx.covers_from = covers_from
    return idx


def photo_lock(bot: Any) -> asyncio.Lock:
    """One check-in at a time between "search the index" and "add to it", so two people sending
    the same photo at once do not both count."""
    return bot.locks["photos"]


def due_window(idx: PhotoIndex | None, now: datetime, days: int) -> float | None:
    """Where a new index must start (the Monday of the window's first week), or None while `idx`
    still covers the window."""
    cutoff_ts = (now - timedelta(days=days)).timestamp()
    if idx is not None and idx.covers_from <= cutoff_ts <= idx.covers_from + REBUILD_AFTER:
        return None
    monday: date = week_bounds(iso_week((now - timedelta(days=days)).date()))[0]
    return datetime.combine(monday, datetime.min.time(), now.tzinfo).timestamp()


async def photo_index(bot: Any, now: datetime) -> PhotoIndex:
    """The index on the Bot, built lazily from the store's check-ins of the duplicate window."""
    covers_from = due_window(bot.photo_index, now, bot.config.checkin.duplicate_days)
    if covers_from is not None:
        first_week = iso_week(datetime.fromtimestamp(covers_from, now.tzinfo).date())
        store = bot.store
        # Older weeks' documents are not in memory: their fingerprints come from the shards'
        # digests, read in the thread with the building.
        sources = store.checkin_sources([s for s in store.shards() if s >= first_week])

        def build() -> PhotoIndex:
            facts = facts_of_sources(sources, write=not store.readonly)
            return build_index_of_facts(facts, covers_from)
        bot.photo_index = await asyncio.to_thread(build)
    return bot.photo_index
