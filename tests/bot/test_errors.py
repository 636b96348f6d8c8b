"""The one error path: a handler's failure and a job's failure are reported the same way."""

from __future__ import annotations

from datetime import datetime

from bot.features import all_jobs
from bot.replies import INTERNAL_ERROR
from bot.scheduler import run_job
from handlers import reports
from tests.conftest import TZ


async def test_a_failing_handler_answers_politely_and_tells_admins_once_an_hour(harness, monkeypatch):
    async def broken(*args, **kwargs):
        raise RuntimeError("磁盘坏了")
    monkeypatch.setattr(reports, "store_report", broken)
    await harness.text("lisi", "清理小广告15处")
    assert harness.last_reply("lisi") == INTERNAL_ERROR
    notice = "【网格助手】处理李四的文字消息时出错:RuntimeError。详情见日志。"
    assert harness.replies("admin") == [notice]
    harness.clock.advance(minutes=30)
    await harness.text("wangwu", "入户走访3户")
    assert harness.last_reply("wangwu") == INTERNAL_ERROR
    assert harness.replies("admin") == [notice]  # the same kind within the hour: not again
    harness.clock.advance(minutes=31)
    await harness.text("wangwu", "入户走访3户")
    assert len(harness.replies("admin")) == 2


async def test_a_failing_job_goes_down_the_same_path(harness, monkeypatch):
    async def boom(bot, when):
        raise ValueError("数据有误")
    monkeypatch.setitem(all_jobs(), "weekly_tally", boom)
    at = datetime(2026, 11, 30, 9, 0, tzinfo=TZ)
    assert await run_job(harness.bot, "周一网格通报", "weekly_tally", at=at) is None
    assert await run_job(harness.bot, "周一网格通报", "weekly_tally", at=at) is None
    await harness.settle()
    assert harness.replies("admin") == ["【网格助手】定时任务“周一网格通报”运行失败:ValueError。详情见日志。"]
