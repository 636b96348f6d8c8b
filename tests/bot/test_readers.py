"""Readers beside the bot (`gridbot stats`, `export`, `jobs`): a read-only Store loaded while a bot
process writes and checkpoints must hold every record confirmed before the load began, every
time, however the load and the checkpoints interleave."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import date

from bot.store import Store

WRITER = textwrap.dedent("""
    import asyncio, os, sys
    from datetime import date
    from bot.store import Store

    async def main():
        s = Store(sys.argv[1], flush_interval=3600)
        s.load(today=date(2026, 11, 25))
        await s.start()
        confirmed = open(sys.argv[2], "a", buffering=1)
        n, until = 0, asyncio.get_running_loop().time() + float(sys.argv[3])
        while asyncio.get_running_loop().time() < until:
            batch = [("reports", {"id": f"R{n + i}", "text": "清理小广告3处" * 20}, "2026-W48") for i in range(1, 6)]
            await s.put_many(batch)  # durable: from here on a reader must see them
            n += 5
            confirmed.write(f"{n}\\n")
            if n % 20 == 0:
                await s.checkpoint()  # shards rewritten, the journal segments they cover deleted
        await s.close()

    asyncio.run(main())
""")


def confirmed_so_far(path) -> int:
    try:
        lines = path.read_text().split("\n")
    except FileNotFoundError:
        return 0
    done = [line for line in lines[:-1] if line]  # the last line may be half-written
    return int(done[-1]) if done else 0


def test_a_reader_beside_a_checkpointing_bot_sees_every_confirmed_record(tmp_path):
    confirmed = tmp_path / "confirmed.txt"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(confirmed), "4"],
                              stderr=subprocess.PIPE, text=True)
    loads, short = 0, []
    try:
        while writer.poll() is None:
            n = confirmed_so_far(confirmed)
            reader = Store(tmp_path, readonly=True)
            reader.load(recent_weeks=None, today=date(2026, 11, 25))
            have = {d["id"] for d in reader.docs("reports")}
            missing = [f"R{i}" for i in range(1, n + 1) if f"R{i}" not in have]
            loads += 1
            if missing:
                short.append(len(missing))
    finally:
        if writer.poll() is None:
            writer.kill()
        _, err = writer.communicate(timeout=30)
    assert writer.returncode == 0, err
    assert loads >= 20, f"only {loads} loads: the test did not exercise the reader"
    assert short == [], f"{len(short)} of {loads} loads missed confirmed records (up to {max(short)})"
    final = Store(tmp_path, readonly=True)
    final.load(recent_weeks=None, today=date(2026, 11, 25))
    assert len(list(final.docs("reports"))) == confirmed_so_far(confirmed)
