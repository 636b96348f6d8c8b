"""A ledger over WeCom's file cap (20 MB; shrunk here so a small week is over it): the leader gets
the summary workbook and the details in parts, each within the cap, every row exactly once, told
why; a file over the cap is refused by the transport before anything is uploaded."""

from __future__ import annotations

import io
from datetime import datetime

import openpyxl
import pytest
from loguru import logger

from bot import outgoing
from bot.config_loading import load_config
from bot.scheduler import run_job
from schedules.ledger import build_ledger, ledger_files
from schedules.ledger_parts import file_cap
from schedules.weekdata import collect_week

from tests.support.digest_week import cfg, config_path, store  # noqa: F401  (shared fixtures)
from tests.support.digest_week import CONFIG, TZ, WEEK, d, report, rows, week_entries
from tests.support.factories import write_config
from bot.store_choice import store_for

MONDAY_AFTER = datetime(2026, 11, 30, 8, 30, tzinfo=TZ)
PEOPLE = ["zhangsan", "lisi", "wangwu", "sunqi", "zhouba"]


def busy_week() -> list[tuple[str, dict, str]]:
    """Sixty more reports a person: a week with something to split."""
    out = []
    for k, who in enumerate(PEOPLE):
        for i in range(60):
            text = f"清理小广告{i + 1}处,入户走访{i % 9 + 1}户,{'幸福路沿街商铺门前' * (i % 4 + 1)}"
            out.append(("reports", report(f"R{1000 + 100 * k + i}", who, d(i % 5), text,
                                          [("ads", i + 1, "处"), ("visit", i % 9 + 1, "户")]), WEEK))
    return out


def open_xlsx(data: bytes) -> openpyxl.Workbook:
    return openpyxl.load_workbook(io.BytesIO(data))


async def leader_files(harness, userid: str) -> list[tuple[str, bytes]]:
    sent = [e for e in harness.emulator.sent("app_message") if e["to"] == [userid] and e["msgtype"] == "file"]
    return [(e["filename"], await (await harness.client.get(e["media_url"])).read()) for e in sent]


def leader_texts(harness, userid: str) -> list[str]:
    return [e["content"] for e in harness.emulator.sent("app_message")
            if e["to"] == [userid] and e["msgtype"] == "text"]


async def test_the_street_leader_gets_the_ledger_in_parts_each_within_the_cap(harness, monkeypatch):
    await harness.store.put_many(busy_week())
    cfg = harness.bot.config
    whole = build_ledger(cfg, harness.store, WEEK, now=MONDAY_AFTER)
    xingfu = build_ledger(cfg, harness.store, WEEK, ["g1"], now=MONDAY_AFTER)
    cap = (len(whole) + len(xingfu)) // 2  # over it: the street's ledger; under it: 幸福社区's
    assert len(xingfu) < cap < len(whole)
    monkeypatch.setitem(outgoing.MEDIA_LIMITS, "file", cap)

    result = await run_job(harness.bot, "周一领导周报", "weekly_digest", at=MONDAY_AFTER)
    await harness.settle()
    assert result == "第48周工作简报已发送给 2 位领导"

    files = await leader_files(harness, "qian")
    assert [name for name, _ in files] == [
        "测试街道2026年第48周工作台账(汇总).xlsx",
        "测试街道2026年第48周工作台账(明细 1／2:幸福社区).xlsx",
        "测试街道2026年第48周工作台账(明细 2／2:和平社区).xlsx"]
    assert all(len(data) <= cap for _, data in files)
    note = leader_texts(harness, "qian")
    assert note == ["第48周工作台账数据量较大,超过企业微信单个文件 " + f"{round(cap / 1e3)}KB"
                    + " 的上限,已拆分为 3 个文件发送:第 1 个为汇总表,其余 2 个为按社区拆分的明细。请一并查收。"]

    books = [open_xlsx(data) for _, data in files]
    assert books[0].sheetnames == ["汇总", "问题台账", "人员"]
    assert all(b.sheetnames == ["明细", "打卡"] for b in books[1:])
    # The summary is the whole street's, as in the one-file ledger.
    assert rows(books[0]["汇总"]) == rows(open_xlsx(whole)["汇总"])
    # Every report and check-in exactly once across the parts, each in its community's part.
    full = open_xlsx(whole)
    for sheet in ("明细", "打卡"):
        parts = [r for b in books[1:] for r in rows(b[sheet])]
        assert sorted(r["编号"] for r in parts) == sorted(r["编号"] for r in rows(full[sheet]))
        assert len({r["编号"] for r in parts}) == len(parts)
    assert {r["社区"] for r in rows(books[1]["明细"])} == {"幸福社区"}
    assert {r["社区"] for r in rows(books[2]["明细"])} == {"和平社区"}
    # The columns line up: a part's column sums add up to the street's.
    total = sum(r["小广告清理(处)"] or 0 for b in books[1:] for r in rows(b["明细"]))
    assert total == sum(r["小广告清理(处)"] or 0 for r in rows(full["明细"]))

    # 周书记's community alone fits: one file, named as always, no note.
    assert [name for name, _ in await leader_files(harness, "zhoushuji")] == ["幸福社区2026年第48周工作台账.xlsx"]
    assert leader_texts(harness, "zhoushuji") == []


