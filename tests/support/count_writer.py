"""One of two processes writing the same reports and check-ins at once, for the counts test
(tests/bot/test_pg_counts.py): `python -m tests.support.count_writer DSN FOLDER SEED N`.

Each round replaces one of a few shared documents with a version of its own choosing (withdrawn
or active, unconfirmed or not, more or fewer items, in last week or this one), so the two
processes keep replacing each other's versions and moving them between weeks."""

from __future__ import annotations

import asyncio
import random
import sys
from datetime import date
from pathlib import Path

from bot.store_pg import PgStore

WEEKS = ("2026-W47", "2026-W48")
KEYS = [f"R{i}" for i in range(1, 9)] + [f"C{i}" for i in range(1, 9)]


def version(key: str, rng: random.Random) -> dict:
    grid = rng.choice(("g1", "g2"))
    if key.startswith("C"):
        return {"id": key, "userid": "lisi", "grid": grid, "counted": rng.random() < 0.7,
                "flags": ["duplicate"] if rng.random() < 0.3 else []}
    return {"id": key, "userid": "lisi", "grid": grid, "status": rng.choice(("active", "active", "withdrawn")),
            "unconfirmed": rng.random() < 0.3, "items": [{"category": "ads", "quantity": 1, "unit": "处"}] *
            rng.randint(0, 3)}


async def write(dsn: str, folder: Path, seed: int, n: int) -> None:
    rng = random.Random(seed)
    store = PgStore(folder, dsn)
    store.load(today=date(2026, 11, 25))
    await store.start()
    try:
        for _ in range(n):
            keys = rng.sample(KEYS, 2)
            await store.put_many([("checkins" if k.startswith("C") else "reports", version(k, rng), rng.choice(WEEKS))
                                  for k in keys])
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(write(sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))
