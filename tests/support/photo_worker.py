"""One bot process's duplicate-photo checks, for the multi-process photo tests:
`python -m tests.support.photo_worker CONFIG USERID NAME ROUNDS GO_DIR`.

It opens the store the config names (PostgreSQL), then for each round prints "ready N", waits
for GO_DIR/N to appear (the test creates it once every worker is ready, so their checks start
together) and checks the round's photo exactly as the check-in handler does
(bot.photos.checks.check_photo), storing the check-in; then prints the verdict as JSON. Round N's
photo is the same in every worker: fingerprints drawn from seed N.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from collections import defaultdict
from datetime import date, datetime
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from bot.config_loading import load_config
from bot.photos.checks import check_photo
from bot.store_choice import store_for

TZ = ZoneInfo("Asia/Shanghai")
SENT = datetime(2026, 11, 25, 9, 30, tzinfo=TZ)


def fingerprint(seed: int) -> tuple[int, ...]:
    rnd = random.Random(seed)
    return tuple(rnd.getrandbits(64) for _ in range(9))


async def main(config: Path, userid: str, name: str, rounds: int, go: Path) -> None:
    cfg = load_config(config)
    store = store_for(cfg)
    store.load(today=date(2026, 11, 25))
    await store.start()
    bot = SimpleNamespace(config=cfg, store=store, photo_index=None, locks=defaultdict(asyncio.Lock))
    try:
        for n in range(rounds):
            print(f"ready {n}", flush=True)
            while not (go / str(n)).exists():
                await asyncio.sleep(0.002)
            sent = SENT.replace(minute=n % 60)
            key = f"{userid}-{n}"
            async with check_photo(bot, sent, fingerprint(n), key=key, userid=userid, name=name,
                                   new_id=lambda: store.next_id("C")) as check:
                doc = {"id": check.checkin, "msgid": key, "userid": userid, "name": name, "grid": "g1",
                       "date": "2026-11-25", "time": int(sent.timestamp()), "counted": check.match is None,
                       "duplicate_of": check.match.key if check.match else None}
                await store.put("checkins", doc, shard="2026-W48")
            print(json.dumps({"round": n, "checkin": check.checkin, "duplicate_of": doc["duplicate_of"]}), flush=True)
    finally:
        await store.close()


if __name__ == "__main__":
    a = sys.argv[1:]
    asyncio.run(main(Path(a[0]), a[1], a[2], int(a[3]), Path(a[4])))
