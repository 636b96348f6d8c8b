"""The monthly bulletin folds its months from records streamed past it, week by week.

What people receive must not change with that: the grid groups' texts, every leader's bulletin,
the cells of every ledger sheet and the chart's lines for a generated street (20 grids, 60
people, September to November 2026, about 16,000 records) are compared with what the version
that held every record produced (kept in data/month_golden.json). And the records are not held:
a store whose documents count themselves shows how many were alive at once.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
from datetime import date, datetime
from pathlib import Path

import openpyxl
import pytest

from bench.bench_monthly import generate, leave_docs, monthly_config, problems
from bot.store import Store
from bot.store_view import StoreView
from schedules.month_chart import series
from schedules.month_data import collect_month
from schedules.monthly import build_month
from schedules.weekdata import scope_grid_ids

from tests.support.month_october import TZ

GOLDEN = Path(__file__).parent / "data" / "month_golden.json"
MONTHS = ("2026-09", "2026-10", "2026-11")
# The month complete (the job's run on 12月1日), and a month still running (an export mid-month).
CASES = {"complete": ("2026-11", datetime(2026, 12, 1, 9, 0, tzinfo=TZ)),
         "running": ("2026-11", datetime(2026, 11, 18, 15, 0, tzinfo=TZ))}


@pytest.fixture
async def street(tmp_path):
    cfg = monthly_config(tmp_path, 20, 3)
    rng = random.Random(23)
    records = [e for m in MONTHS for e in generate(cfg, m, rng)]
    leave = leave_docs(cfg, rng, 6)
    store = Store(cfg.data_path)
    store.load()
    await store.start()
    await store.put_many(records)
    await store.put_many(problems(cfg, rng, 80) + leave)
    await store.close()
    # As the running bot holds it: recent weeks in memory, older ones read from their files.
    store = Store(cfg.data_path)
    store.load(today=date(2026, 12, 1))
    await store.start()
    yield cfg, store
    await store.close()


def _cell(v):
    return v.isoformat() if isinstance(v, (date, datetime)) else v


def _sheets(data: bytes) -> dict:
    """Each sheet's row count and a digest of every cell (the golden file stays small)."""
    book = openpyxl.load_workbook(io.BytesIO(data))
    out = {}
    for ws in book.worksheets:
        rows = [[_cell(v) for v in r] for r in ws.iter_rows(values_only=True)]
        out[ws.title] = {"rows": len(rows), "header": rows[0] if rows else [],
                         "sha256": hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode()).hexdigest()}
    return out


def received(cfg, store, month: str, at: datetime) -> dict:
    """Everything the job sends for the month, as comparable data."""
    texts, built = build_month(cfg, store, month, at, list(cfg.grids), cfg.people_with_role("leader"))
    data = collect_month(cfg, store, month, as_of=at)
    out: dict = {"texts": [list(t) for t in texts], "bulletins": {}, "ledgers": {}, "charts": {}}
    for scope, (bulletin, _png, ledger) in sorted(built.items()):
        key = "、".join(scope) or "street"
        out["bulletins"][key] = bulletin
        out["ledgers"][key] = {f.filename: _sheets(f.data) for f in ledger}
        ids = scope_grid_ids(cfg, list(scope)) if scope else None
        months, lines = series(cfg, data, data.grid_list(ids))
        out["charts"][key] = {"months": months, "lines": [list(ln) for ln in lines]}
    return json.loads(json.dumps(out, ensure_ascii=False, default=str))


@pytest.mark.parametrize("case", sorted(CASES))
async def test_what_people_receive_is_what_the_bulletin_said_before_it_streamed(street, case):
    cfg, store = street
    month, at = CASES[case]
    got = received(cfg, store.snapshot(), month, at)
    want = json.loads(GOLDEN.read_text(encoding="utf-8"))[case]
    assert got["texts"] == want["texts"]
    assert got["bulletins"] == want["bulletins"]
    assert got["charts"] == want["charts"]
    assert got["ledgers"] == want["ledgers"]


class Counted(dict):
    """A record that counts how many of its kind are alive (freed by reference counting)."""
    alive = peak = made = 0

    def __init__(self, doc: dict):
        super().__init__(doc)
        Counted.alive += 1
        Counted.made += 1
        Counted.peak = max(Counted.peak, Counted.alive)

    def __del__(self):
        Counted.alive -= 1


class CountingView(StoreView):
    """The job's snapshot, handing out week records that count themselves (main's long-lived
    tables, problems and leave, are the bulletin's to keep)."""

    def docs(self, table, shards=None):
        for d in super().docs(table, shards):
            yield d if table in ("problems", "leave") else Counted(d)

    def read_passing(self, shard, table):
        for d in super().read_passing(shard, table):
            yield Counted(d)


async def test_the_months_are_folded_without_holding_their_records(street):
    cfg, store = street
    view = store.snapshot()
    view.__class__ = CountingView
    Counted.alive = Counted.peak = Counted.made = 0
    data = collect_month(cfg, view, "2026-11", as_of=CASES["complete"][1])
    # Three months of reports and check-ins were read (the chart's year, the month before)...
    assert Counted.made > 15_000
    assert sum(g.reports for g in data.grids.values()) > 4_000
    # ...a few at a time: the month is in its totals and points, not in its records.
    assert Counted.peak <= 3
    assert Counted.alive == 0
