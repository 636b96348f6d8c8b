"""A grid's ledger rows are built once per digest, whichever ledgers hold the grid, and a ledger
built from rows another ledger built first is the ledger built alone, cell by cell. Every ledger of
a week has the same columns and links its photos into the one archive `gridbot export` writes."""

from __future__ import annotations

import io
from collections import Counter
from datetime import datetime

import openpyxl

from bot.scheduler import run_job
from schedules import ledger_rows
from schedules.archive import week_photos
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

    def counting(cfg, g, *rest):
        built[g.id] += 1
        return real(cfg, g, *rest)
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
    street_rows = [row for row in cells(street)["明细"] if row[4][0] == "1号网格"]
    assert alone["明细"][1:] == street_rows  # g1's reports, cell for cell, in either ledger
    assert alone["明细"][0] == cells(street)["明细"][0]  # the week's columns in both


async def test_every_ledger_links_its_photos_into_the_archive_export_writes(cfg, store):
    """The community secretary's ledger links its photos into the week's one archive (the street's,
    which `gridbot export` writes), not into a folder of its own that nothing ever wrote."""
    data = collect_week(cfg, store, WEEK, as_of=MONDAY_AFTER)
    archived = {arc for _, arc in week_photos(cfg, data)}
    xingfu = cells(ledger_from_data(cfg, data, ["g1"], ["xingfu"]))
    links = [row[10] for row in xingfu["打卡"][1:] if row[10][0]]
    assert links and all(target in archived for _, target in links)
    assert links[0][1].startswith("测试街道2026年第48周照片归档/1号网格/")
    assert links[0][0] == links[0][1].split("/", 1)[1]  # the cell reads the path inside the archive
