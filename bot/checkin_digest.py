"""What older weeks of check-ins are still asked for, without their documents.

Check-ins are looked back on for weeks: streaks of misses (60 days: who checked in on a day, in
which grid) and duplicate photos (90 days: every photo's fingerprint, its time and whose it was).
A district's fourteen weeks of check-in documents held as parsed dicts were 2.7 GB of a 5.7 GB
start, and parsing them a quarter of its start-up. So the Store holds documents for this and last
week only, and for older weeks reads these facts: a few columns per check-in, written beside the
shard as <shard>/checkins.digest (JSON columns, a tenth of the shard's size).

A digest names the size and modification time of the shard file it was made from: when the shard
was written since (a late check-in, a downgrade and upgrade, a copy by hand), the digest is stale
and is made again from the shard. A data folder of an earlier version has no digests: they are
made on first use (or by the Store's start-up thread), so an upgrade keeps every answer.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from loguru import logger

from bot.journal import dumps, loads
from bot.store_files import atomic_write
from bot.store_main import read_week_table, week_table_files

TABLE = "checkins"
SUFFIX = ".digest"  # not .json: the Store takes every *.json in a shard folder for a table
VERSION = 1
COLUMNS = ("id", "userid", "grid", "name", "date", "time", "counted", "phash", "phash_crops")


@dataclass
class CheckinFacts:
    """One shard's check-ins, column by column (the same order in every column)."""
    columns: dict[str, list] = field(default_factory=lambda: {c: [] for c in COLUMNS})

    def __len__(self) -> int:
        return len(self.columns["id"])

    @classmethod
    def from_docs(cls, docs: Iterable[dict]) -> "CheckinFacts":
        cols: dict[str, list] = {c: [] for c in COLUMNS}
        for d in docs:
            cols["id"].append(d["id"])
            cols["userid"].append(d.get("userid"))
            cols["grid"].append(d.get("grid"))
            cols["name"].append(d.get("name"))
            cols["date"].append(d.get("date"))
            cols["time"].append(d.get("time"))
            cols["counted"].append(d.get("counted", True))
            cols["phash"].append(d.get("phash"))
            cols["phash_crops"].append(d.get("phash_crops"))
        return cls(cols)

    def rows(self) -> Iterable[dict]:
        """Each check-in as a small dict of these columns (what the day index and the photo
        index read from a check-in document)."""
        cols = [self.columns[c] for c in COLUMNS]
        for values in zip(*cols):
            yield dict(zip(COLUMNS, values))


def digest_path(shard_dir: Path) -> Path:
    return shard_dir / (TABLE + SUFFIX)


def _source(shard_dir: Path) -> list[int] | None:
    """The shard's check-ins as they are on disk: size and time of its file, or of its parts
    (bot.store_main) summed and the newest, so a part rewritten makes the digest stale."""
    try:
        stats = [os.stat(p) for p in week_table_files(shard_dir, TABLE)]
    except FileNotFoundError:  # a part replaced under the look: taken again when next asked
        return None
    if not stats:
        return None
    return [sum(st.st_size for st in stats), max(st.st_mtime_ns for st in stats)]


def read_digest(shard_dir: Path) -> CheckinFacts | None:
    """The shard's digest if it is there, whole and made from the shard file as it is now."""
    try:
        data = loads(digest_path(shard_dir).read_bytes())
    except FileNotFoundError:
        return None
    except ValueError as e:
        logger.warning("{}: unreadable check-in digest, made again from the shard ({})", digest_path(shard_dir), e)
        return None
    if not isinstance(data, dict) or data.get("v") != VERSION or data.get("source") != _source(shard_dir):
        return None
    cols = {c: data.get(c) for c in COLUMNS}
    n = len(cols["id"] or ())
    if any(not isinstance(v, list) or len(v) != n for v in cols.values()):
        return None
    return CheckinFacts(cols)


_HEAD = re.compile(rb'^\{"v":(\d+),"source":\[(\d+),(\d+)\]')


def digest_is_fresh(shard_dir: Path) -> bool:
    """Whether the digest names the shard file as it is now, from its first bytes only (the
    version and source come first), without parsing it."""
    try:
        with open(digest_path(shard_dir), "rb") as f:
            head = f.read(128)
    except FileNotFoundError:
        return False
    m = _HEAD.match(head)
    return bool(m) and int(m.group(1)) == VERSION and [int(m.group(2)), int(m.group(3))] == _source(shard_dir)


def write_digest(shard_dir: Path, facts: CheckinFacts, source: list[int] | None) -> None:
    atomic_write(digest_path(shard_dir), dumps({"v": VERSION, "source": source, **facts.columns}))


def facts_of_shard(shard_dir: Path, write: bool = True) -> CheckinFacts:
    """The facts of a shard's check-ins: from its digest, else from the shard file (then the
    digest is written, when `write`). Reads files only, so it may run in a thread."""
    facts = read_digest(shard_dir)
    if facts is not None:
        return facts
    # The file's identity is taken before it is read: a shard replaced in between leaves a
    # digest naming the older file, which the next read finds stale.
    source = _source(shard_dir)
    facts = CheckinFacts.from_docs(read_week_table(shard_dir, TABLE, keep=False).values())
    if write and source is not None:
        try:
            write_digest(shard_dir, facts, source)
        except OSError as e:  # a full or read-only disk: the facts are right, only not kept
            logger.warning("could not write the check-in digest {}: {}", digest_path(shard_dir), e)
    return facts