async def test_a_community_too_big_for_one_part_is_split_by_its_grids(tmp_path, monkeypatch):
    # Both grids in 幸福社区: the community's details do not fit in one file, its grids do.
    cfg = load_config(write_config(tmp_path, base=CONFIG.replace('community = "heping"', 'community = "xingfu"')))
    s = store_for(cfg)
    s.load()
    await s.start()
    try:
        await s.put_many(week_entries() + busy_week())
        data = collect_week(cfg, s, WEEK, as_of=MONDAY_AFTER)
        whole = build_ledger(cfg, s, WEEK, now=MONDAY_AFTER)
        monkeypatch.setitem(outgoing.MEDIA_LIMITS, "file", len(whole) * 2 // 3)
        files = ledger_files(cfg, data)
    finally:
        await s.close()
    assert [f.filename for f in files] == [
        "测试街道2026年第48周工作台账(汇总).xlsx",
        "测试街道2026年第48周工作台账(明细 1／2:幸福社区1号网格).xlsx",
        "测试街道2026年第48周工作台账(明细 2／2:幸福社区2号网格).xlsx"]
    assert all(len(f.data) <= file_cap() for f in files)
    assert {r["网格"] for r in rows(open_xlsx(files[2].data)["明细"])} == {"2号网格"}


async def test_a_ledger_well_over_the_cap_goes_in_parts_without_being_written_whole(cfg, store, monkeypatch):
    """A sample of its details tells the street's ledger is well over the cap: the one-file
    workbook is never written (for a district it is 36 MB of work thrown away), and the leader
    gets the same parts: the summary, then every report once, each file within the cap."""
    await store.put_many(busy_week())
    data = collect_week(cfg, store, WEEK, as_of=MONDAY_AFTER)
    whole = build_ledger(cfg, store, WEEK, now=MONDAY_AFTER)
    cap = len(whole) * 2 // 3  # each community's details fit, both together do not
    monkeypatch.setitem(outgoing.MEDIA_LIMITS, "file", cap)
    from schedules.ledger import _Ledger
    written: list[int] = []
    real = _Ledger.write
    monkeypatch.setattr(_Ledger, "write", lambda self: written.append(1) or real(self))

    files = ledger_files(cfg, data)
    assert written == []
    assert files[0].filename == "测试街道2026年第48周工作台账(汇总).xlsx"
    assert len(files) == 3 and all(len(f.data) <= cap for f in files)
    books = [open_xlsx(f.data) for f in files]
    full = open_xlsx(whole)
    assert rows(books[0]["汇总"]) == rows(full["汇总"])
    parts = [r for b in books[1:] for r in rows(b["明细"])]
    assert sorted(r["编号"] for r in parts) == sorted(r["编号"] for r in rows(full["明细"]))


async def test_a_ledger_that_just_fits_is_one_file_whatever_its_sample_says(cfg, store, monkeypatch):
    """Over the cap by its weight, so its size is guessed from a sample; it fits to the byte, so it
    is written whole and goes as one file, as before."""
    await store.put_many(busy_week())
    data = collect_week(cfg, store, WEEK, as_of=MONDAY_AFTER)
    whole = build_ledger(cfg, store, WEEK, now=MONDAY_AFTER)
    monkeypatch.setitem(outgoing.MEDIA_LIMITS, "file", len(whole))
    files = ledger_files(cfg, data)
    assert [f.filename for f in files] == ["测试街道2026年第48周工作台账.xlsx"]
    assert rows(open_xlsx(files[0].data)["明细"]) == rows(open_xlsx(whole)["明细"])


async def test_a_ledger_within_the_cap_is_one_file(cfg, store):
    data = collect_week(cfg, store, WEEK, as_of=MONDAY_AFTER)
    files = ledger_files(cfg, data)
    assert [f.filename for f in files] == ["测试街道2026年第48周工作台账.xlsx"]
    assert files[0].data == build_ledger(cfg, store, WEEK, now=MONDAY_AFTER)


async def test_a_file_over_the_cap_is_refused_before_any_upload(harness, monkeypatch):
    monkeypatch.setitem(outgoing.MEDIA_LIMITS, "file", 1000)
    errors: list[str] = []
    sink = logger.add(lambda m: errors.append(m.record["message"]), level="ERROR")
    try:
        with pytest.raises(outgoing.MediaTooLarge):
            harness.bot.transport.send_file("zhoushuji", b"x" * 1001, "台账.xlsx")
        harness.bot.transport.send_file("zhoushuji", b"x" * 1000, "小台账.xlsx")  # at the cap: goes
        await harness.settle()
    finally:
        logger.remove(sink)
    assert harness.emulator.calls.get("media/upload", 0) == 1
    assert [name for name, _ in await leader_files(harness, "zhoushuji")] == ["小台账.xlsx"]
    assert errors == ["not sending 台账.xlsx (1,001 bytes): over WeCom's 1,000-byte limit for a file upload"]


async def test_a_part_still_over_the_cap_is_named_to_the_leader(harness, monkeypatch):
    """One grid's week over the cap: nothing smaller to cut by. The leader is told which file did
    not come and how to get it; the job's result says an attachment is missing."""
    await harness.store.put_many(busy_week())
    monkeypatch.setitem(outgoing.MEDIA_LIMITS, "file", 12_000)
    result = await run_job(harness.bot, "周一领导周报", "weekly_digest", at=MONDAY_AFTER)
    await harness.settle()
    assert result == "第48周工作简报已发送给 2 位领导,部分台账文件超过企业微信大小上限未能发送,已告知领导"
    files = await leader_files(harness, "zhoushuji")
    assert all(len(data) <= 12_000 for _, data in files)
    note = leader_texts(harness, "zhoushuji")
    assert len(note) == 1 and "超过企业微信单个文件 12KB 的上限" in note[0]
    assert "未能发送" in note[0] and "gridbot export" in note[0]


async def test_gridbot_export_writes_the_whole_ledger_whatever_the_cap(cfg, store, tmp_path, monkeypatch, capsys):
    """On disk there is no 20 MB cap: the admin's export stays one complete workbook."""
    from schedules.export_cli import export_command
    monkeypatch.setitem(outgoing.MEDIA_LIMITS, "file", 1000)
    ro = store_for(cfg, readonly=True)
    ro.load()
    assert export_command(cfg, ro, WEEK, tmp_path, now=MONDAY_AFTER) == 0
    assert sorted(p.name for p in tmp_path.glob("*.xlsx")) == ["测试街道2026年第48周工作台账.xlsx"]
    wb = openpyxl.load_workbook(tmp_path / "测试街道2026年第48周工作台账.xlsx")
    assert wb.sheetnames == ["汇总", "明细", "打卡", "问题台账", "人员"]
