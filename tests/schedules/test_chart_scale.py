"""Charts for a big street and a district: one bar per grid stops being readable long before a
thousand grids (7,000 bars on a 30-inch figure), so more grids than a chart can show are drawn
by community, and more communities than that as the best and the worst of them."""

from __future__ import annotations

import io
from datetime import date, datetime, time, timedelta

from PIL import Image

from bot.config_loading import load_config
from bot.store import Store
from schedules.chart import MAX_ROWS, chart_rows, render_chart
from schedules.month_chart import render_month_chart, series
from schedules.month_data import collect_month
from schedules.weekdata import collect_week, communities_of, rollup
from tests.conftest import TZ
from tests.support.factories import many_grids, write_config

MON = date(2026, 11, 23)


def district(tmp_path, communities: int, per_community: int):
    """Grids of two people in `communities` communities (besides the test config's two); the
    people of grid k check in on min(k % 6, 5) of the five workdays, so rates differ."""
    return load_config(write_config(tmp_path, many_grids(communities, per_community, people=2)))


async def fill(cfg, weeks: int = 1) -> Store:
    store = Store(cfg.data_path)
    store.load(today=MON)
    await store.start()
    entries = []
    for w in range(weeks):
        monday = MON - timedelta(weeks=w)
        for i, grid in enumerate(cfg.grids):
            for p in cfg.grid_members(grid.id):
                for day in range(min(i % 6, 5)):
                    d = monday + timedelta(days=day)
                    n = len(entries)
                    entries.append(("checkins", {"id": f"C{n}", "userid": p.userid, "name": p.name, "grid": grid.id,
                                                 "date": d.isoformat(), "counted": True, "flags": [],
                                                 "time": int(datetime.combine(d, time(8), TZ).timestamp())},
                                    f"{monday.isocalendar()[0]}-W{monday.isocalendar()[1]:02d}"))
    await store.put_many(entries)
    return store


async def test_a_district_chart_shows_the_best_and_worst_communities(tmp_path):
    cfg = district(tmp_path, communities=100, per_community=10)  # 1,002 grids, 102 communities
    store = await fill(cfg)
    data = collect_week(cfg, store, "2026-W48")
    rows, kind = chart_rows(cfg, data.grid_list())
    assert kind == "社区" and len(rows) == MAX_ROWS + 1
    gap = rows[MAX_ROWS // 2]
    assert gap.gap and gap.name == f"……其余{102 - MAX_ROWS}个社区"
    shown = [r for r in rows if not r.gap]
    rates = [r.rate for r in shown]
    assert rates == sorted(rates, reverse=True)
    # The best and the worst community of all 102.
    every = [rollup(name, grids).rate or 0.0 for _, name, grids in communities_of(cfg, data.grid_list())]
    assert rates[0] == max(every) and rates[-1] == min(every)
    png = render_chart(cfg, data, data.grid_list(), "测试街道第48周工作简报")
    width, height = Image.open(io.BytesIO(png)).size
    assert height < 2500 and width < 2000  # about 20 by 17 inches, not 7,000 rows
    await store.close()


async def test_a_big_street_chart_has_one_row_per_community(tmp_path):
    cfg = district(tmp_path, communities=12, per_community=8)  # 98 grids
    store = await fill(cfg)
    data = collect_week(cfg, store, "2026-W48")
    rows, kind = chart_rows(cfg, data.grid_list())
    assert kind == "社区"
    assert [r.name for r in rows][:3] == ["幸福社区(1个网格)", "和平社区(1个网格)", "第1社区(8个网格)"]
    # Pooled as the digest pools a community: its people's check-in days over expected days.
    first = next(grids for cid, _, grids in communities_of(cfg, data.grid_list()) if cid == "c1")
    assert rows[2].rate == rollup("第1社区", first).rate
    # A community's own chart still has one row per grid.
    rows, kind = chart_rows(cfg, first)
    assert kind == "网格" and len(rows) == 8
    await store.close()


async def test_the_monthly_chart_of_many_communities_draws_the_best_and_worst(tmp_path):
    cfg = district(tmp_path, communities=24, per_community=10)
    store = await fill(cfg, weeks=4)
    data = collect_month(cfg, store, "2026-11", as_of=datetime(2026, 12, 1, 9, tzinfo=TZ))
    _, lines = series(cfg, data, data.grid_list())
    names = [name for name, _, _ in lines]
    assert len(names) == 11 and names[-1] == "合计"
    last = [rates[-1] for _, rates, _ in lines[:-1]]
    assert last == sorted(last, reverse=True)
    # Many lines end on the same rate here: the chart is still drawn, every label in view.
    png = render_month_chart(cfg, data, data.grid_list(), "测试街道2026年11月工作通报")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    await store.close()


def test_a_number_drawn_over_the_chart_lands_on_its_cell():
    """The table's numbers and the rate labels are drawn by Pillow onto the finished image (a
    district's hundred charts spent half their time laying them out as matplotlib texts): each
    must land on its own cell, with the table's rows counted from the top."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from schedules import chart
    chart.configure_fonts()
    fig = Figure(figsize=(4, 2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.1, 0.1, 0.8, 0.8))
    ax.set_xlim(-0.5, 3.5)
    ax.set_ylim(1.5, -0.5)  # as the table: row 0 at the top
    ax.set_axis_off()
    png = chart._finish(fig, [chart._Label(ax.transData, 3, 0, "888", 12, "black", "mm")])
    img = Image.open(io.BytesIO(png)).convert("L")
    dark = [(x, y) for y in range(img.height) for x in range(img.width) if img.getpixel((x, y)) < 128]
    assert dark
    xs, ys = [x for x, _ in dark], [y for _, y in dark]
    # The axes span x 40–360 and y 20–180 (from the top) of 400 × 200 pixels: column 3 of 4 is
    # x 280–360, row 0 of 2 is y 20–100, so the cell's centre is (320, 60).
    assert 280 <= min(xs) and max(xs) <= 360 and 20 <= min(ys) and max(ys) <= 100
    centre = ((min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2)
    assert abs(centre[0] - 320) <= 3 and abs(centre[1] - 60) <= 3
