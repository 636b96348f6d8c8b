"""A grid's ledger rows are built once per digest, whichever ledgers hold the grid, and a ledger
built from rows another ledger built first is the ledger built alone, cell by cell."""

from __future__ import annotations

import io
from collections import Counter
from datetime import datetime

import openpyxl

from bot.scheduler import run_job
from schedules import ledger_rows
from schedules.ledger import ledger_from_data
from schedules.weekdata import collect_week

from tests.support.digest_week import cfg, config_path, store  # noqa: F401  (shared fixtures)
from tests.support.digest_week import TZ, WEEK, week_entries

MONDAY_AFTER = datetime(2026, 11, 30, 8, 30, tzinfo=TZ)


def cells(data: bytes) -> dict[str, list[tuple]]:
    """Every sheet's values, with each cell's hyperlink beside it."""
    wb = openpyxl.load_workbook(io.BytesIO(data))
    return {ws.title: [tuple((c.value, c.hyperlink.target if c.hyperlink else None) for c in row)
                       for row in ws.iter_rows()] for ws in wb.worksheets}


async def test_each_grid_rows_are_built_once_for_the_street_and_the_community_ledger(harness, monkeypatch):
    await harness.store.put_many(week_entries())
    built: Counter[str] = Counter()
    real = ledger_rows.grid_rows

    def counting(cfg, g, cname):
        built[g.id] += 1
        return real(cfg, g, cname)
    monkeypatch.setattr(ledger_rows, "grid_rows", counting)

    result = await run_job(harness.bot, "周一领导周报", "weekly_digest", at=MONDAY_AFTER)
    await harness.settle()
    # 钱主任's street ledger holds g1 and g2, 周书记's 幸福社区 ledger g1 again: g1 built once.
    assert result == "第48周工作简报已发送给 2 位领导"
    assert built["g1"] == 1 and built["g2"] == 1
    assert set(built.values()) == {1}


async def test_a_ledger_from_rows_built_for_another_ledger_is_the_ledger_built_alone(cfg, store):
    shared = collect_week(cfg, store, WEEK, as_of=MONDAY_AFTER)
    street = ledger_from_data(cfg, shared)  # builds g1's and g2's rows
    xingfu = ledger_from_data(cfg, shared, ["g1"], ["xingfu"])  # g1's rows reused

    alone = cells(ledger_from_data(cfg, collect_week(cfg, store, WEEK, as_of=MONDAY_AFTER), ["g1"], ["xingfu"]))
    assert cells(xingfu) == alone
    # The photo links point into each ledger's own archive folder, not the one that built the rows.
    photo = next(row[10] for row in alone["打卡"][1:] if row[10][0])
    assert photo[1].startswith("幸福社区2026年第48周照片归档/1号网格/")
    street_photo = next(row[10] for row in cells(street)["打卡"][1:] if row[10][0])
    assert street_photo[1].startswith("测试街道2026年第48周照片归档/1号网格/")
    assert street_photo[0] == photo[0]
