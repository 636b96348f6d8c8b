"""Checking a fix through the real callback: one tap on the card (WeCom's template_card_event,
sent by the emulator with the same encryption as any message) or a few words; pass and the
problem is closed, reject with a reason and it goes back to be fixed (handlers/problem_checks.py)."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from bot.cli import main
from bot.stats import compute_stats

from tests.support.problem_flow import fix_and_pass, photo, register, submit_fix

TZ = ZoneInfo("Asia/Shanghai")


def problem(harness, pid: str = "P1") -> dict:
    return harness.store.get("problems", pid)


def ts(*args) -> int:
    return int(datetime(*args, tzinfo=TZ).timestamp())


# --- one tap ---------------------------------------------------------------------------------------

async def test_one_tap_passes_the_fix_and_closes_the_problem(harness):
    await register(harness, "wangwu", before_seed=1)  # 王五 registers, 李四 fixes, 张三 checks
    harness.clock.advance(hours=30)
    await submit_fix(harness, "P1", "lisi", seed=2)
    harness.clock.advance(minutes=20)
    assert (await harness.tap("zhangsan", "通过"))["ok"]
    p = problem(harness)
    assert p["status"] == "closed" and p["closed_by"] == "zhangsan" and p["fixed_by"] == "lisi"
    assert p["closed_at"] == ts(2026, 11, 26, 15, 50) and p["fixed_at"] == ts(2026, 11, 26, 15, 30)
    assert p["history"][-1]["action"] == "check_passed" and p["history"][-1]["via"] == "card"
    assert len(p["photos_after"]) == 1 and p["closed_without_photo"] is False
    assert harness.last_reply("zhangsan") == "#P1 核查通过,已销号,用时1天6小时。"
    assert harness.last_reply("lisi") == "您提交的 #P1 整改已由张三核查通过,已销号。"
    assert harness.last_reply("wangwu") == "您上报的问题 #P1 已整改完毕,经张三核查后销号。"
    # The card is greyed out with the decision (message/update_template_card with the tap's code).
    assert harness.cards("zhangsan")[-1]["replaced"] == "已通过"


async def test_one_tap_rejects_with_the_reason_picked_and_the_clock_stood_still(harness):
    await register(harness)  # deadline 11月27日 09:30
    harness.clock.advance(hours=20)
    await submit_fix(harness, "P1", "lisi", seed=3)  # 11月26日 05:30
    harness.clock.advance(hours=10)  # the check waited ten hours
    await harness.tap("zhangsan", "驳回", reason="仍有残留")
    p = problem(harness)
    assert p["status"] == "open" and p["rejections"] == 1
    assert p["deadline"] == ts(2026, 11, 27, 19, 30)  # moved on by the ten hours
    last = p["history"][-1]
    assert (last["action"], last["note"], last["by"], last["via"]) == ("check_rejected", "仍有残留", "zhangsan", "card")
    assert harness.last_reply("zhangsan") == "已驳回 #P1(原因:仍有残留),已告知李四重新整改,整改期限为11月27日 19:30。"
    assert harness.last_reply("lisi") == ("【整改被驳回】#P1 幸福路3号楼下堆放建筑垃圾\n张三驳回:仍有残留。\n"
                                          "请重新整改后发送“整改 #P1 已清理”并附整改后照片,整改期限 11月27日 19:30。")
    assert harness.cards("zhangsan")[-1]["replaced"] == "已驳回"
    # The same photo again is no new evidence.
    await harness.text("lisi", "整改 #P1 已清理")
    await harness.image("lisi", photo(3))
    assert harness.last_reply("lisi") == "这张照片与 #P1 此前提交过的整改照片相同,不能证明已经整改。请在整改后的现场重新拍摄。"
    await harness.image("lisi", photo(4))
    assert harness.last_reply("lisi").startswith("已提交 #P1")
    assert len(harness.cards("zhangsan")) == 2


async def test_a_card_for_an_earlier_fix_decides_nothing(harness):
    await register(harness)
    await submit_fix(harness, "P1", "lisi", seed=5)
    await harness.text("zhangsan", "驳回 #P1 照片看不清")  # in words: the first card stays as it was
    await submit_fix(harness, "P1", "lisi", seed=6)
    first, second = harness.cards("zhangsan")
    await harness.tap("zhangsan", "通过", card=first)
    assert harness.last_reply("zhangsan") == "这张卡片是 #P1 此前提交的整改,已有新的整改等待核查,请以最新的卡片为准。"
    assert problem(harness)["status"] == "pending_check" and first["replaced"] == "已失效"
    await harness.tap("zhangsan", "通过", card=second)
    assert problem(harness)["status"] == "closed"


async def test_a_card_tap_replayed_by_wecom_is_applied_once(harness):
    await register(harness)
    await submit_fix(harness, "P1", "lisi")
    card = harness.cards("zhangsan")[-1]
    await harness.tap("zhangsan", "驳回", card=card)
    said = len(harness.replies("zhangsan"))
    # WeCom resends an event it did not see acknowledged: same sender, time, card and button.
    emu = harness.emulator
    xml, _ = emu.build_xml("zhangsan", "event", {"Event": "template_card_event", "EventKey": "review:P1:1:reject",
                                                  "TaskId": card["card"]["task_id"], "CardType": "button_interaction",
                                                  "ResponseCode": "x"}, create_time=int(harness.clock.now().timestamp()))
    params, body = emu.encrypt_callback(xml)
    r = await harness.client.post("/wecom/callback", params=params, data=body.encode())
    assert r.status == 200
    await harness.settle()
    assert problem(harness)["rejections"] == 1
    assert len(harness.replies("zhangsan")) == said  # not even a "no longer waiting" reply


# --- in words --------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["核查 #P1 通过", "#P1 通过", "通过 #P1", "核查通过 #P1", "#P1 验收合格", "销号 #P1"])
async def test_passing_in_words(harness, text):
    await register(harness)
    await submit_fix(harness, "P1", "lisi")
    await harness.text("zhangsan", text)
    assert problem(harness)["status"] == "closed"
    assert problem(harness)["history"][-1]["via"] == "text"


@pytest.mark.parametrize("text, reason", [("驳回 #P1 照片看不清", "照片看不清"), ("#P1 不通过,仍有垃圾", "仍有垃圾"),
                                          ("核查 #P1 不合格 原因:没清干净", "没清干净")])
async def test_rejecting_in_words(harness, text, reason):
    await register(harness)
    await submit_fix(harness, "P1", "lisi")
    await harness.text("zhangsan", text)
    p = problem(harness)
    assert p["status"] == "open" and p["history"][-1]["note"] == reason


async def test_a_rejection_needs_a_reason_and_may_get_a_word_more(harness):
    await register(harness)
    await submit_fix(harness, "P1", "lisi")
    await harness.text("zhangsan", "驳回 #P1")
    assert harness.last_reply("zhangsan") == "请写明驳回原因,例如“驳回 #P1 照片看不清”,整改人会收到原因。"
    assert problem(harness)["status"] == "pending_check"
    await harness.tap("zhangsan", "驳回")  # the drop-down left as it was: its first reason
    assert problem(harness)["history"][-1]["note"] == "未整改到位"
    await harness.text("zhangsan", "驳回 #P1 楼道口还有两袋建筑垃圾")
    assert harness.last_reply("zhangsan") == "已补充 #P1 的驳回说明,已告知整改人。"
    assert harness.last_reply("lisi") == "张三对 #P1 的驳回补充说明:楼道口还有两袋建筑垃圾"
    assert problem(harness)["history"][-1]["action"] == "reject_note"


async def test_who_may_not_decide(harness):
    await register(harness)
    await harness.text("zhangsan", "核查 #P1 通过")
    assert harness.last_reply("zhangsan") == ("#P1 尚未提交整改,暂无可核查的内容。"
                                              "整改完成后由整改人发送“整改 #P1 已清理”并附整改后照片。")
    await submit_fix(harness, "P1", "lisi")
    await harness.text("lisi", "核查 #P1 通过")
    assert harness.last_reply("lisi") == "#P1 是您本人提交的整改,不能由本人核查,请等待网格长张三核查。"
    await harness.text("wangwu", "#P1 通过")
    assert harness.last_reply("wangwu") == "#P1 的整改由网格长张三核查,您不能核查。"
    await harness.text("sunqi", "#P1 通过")  # another grid's leader
    assert harness.last_reply("sunqi") == "#P1 的整改由网格长张三核查,您不能核查。"
    assert problem(harness)["status"] == "pending_check"
    # Above the grid leader, over the grid: the community may decide too.
    await harness.text("zhoushuji", "核查 #P1 通过")
    assert problem(harness)["status"] == "closed" and problem(harness)["closed_by"] == "zhoushuji"
    await harness.tap("zhangsan", "通过")
    assert harness.last_reply("zhangsan") == "#P1 已于11月25日 09:30由周书记销号,无需重复核查。"
    assert harness.cards("zhangsan")[-1]["replaced"] == "已处理"


async def test_a_grid_leader_cannot_pass_his_own_fix(harness):
    await register(harness)
    await submit_fix(harness, "P1", "zhangsan")
    await harness.text("zhangsan", "销号 #P1")
    assert harness.last_reply("zhangsan").startswith("#P1 是您本人提交的整改,不能由本人核查")


# --- the figures -----------------------------------------------------------------------------------

async def test_stats_on_time_late_rejected_median(harness, config_path, capsys):
    await register(harness)  # P1: deadline 11月27日 09:30
    await register(harness, "wangwu", "问题:和平路5号门前乱停车辆")  # P2
    await register(harness, "lisi", "问题:幸福路路灯不亮")  # P3: stays open
    harness.clock.advance(hours=10)
    await fix_and_pass(harness, "P1", seed=21)  # on time, in 10 hours
    await submit_fix(harness, "P2", "wangwu", seed=22)
    await harness.text("zhangsan", "驳回 #P2 车还在")
    harness.clock.advance(hours=40)  # past P2's deadline
    await fix_and_pass(harness, "P2", "wangwu", seed=23)  # late, in 50 hours
    stats = compute_stats(harness.store, harness.bot.config)
    assert {k: v for k, v in stats.items() if k.startswith("problems_")} == {
        "problems_open": 1, "problems_closed": 2, "problems_awaiting_check": 0, "problems_closed_on_time": 1,
        "problems_closed_late": 1, "problems_rejected_fixes": 1, "problems_median_hours_to_close": 30.0,
        "problems_recurrences": 0}
    # The same figures from the command line, read from disk beside the running bot.
    await harness.store.checkpoint()
    capsys.readouterr()
    assert main(["stats", "--json", "--config", str(config_path)]) == 0
    assert json.loads(capsys.readouterr().out)["problems_closed_late"] == 1


async def test_a_tap_on_a_card_nobody_knows_is_answered(harness):
    emu = harness.emulator
    xml, _ = emu.build_xml("zhangsan", "event", {"Event": "template_card_event", "EventKey": "vote:R1:maybe",
                                                  "TaskId": "old-card", "CardType": "button_interaction",
                                                  "ResponseCode": "rc-old"})
    params, body = emu.encrypt_callback(xml)
    assert (await harness.client.post("/wecom/callback", params=params, data=body.encode())).status == 200
    await harness.settle()
    assert harness.last_reply("zhangsan") == "这张卡片已无法操作,请按消息里的文字说明回复,或发送“帮助”查看用法。"
