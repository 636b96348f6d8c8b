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
