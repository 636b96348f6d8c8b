"""Each week's messages accepted and not yet handled, kept beside its raw messages (bot.store_cold).

At start the inbox replays what was acknowledged and never handled. Finding those from the ids of
every message and every done mark meant reading a district's two weeks of ids, millions of them,
at every start. So each checkpoint that appends to a week's inbox or done marks carries the list
forward in <week>/inbox.open: the messages with no done mark, and the sizes of both logs it
describes. A list whose sizes are not those of the logs now (a crash between the appends and the
list, a data folder of an earlier version) is not trusted: the ids are read as before and the
list is written again. A new week's list is empty with both logs.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Iterable

from bot.journal import dumps, loads
from bot.store_files import atomic_write

if TYPE_CHECKING:
    from bot.store_cold import ColdTables

INBOX, DONE = "inbox", "inbox_done"
OPEN_FILE = "inbox.open"


def _path(cold: "ColdTables", shard: str):
    return cold.db_dir / shard / OPEN_FILE


def _kept(cold: "ColdTables", shard: str, sizes: dict[str, int]) -> set[str] | None:
    """The list, if it describes the logs at these sizes."""
    try:
        data = loads(_path(cold, shard).read_bytes())
    except FileNotFoundError:
        return set() if not any(sizes.values()) else None  # a week that has no message yet
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("sizes") != [sizes[INBOX], sizes[DONE]]:
        return None
    return set(data.get("open", []))


def read_open(cold: "ColdTables", shard: str) -> set[str] | None:
    return _kept(cold, shard, {t: cold.log_size(shard, t) for t in (INBOX, DONE)})


def write_open(cold: "ColdTables", shard: str, sizes: dict[str, int], ids: Iterable[str]) -> None:
    """Keep the list for the logs at these sizes (taken before their ids were read)."""
    os.makedirs(cold.db_dir / shard, exist_ok=True)
    atomic_write(_path(cold, shard), dumps({"sizes": [sizes[INBOX], sizes[DONE]], "open": sorted(ids)}))


def carry_open(cold: "ColdTables", shard: str, appends: dict, sizes: dict) -> None:
    """After a checkpoint's appends to the shard (their sizes before and after): the list grows
    by the new messages and loses those now marked done; dropped if it was not up to date."""
    before = {t: sizes[(shard, t)][0] if (shard, t) in sizes else cold.log_size(shard, t) for t in (INBOX, DONE)}
    after = {t: sizes[(shard, t)][1] if (shard, t) in sizes else before[t] for t in (INBOX, DONE)}
    kept = _kept(cold, shard, before)
    if kept is None:
        _path(cold, shard).unlink(missing_ok=True)
        return
    kept.update(d["id"] for d in appends.get((shard, INBOX), ()))
    kept.difference_update(d["id"] for d in appends.get((shard, DONE), ()))
    write_open(cold, shard, after, kept)
