"""The store under faults a real server meets: a crash in the middle of a checkpoint, a journal
segment the kernel refuses to create. After each, a restart finds every acknowledged change."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import date

from bot.store import Store

CRASH_MID_CHECKPOINT = textwrap.dedent("""
    import asyncio, os, signal, sys
    from datetime import date
    from bot.store import Store

    async def main():
        s = Store(sys.argv[1])
        s.load(today=date(2026, 11, 25))
        await s.start()
        s._flusher.cancel()
        await s.put_many([("reports", {"id": f"R{i}", "text": "清理小广告3处"}, "2026-W48") for i in range(1, 201)])
        await s.put("problems", {"id": "P1", "status": "open"})
        real_replace = os.replace
        def crash(src, dst):
            # Power cut: the temp file is written and fsynced, the rename never happens.
            os.kill(os.getpid(), signal.SIGKILL)
        os.replace = crash
        await s.checkpoint()

    asyncio.run(main())
""")


def temp_files(db):
    return sorted(p.name for p in db.rglob(".*.tmp"))


async def test_temp_files_of_a_checkpoint_cut_by_a_crash_are_removed_at_start(tmp_path):
    run = subprocess.run([sys.executable, "-c", CRASH_MID_CHECKPOINT, str(tmp_path)], capture_output=True,
                         text=True, timeout=30)
    assert run.returncode == -9, run.stderr
    db = tmp_path / "db"
    assert temp_files(db), "the crash should have left a checkpoint's temp file"

    reader = Store(tmp_path, readonly=True)  # `gridbot stats` beside a bot mid-checkpoint:
    reader.load(today=date(2026, 11, 25))     # its temp files are not the reader's to remove
    assert temp_files(db)

    s = Store(tmp_path)
    s.load(today=date(2026, 11, 25))
    assert temp_files(db) == []
    assert {d["id"] for d in s.docs("reports", ["2026-W48"])} == {f"R{i}" for i in range(1, 201)}
    assert s.get("problems", "P1")["status"] == "open"
    await s.start()
    await s.close()
    for f in db.rglob("*.json"):
        json.loads(f.read_text())
    assert temp_files(db) == []


def refuse_new_segments_once(monkeypatch, folder):
    """The kernel refuses to create the next journal segment once (ENOSPC: no inodes left),
    whichever way the journal opens it; every other file opens as usual."""
    import builtins
    import errno
    import os
    from pathlib import Path
    refused = []
    real_open, real_os_open = builtins.open, os.open

    def is_new_segment(path, creating: bool) -> bool:
        p = Path(os.fspath(path)) if isinstance(path, (str, bytes, os.PathLike)) else None
        return (creating and not refused and p is not None and p.parent == folder
                and p.suffix == ".log" and not p.exists())

    def fake_open(file, mode="r", *args, **kw):
        if is_new_segment(file, any(c in mode for c in "awx")):
            refused.append(file)
            raise OSError(errno.ENOSPC, "No space left on device", str(file))
        return real_open(file, mode, *args, **kw)

    def fake_os_open(path, flags, *args, **kw):
        if is_new_segment(path, bool(flags & os.O_CREAT)):
            refused.append(path)
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_os_open(path, flags, *args, **kw)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(os, "open", fake_os_open)
    return refused


async def test_a_refused_journal_rotation_loses_nothing(tmp_path, monkeypatch):
    import pytest
    s = Store(tmp_path, flush_interval=3600)  # checkpoints happen when this test says
    s.load(today=date(2026, 11, 25))
    await s.start()
    await s.put("reports", {"id": "R1"}, shard="2026-W48")
    await s.checkpoint()
    await s.put("reports", {"id": "R2"}, shard="2026-W48")

    refused = refuse_new_segments_once(monkeypatch, s.journal_dir)
    with pytest.raises(OSError):
        await s.checkpoint()  # the next segment cannot be created: this checkpoint fails, loudly
    assert refused
    # Messages keep being acknowledged at once, into the segment that is still open.
    await s.put("reports", {"id": "R3"}, shard="2026-W48")
    monkeypatch.undo()  # the inodes are back
    await s.put("reports", {"id": "R4"}, shard="2026-W48")
    await s.checkpoint()  # the rotation is simply tried again
    await s.put("reports", {"id": "R5"}, shard="2026-W48")
    await s.checkpoint()
    await s.put("reports", {"id": "R6"}, shard="2026-W48")

    # kill -9 now: nothing closed, only what is on disk counts.
    r = Store(tmp_path, readonly=True)
    r.load(today=date(2026, 11, 25))
    assert sorted(d["id"] for d in r.docs("reports", ["2026-W48"])) == [f"R{i}" for i in range(1, 7)]
    s._flusher.cancel()


async def test_stopping_while_the_disk_refuses_a_checkpoint_keeps_everything(tmp_path, monkeypatch):
    s = Store(tmp_path, flush_interval=3600)
    s.load(today=date(2026, 11, 25))
    await s.start()
    await s.put("reports", {"id": "R1"}, shard="2026-W48")
    refuse_new_segments_once(monkeypatch, s.journal_dir)
    await s.close()  # the last checkpoint fails: the stop still finishes, the journal keeps R1
    monkeypatch.undo()
    r = Store(tmp_path)
    r.load(today=date(2026, 11, 25))
    assert r.get("reports", "R1") is not None
