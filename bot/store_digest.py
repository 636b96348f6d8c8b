"""The Store's window of weeks (which tables a start reads, which are held, which are read in a
thread right after start) and its older weeks of check-ins, answered from their digests, not
their documents.

Part of the Store class (a mixin, split from bot.store to keep each readable). Check-in shards
before last week are not loaded at start; what the day index needs of them (who checked in on a
day, in which grid) comes from the shard's digest (bot.checkin_digest) when a job first asks
(Store.ensure), and the photo index reads their fingerprints the same way, in a thread. Their
documents are still read from disk, and kept until the next checkpoint lets them go, when
something asks for the documents themselves (docs, get, docs_by).
"""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from pathlib import Path
from typing import Callable, Iterable

from loguru import logger

from bot.clock import iso_week, week_bounds
from bot.day_index import CheckinAggregates, checkin_aggregates, sums_of
from bot.checkin_digest import TABLE, CheckinFacts, digest_is_fresh, facts_of_shard
from bot.store_build import INDEXED, RECENT_BY_TABLE, START_BY_TABLE, WEEK_SHARD, BuiltTable, build_table
from bot.store_cold import COLD
from bot.store_reads import MAIN

SUMS_AT_ONCE = 500  # days of a grid summed per turn of the warm-up thread
# Weeks back the day index keeps older check-ins for: the streaks' 60 days, and a little more.
LIGHT_WEEKS = 10


