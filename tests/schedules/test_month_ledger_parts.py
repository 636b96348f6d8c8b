"""The month's ledger over WeCom's file cap (shrunk here): the summary sheets in the first file,
个人积分 and 积分明细 in parts by community, every entry exactly once; the leader told why."""

from __future__ import annotations

import io
from datetime import datetime

import openpyxl

from bot import outgoing
from bot.scheduler import run_job
from schedules.month_data import collect_month
from schedules.month_ledger import month_ledger, month_ledger_files

from tests.support.digest_week import rows
from tests.support import month_october
from tests.support.month_october import MONTH, TZ, after, entries

# The month's shared fixtures, bound here so pytest finds them in this module.
cfg, config_path, store = month_october.cfg, month_october.config_path, month_october.store

SUNDAY_NOV_1 = datetime(2026, 11, 1, 9, 0, tzinfo=TZ)  # the first workday after October


def open_xlsx(data: bytes) -> openpyxl.Workbook:
    return openpyxl.load_workbook(io.BytesIO(data))


async def test_the_months_ledger_in_parts_holds_every_entry_once(cfg, store, monkeypatch):
    data = collect_month(cfg, store, MONTH, as_of=after(1))
    whole = month_ledger(cfg, data)
    monkeypatch.setitem(outgoing.MEDIA_LIMITS, "file", len(whole) - 1)
    files = month_ledger_files(cfg, data)
    assert [f.filename for f in files] == ["测试街道2026年10月工作台账(汇总).xlsx",
                                           "测试街道2026年10月工作台账(明细 1／2:幸福社区).xlsx",
                                           "测试街道2026年10月工作台账(明细 2／2:和平社区).xlsx"]
    assert all(len(f.data) < len(whole) for f in files)
    books = [open_xlsx(f.data) for f in files]
    assert books[0].sheetnames == ["汇总", "目标与覆盖", "红黑榜", "迎检每日"]
    assert all(b.sheetnames == ["个人积分", "积分明细"] for b in books[1:])
    full = open_xlsx(whole)
    assert rows(books[0]["汇总"]) == rows(full["汇总"])
    parts = [r for b in books[1:] for r in rows(b["积分明细"])]
    assert sorted(map(repr, parts)) == sorted(map(repr, rows(full["积分明细"])))
    assert sorted(r["姓名"] for b in books[1:] for r in rows(b["个人积分"])) == \
        sorted(r["姓名"] for r in rows(full["个人积分"]))


async def test_the_bulletin_job_sends_the_parts_and_says_why(harness, monkeypatch):
    await harness.store.put_many(entries())
    cfg = harness.bot.config
    whole = month_ledger(cfg, collect_month(cfg, harness.store, MONTH, as_of=SUNDAY_NOV_1))
    monkeypatch.setitem(outgoing.MEDIA_LIMITS, "file", cap := len(whole) - 1)
    result = await run_job(harness.bot, "月通报", "monthly_bulletin", at=SUNDAY_NOV_1)
    await harness.settle()
    assert result == "2026年10月工作通报已发送给 2 个网格群和 2 位领导"
    sent = [e for e in harness.emulator.sent("app_message") if e["to"] == ["qian"]]
    assert [e["msgtype"] for e in sent if e["msgtype"] != "markdown"] == ["image", "text", "file", "file", "file"]
    files = [e["filename"] for e in sent if e["msgtype"] == "file"]
    assert files[0] == "测试街道2026年10月工作台账(汇总).xlsx"
    texts = [e["content"] for e in sent if e["msgtype"] == "text"]
    assert texts == [f"2026年10月工作台账数据量较大,超过企业微信单个文件 {round(cap / 1e3)}KB 的上限,已拆分为 3 个文件发送:"
                     "第 1 个为汇总表,其余 2 个为按社区拆分的明细。请一并查收。"]
