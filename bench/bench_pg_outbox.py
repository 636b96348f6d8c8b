"""Sends per second through the outbox: the file outbox (one process) against the shared
PostgreSQL outbox drained by 1 and 2 worker processes, in the same run.

    .venv/bin/python bench/bench_pg_outbox.py [--messages 3000] [--people 300] [--latency 0.02]
                                              [--per-minute 0]

Each run: --messages replies to --people people (ten a person: under WeCom's per-person cap),
added at once as a job would, then sent through the real Transport to a stand-in client whose
every call takes --latency seconds (WeCom's answer time), with the enterprise cap off by default
([transport] api_per_minute = 0: the database still hands out each turn and marks each row);
--per-minute N sets it, and the time then shows whether two drainers together keep to it.
The PostgreSQL server is a throwaway one (tests/support/postgres.py) with fsync on, as in
production. Printed: seconds from the first add to the last send, sends per second, and for the
shared outbox how many each worker sent and whether any message went out twice.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.clock import FakeClock  # noqa: E402
from bot.outbox import Outbox  # noqa: E402
from bot.pg_outbox import PgOutbox  # noqa: E402
from bot.store_pg import PgStore  # noqa: E402
from bot.transport import Transport  # noqa: E402
from tests.support.postgres import PgServer  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")


class Client:
    """What the transport calls, answering after `latency` seconds; counts each message's sends."""

    def __init__(self, latency: float):
        self.latency = latency
        self.sent: Counter = Counter()

    async def message_send(self, users, msgtype, content, key="", duplicate_check=0):
        await asyncio.sleep(self.latency)
        self.sent[content["content"]] += 1


def add_all(transport: Transport, messages: int, people: int) -> None:
    for i in range(messages):
        transport.send_text(f"p{i % people}", f"已记录 #R{i}")


async def file_run(folder: Path, messages: int, people: int, latency: float, per_minute: int) -> tuple[float, Counter]:
    clock = FakeClock(TZ, datetime(2026, 11, 25, 9, 30, tzinfo=TZ))
    outbox = Outbox(folder / "outbox", clock, reply_seconds=3600)
    client = Client(latency)
    tr = Transport(client, lambda g: g, outbox=outbox)  # type: ignore[arg-type]
    tr.pace.configure(per_minute, 0)
    outbox.load()
    await outbox.start()
    start = time.perf_counter()
    add_all(tr, messages, people)
    await tr.flush()
    took = time.perf_counter() - start
    await outbox.close()
    return took, client.sent


async def pg_worker(dsn: str, folder: Path, adds: bool, messages: int, people: int, latency: float,
                    per_minute: int, go, out) -> None:
    clock = FakeClock(TZ, datetime(2026, 11, 25, 9, 30, tzinfo=TZ))
    store = PgStore(folder, dsn)
    store.load(today=clock.today())
    await store.start()
    outbox = PgOutbox(store, clock, reply_seconds=3600)
    client = Client(latency)
    tr = Transport(client, lambda g: g, outbox=outbox)  # type: ignore[arg-type]
    outbox.attach(tr)
    tr.pace.configure(per_minute, 0)
    await outbox.start()
    await asyncio.to_thread(go.wait)
    start = time.perf_counter()
    if adds:
        add_all(tr, messages, people)
    while True:
        await tr.flush()
        left = await store._open().arun(lambda c: c.fetchval("SELECT count(*) FROM outbox WHERE state <> 'sent'"))
        total = await store._open().arun(lambda c: c.fetchval("SELECT count(*) FROM outbox"))
        if total >= messages and left == 0:
            break
        await asyncio.sleep(0.05)
    took = time.perf_counter() - start
    await outbox.close()
    await store.close()
    out.put((took, dict(client.sent)))


def run_worker(*args) -> None:
    asyncio.run(pg_worker(*args))


def pg_run(server: PgServer, folder: Path, drainers: int, messages: int, people: int,
           latency: float, per_minute: int) -> tuple[float, list[Counter]]:
    dsn = server.new_schema()
    ctx = mp.get_context("spawn")
    go, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=run_worker, args=(dsn, folder / f"w{i}", i == 0, messages, people, latency, per_minute, go, out))
             for i in range(drainers)]
    for p in procs:
        p.start()
    time.sleep(3)  # each worker connected and migrated
    go.set()
    results = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    return max(t for t, _ in results), [Counter(s) for _, s in results]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=3000)
    ap.add_argument("--people", type=int, default=300)
    ap.add_argument("--latency", type=float, default=0.02)
    ap.add_argument("--per-minute", type=int, default=0)
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-pg-outbox-"))
    took, sent = asyncio.run(file_run(folder / "file", args.messages, args.people, args.latency,
                                    args.per_minute))
    print(f"file outbox, 1 process:     {took:6.2f} s  {args.messages / took:7.0f} sends/s  "
          f"twice: {sum(1 for n in sent.values() if n > 1)}")
    server = PgServer.start(durable=True)
    try:
        for drainers in (1, 2):
            took, per = pg_run(server, folder / f"pg{drainers}", drainers, args.messages, args.people, args.latency,
                              args.per_minute)
            total = sum(per, Counter())
            print(f"PostgreSQL, {drainers} drainer(s):    {took:6.2f} s  {args.messages / took:7.0f} sends/s  "
                  f"per worker: {[sum(c.values()) for c in per]}  twice: {sum(1 for n in total.values() if n > 1)}  "
                  f"missing: {args.messages - len(total)}")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