class StoreDigests:
    # --- the window of weeks --------------------------------------------------------
    def _read_start_window(self) -> None:
        """With the tables each shard holds known (`_files`): note them all as not read yet,
        then read those a start reads (START_BY_TABLE) before the bot answers."""
        self._unloaded = {}
        for shard, tables in self._files.items():
            for table in tables - COLD:
                self._unloaded.setdefault(table, set()).add(shard)
        for shard in sorted(self._files):
            for table in sorted(self._files[shard] - COLD):
                if self._in_window(shard, table, START_BY_TABLE):
                    self._ensure(shard, table)

    def _in_window(self, shard: str, table: str, by_table: dict[str, int]) -> bool:
        """Whether a table is read at start (START_BY_TABLE) or held after it (RECENT_BY_TABLE)."""
        window = self._window(table, by_table)
        return shard == MAIN or window is None or shard >= iso_week(self._today - timedelta(weeks=window))

    def _window(self, table: str, by_table: dict[str, int] = RECENT_BY_TABLE) -> int | None:
        """Weeks back (besides this one) a table is kept in memory (read at start, with
        START_BY_TABLE): None for all."""
        if self._keep_weeks is None:
            return None
        return min(self._keep_weeks, by_table.get(table, RECENT_BY_TABLE.get(table, self._keep_weeks)))

    # --- older weeks of check-ins ----------------------------------------------------
    def ensure(self, shard: str, table: str) -> None:
        """Make the day index answer for a shard's table: older weeks of check-ins from their
        digest (their documents stay on disk), anything else by reading the shard."""
        if (shard, table) in self._loaded or table not in self._files.get(shard, ()):
            return
        if table == TABLE and WEEK_SHARD.match(shard):
            if (shard, table) not in self._light:
                self._ensure_light(shard)
            return
        self._ensure(shard, table)

    def has(self, table: str, key: str, shard: str) -> bool:
        if table == TABLE and (shard, table) not in self._loaded and table in self._files.get(shard, ()):
            self._ensure(shard, table)  # the question is about a document: ensure() would not read it
        return super().has(table, key, shard)

    async def warmed(self) -> None:
        """Wait until what start-up reads in the background (last week, older weeks' digests)
        is in (tests, benchmarks)."""
        if self._digester:
            await asyncio.shield(self._digester)

    async def _warm_all(self) -> None:
        await self._warm_recent()
        await self.warm_up()
        await self._warm_sums()

    async def _warm_sums(self) -> None:
        """The day index's sums of each grid's reports by day, worked out in a thread: asked
        first by the morning reminder (every grid's week), they were a district's whole week
        of reports summed on the loop, seconds of late callbacks."""
        pending = self.days.unsummed()
        for start in range(0, len(pending), SUMS_AT_ONCE):
            if self._stopping:
                return
            chunk = pending[start:start + SUMS_AT_ONCE]
            sums = await asyncio.to_thread(lambda: [sums_of(docs) for _, _, docs in chunk])
            for (day, version, _), (totals, units) in zip(chunk, sums):
                day.adopt(version, totals, units)

    async def warm_up(self) -> None:
        """After start, off the loop: the day index's older weeks (the first streak job after a
        restart would otherwise read them on the loop, a district's nine weeks in 1.6 s), then
        the digests an upgraded data folder lacks (for the photo index)."""
        weeks = [s for s in self._files if WEEK_SHARD.match(s)]
        if not weeks:
            return
        horizon = iso_week(week_bounds(max(weeks))[0] - timedelta(weeks=LIGHT_WEEKS))
        write = not self.readonly
        for shard in sorted(weeks, reverse=True):
            if self._stopping or shard < horizon:
                break
            if (shard, TABLE) in self._loaded or (shard, TABLE) in self._light or TABLE not in self._files[shard]:
                continue
            try:
                built = await asyncio.to_thread(_aggregates_of, self.db_dir / shard, shard, write)
            except Exception as e:  # read again, and reported with its file, when a job asks
                logger.warning("could not read the check-ins of {} ahead: {}", self.db_dir / shard, e)
                continue
            # Read meanwhile (a job asked, or a late check-in was stored there): that one stands.
            if (shard, TABLE) not in self._loaded and (shard, TABLE) not in self._light:
                self.days.adopt(shard, built)
                self._light.add((shard, TABLE))
                self.digest_reads += 1
        if write and not self._stopping:
            await asyncio.to_thread(make_digests, self.missing_digests(), lambda: self._stopping)

    async def _warm_recent(self) -> None:
        """This week's check-ins and last week's tables, not read before the bot answers:
        built in a thread now, newest first, adopted on the loop (unless something read them
        meanwhile)."""
        if self._keep_weeks is None or not self._today:
            return
        wanted = []
        for table, keep in RECENT_BY_TABLE.items():
            first = iso_week(self._today - timedelta(weeks=min(keep, self._keep_weeks)))
            wanted += [(s, table) for s in self._files if WEEK_SHARD.match(s) and s >= first]
        for shard, table in sorted(wanted, key=lambda st: (st[0], st[1] == "checkins"), reverse=True):
            if self._stopping or (shard, table) in self._loaded or table not in self._files[shard]:
                continue
            built, seen = await self._build_later(shard, table)
            if (shard, table) not in self._loaded:
                self._parts(shard).adopt(table, seen)
                self._adopt(shard, table, built)

    def _build_apart(self, shard: str, table: str) -> tuple[BuiltTable, dict]:
        """A shard's table read and indexed touching nothing of the Store (in a thread); the
        loop adopts both unless the table was read meanwhile."""
        docs, seen = self._parts(shard).read_apart(table)
        return build_table(None, table, shard, INDEXED.get(table, ()), docs=docs), seen

    async def _build_later(self, shard: str, table: str) -> tuple[BuiltTable, dict]:
        """A shard table read and indexed off the loop, with what its parts hold (bot.store_pg
        reads it from the database, and has no parts)."""
        return await asyncio.to_thread(self._build_apart, shard, table)

    def _ensure_light(self, shard: str) -> None:
        facts = facts_of_shard(self.db_dir / shard, write=not self.readonly)
        self.digest_reads += 1
        cols = facts.columns
        self.days.add_checkins(shard, cols["date"], cols["grid"], cols["userid"], cols["counted"])
        self._light.add((shard, TABLE))

    def _drop_light(self, shard: str) -> None:
        """Before a shard's documents are read: their own aggregates replace the digest's."""
        if (shard, TABLE) in self._light:
            self._light.discard((shard, TABLE))
            self.days.drop(shard, TABLE)

    def _let_go_light(self, newest: date) -> None:
        """Weeks beyond any look-back of the day index (streaks: 60 days) leave it."""
        horizon = iso_week(newest - timedelta(weeks=LIGHT_WEEKS))
        for shard, table in sorted(self._light):
            if shard < horizon:
                self._light.discard((shard, table))
                self.days.drop(shard, table)

    def checkin_sources(self, shards: Iterable[str]) -> list[list[dict] | Path]:
        """For the photo index, built in a thread: per shard, its check-ins when in memory
        (the list taken here, on the loop: the table may change under a thread), else its
        folder, whose digest (or file) facts_of_sources reads."""
        out: list[list[dict] | Path] = []
        for s in shards:
            if (s, TABLE) in self._loaded:
                out.append(list(self._shards[s].get(TABLE, {}).values()))
            elif TABLE in self._files.get(s, ()):
                out.append(self.db_dir / s)
        return out

    def missing_digests(self) -> list[Path]:
        """Folders of check-in shards not in memory, newest first: make_digests writes those
        whose digest is missing or stale (a data folder of an earlier version, a shard written
        since)."""
        return [self.db_dir / s for s in sorted(self._files, reverse=True)
                if WEEK_SHARD.match(s) and TABLE in self._files[s] and (s, TABLE) not in self._loaded]


def facts_of_sources(sources: list[list[dict] | Path], write: bool) -> list[CheckinFacts]:
    """What checkin_sources named, as facts (in a thread: files and lists only)."""
    return [CheckinFacts.from_docs(s) if isinstance(s, list) else facts_of_shard(s, write) for s in sources]


def _aggregates_of(folder: Path, shard: str, write: bool) -> CheckinAggregates:
    cols = facts_of_shard(folder, write).columns
    return checkin_aggregates(shard, cols["date"], cols["grid"], cols["userid"], cols["counted"])


def make_digests(folders: list[Path], stop: Callable[[], bool] = lambda: False) -> None:
    """Write the digests checkin_sources will want (the Store's start-up thread)."""
    for folder in folders:
        if stop():
            return
        try:
            if not digest_is_fresh(folder):
                facts_of_shard(folder, write=True)
        except Exception as e:  # a bad shard is reported where it is read; start-up goes on
            logger.warning("could not make the check-in digest of {}: {}", folder, e)
