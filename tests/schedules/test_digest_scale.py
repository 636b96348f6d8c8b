"""The digest for many leaders (a district has a hundred community secretaries): each leader's
digest and ledger hold exactly their own grids' problems, in the order they were registered,
while the week's problems are sorted out by grid once, not once per leader or per ledger row."""

from __future__ import annotations

import io
from datetime import datetime, time

import openpyxl

from bot.config_loading import load_config
from bot.store import Store
from schedules.digest import build_digest
from schedules.ledger import ledger_from_data
from schedules.weekdata import collect_week, scope_grid_ids
from tests.conftest import TZ
from tests.support.digest_week import MON, WEEK, rows
from tests.support.factories import many_grids, write_config

COMMUNITIES, GRIDS = 12, 3
AFTER = datetime(2026, 11, 30, 8, 30, tzinfo=TZ)


def config(tmp_path):
    return load_config(write_config(tmp_path, many_grids(COMMUNITIES, GRIDS)))


async def test_every_leader_gets_exactly_their_own_problems_in_order(tmp_path):
    cfg = config(tmp_path)
    grids = [g.id for g in cfg.grids if g.community]
    store = Store(cfg.data_path)
    store.load(today=MON)
    await store.start()
    # Registered round the district, so each community's problems are spread through the list;
    # every third one already closed, every other one past its deadline.
    start = datetime.combine(MON, time(9), TZ).timestamp()
    problems = []
    for n in range(len(grids) * 4):
        g = grids[(n * 7) % len(grids)]
        p = {"id": f"P{n + 1}", "grid": g, "text": f"{g}楼道堆放杂物{n}", "status": "open", "reporter": f"{g}p0",
             "opened_at": start + n * 600, "deadline": start + n * 600 + (3600 if n % 2 else 9 * 86400)}
        if n % 3 == 0:
            p.update(status="closed", closed_at=start + n * 600 + 1800, closed_by=f"{g}p0")
        problems.append(("problems", p, "main"))
    await store.put_many(problems)
    data = collect_week(cfg, store, WEEK, AFTER)

    for c in range(1, COMMUNITIES + 1):
        ids = scope_grid_ids(cfg, [f"c{c}"])
        digest = build_digest(cfg, None, WEEK, ids, scope=[f"c{c}"], data=data)
        mine = [p for _, p, _ in problems if p["grid"] in ids]
        still_open = sorted((p for p in mine if p["status"] != "closed"), key=lambda p: (p["deadline"], p["id"]))
        assert digest["open_problems"] == [p["id"] for p in still_open]
        assert digest["closed_problems"] == [p["id"] for p in mine if p["status"] == "closed"]
        assert digest["overdue"] == [p["id"] for p in still_open if p["deadline"] < AFTER.timestamp()]

        wb = openpyxl.load_workbook(io.BytesIO(ledger_from_data(cfg, data, ids, [f"c{c}"])))
        assert [r["编号"] for r in rows(wb["问题台账"])] == [p["id"] for p in mine]  # as registered
        summary = {r["网格"]: r for r in rows(wb["汇总"]) if r["层级"] == "网格"}
        for g in cfg.grids:
            if g.id in ids:
                theirs = [p for p in mine if p["grid"] == g.id]
                assert summary[g.name]["新增问题"] == len(theirs)
                assert summary[g.name]["待整改"] == sum(1 for p in theirs if p["status"] != "closed")
        total = next(r for r in rows(wb["汇总"]) if r["层级"] == "合计")
        assert total["新增问题"] == len(mine) and total["销号问题"] == sum(1 for p in mine if p["status"] == "closed")

    street = build_digest(cfg, None, WEEK, None, data=data)
    assert len(street["open_problems"]) == sum(1 for _, p, _ in problems if p["status"] != "closed")
    await store.close()
