"""`gridbot export`: the ledger, the chart and the photo archive, written beside the running bot
from a read-only store."""

from __future__ import annotations

import zipfile
from datetime import date, datetime, timedelta

import openpyxl
from PIL import Image

from bot.cli import main as cli_main
from bot.clock import iso_week
from bot.store import Store
from schedules.export_cli import export_command

from tests.support.digest_week import cfg, config_path, store  # noqa: F401  (shared fixtures)
from tests.support.digest_week import TZ, WEEK, d, report, rows, week_entries, write_photos

NOW = datetime(2026, 11, 30, 8, 30, tzinfo=TZ)  # the Monday after the week


async def test_export_command_writes_ledger_chart_and_photo_archive(cfg, store, tmp_path, capsys):
    entries = week_entries()
    made = write_photos(cfg.data_path, entries, skip={"C3"})
    await store.checkpoint()
    # The bot keeps running; the export reads its own read-only copy (shards + journal).
    await store.put("reports", report("R60", "sunqi", d(4), "巡查5次", [("patrol", 5, "次")]), shard=WEEK)
    ro = Store(cfg.data_path, readonly=True)
    ro.load()
    out = tmp_path / "out"
    assert export_command(cfg, ro, "2026-w48", out, now=NOW) == 0
    printed = capsys.readouterr().out
    assert "已导出 2026-W48(11月23日—11月29日)" in printed
    assert "1 张文件缺失" in printed

    xlsx = out / "测试街道2026年第48周工作台账.xlsx"
    png = out / "测试街道2026年第48周工作图表.png"
    archive = out / "测试街道2026年第48周照片归档.zip"
    wb = openpyxl.load_workbook(xlsx)
    assert "R60" in {r["编号"] for r in rows(wb["明细"])}
    assert Image.open(png).format == "PNG"
    with zipfile.ZipFile(archive) as z:
        names = z.namelist()
        assert z.testzip() is None
    stem = "测试街道2026年第48周照片归档"
    assert len(names) == len(made)
    assert all(n.startswith(stem + "/") for n in names)
    assert f"{stem}/1号网格/2026-11-23/2026-11-23_checkin_zhangsan_c1.jpg" in names
    assert f"{stem}/1号网格/2026-11-26/2026-11-26_rectify_zhangsan_bbbbbbbbbbbb.jpg" in names
    assert f"{stem}/2号网格/2026-11-26/2026-11-26_checkin_sunqi_c17.jpg" in names
    assert not any("zhangsan_c3" in n for n in names)  # its file is missing on disk
    # Every photo link in the ledger points into the archive.
    links = {c.hyperlink.target for row in wb["打卡"].iter_rows(min_row=2) for c in row if c.hyperlink}
    assert links and links <= set(names) | {f"{stem}/1号网格/2026-11-25/2026-11-25_checkin_zhangsan_c3.jpg"}


async def test_export_refuses_a_bad_week_and_defaults_to_last_week(cfg, store, tmp_path, capsys):
    ro = Store(cfg.data_path, readonly=True)
    ro.load()
    assert export_command(cfg, ro, "2026-48", tmp_path, now=NOW) == 2
    assert "2026-W48" in capsys.readouterr().err
    capsys.readouterr()
    assert export_command(cfg, ro, None, None, now=NOW) == 0
    out = capsys.readouterr().out
    last = iso_week(NOW.date() - timedelta(days=7))
    monday = date.fromisocalendar(int(last[:4]), int(last[6:]), 1)
    assert out.startswith(f"未指定 --week,导出上周:{last}({monday.month}月{monday.day}日—")
    y, w = last.split("-W")
    assert (cfg.data_path / "exports" / f"测试街道{y}年第{int(w)}周工作台账.xlsx").exists()


async def test_gridbot_export_from_the_command_line(cfg, store, config_path, tmp_path, capsys):
    await store.checkpoint()
    out = tmp_path / "cli"
    assert cli_main(["export", "--config", str(config_path), "--week", WEEK, "--out", str(out)]) == 0
    assert sorted(p.suffix for p in out.iterdir()) == [".png", ".xlsx", ".zip"]
