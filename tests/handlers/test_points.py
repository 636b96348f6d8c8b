"""我的积分 and 积分规则 through the emulator's callback, on the hand-computed October of
tests/support/month_october.py."""

from __future__ import annotations

from datetime import datetime

from tests.support.month_october import config_path  # noqa: F401  (the harness runs with October's config)
from tests.support.month_october import TZ, entries


async def test_my_points_answers_with_the_month_every_rule_and_the_ranks(harness):
    await harness.store.put_many(entries())
    harness.clock.set(datetime(2026, 10, 31, 18, 0, tzinfo=TZ))
    await harness.text("lisi", "我的积分")
    assert harness.last_reply("lisi") == (
        "【我的积分 10月】截至10月31日 18:00\n"
        "共 20 分 · 1号网格第2/3名 · 全街道第2/5名\n"
        "· 打卡 18天 +18分\n"
        "· 有效上报 3条 +3分\n"
        "· 发现问题 1项 +2分\n"
        "· 重复或旧照片 1张 -3分\n"
        "1号网格人均 16 分,全街道网格第1/2名\n"
        "每一分都对应一条记录(月度台账“积分明细”表可查);发送“积分规则”查看计分办法。")


async def test_last_month_a_named_month_and_a_month_not_yet_begun(harness):
    await harness.store.put_many(entries())
    harness.clock.set(datetime(2026, 11, 2, 9, 0, tzinfo=TZ))
    await harness.text("wangwu", "上月积分")
    reply = harness.last_reply("wangwu")
    assert reply.startswith("【我的积分 10月】全月\n共 7 分 · 1号网格第3/3名 · 全街道第5/5名\n")
    assert "· 数量不实 1条 -2分" in reply
    await harness.text("sunqi", "我的积分 9月")
    assert harness.last_reply("sunqi").startswith("【我的积分 9月】全月\n共 1 分 · 2号网格第2/2名")
    await harness.text("zhouba", "我的积分")
    assert harness.last_reply("zhouba") == ("【我的积分 11月】截至11月2日 09:00\n本月还没有积分记录。拍照打卡、上报工作、"
                                           "登记和整改问题都会计分,发送“积分规则”查看计分办法。")
    await harness.text("zhouba", "我的积分 13月")
    assert harness.last_reply("zhouba").startswith("月份写得不对")


async def test_a_leader_outside_the_grids_sees_the_grids_they_oversee(harness):
    await harness.store.put_many(entries())
    harness.clock.set(datetime(2026, 11, 2, 9, 0, tzinfo=TZ))
    await harness.text("zhoushuji", "10月积分")
    assert harness.last_reply("zhoushuji") == (
        "【网格积分 10月】全月\n个人积分只计网格员和网格长;以下是各网格的人均积分(全街道排名):\n· 第1名 1号网格 人均16分")


async def test_the_rules_are_the_configured_weights(harness):
    await harness.text("lisi", "积分规则")
    reply = harness.last_reply("lisi")
    assert reply.startswith("【积分规则】积分由系统根据每条记录自动计算,不能手工填写:\n")
    assert "· 打卡:每个应打卡的工作日有效打卡一次(请假、休息日不计),+1分" in reply
    assert "· 问题逾期:问题超过整改期限每满一天(计入所在网格),-1分" in reply
    assert "· 数量不实:上报数量超出常规,经网格长等核查后更正或撤回(本人主动更正不扣分),-2分" in reply
    await harness.text("lisi", "积分怎么查")  # not a command: the hint says which one
    assert harness.last_reply("lisi") == "查看本月积分和排名请发送“我的积分”,计分办法请发送“积分规则”。"
