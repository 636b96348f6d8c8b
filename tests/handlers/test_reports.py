"""Task reports through the real callback: confirmation, hints, corrections, late reports, flags."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot.records import counted

REPO = Path(__file__).resolve().parents[2]
# The project's copy of ../shared/examples/reports.jsonl; the shared one wins when it is there.
_SHARED = REPO.parent / "shared" / "examples" / "reports.jsonl"
EXAMPLES = _SHARED if _SHARED.exists() else REPO / "tests" / "data" / "reports.jsonl"


def reports(harness):
    return sorted(harness.store.docs("reports"), key=lambda r: int(r["id"][1:]))


async def test_report_is_stored_and_confirmed_with_week_totals(harness):
    await harness.text("lisi", "清理小广告15处,入户走访十二户")
    await harness.text("lisi", "又清理小广告5处")
    [r1, r2] = reports(harness)
    assert r1["items"] == [{"category": "ads", "quantity": 15, "unit": "处"},
                           {"category": "visit", "quantity": 12, "unit": "户"}]
    assert r1["grid"] == "g1" and r1["work_date"] == "2026-11-25" and r1["msgid"]
    reply = harness.last_reply("lisi")
    assert reply.startswith("已记录 #R2(11月25日)")
    assert "· 小广告清理 5处" in reply
    assert "本周累计:小广告清理 20处,入户走访 12户" in reply  # the whole week, not this message's only


async def test_non_report_gets_a_hint_and_chit_chat_gets_nothing(harness):
    await harness.text("lisi", "收到")
    await harness.text("lisi", "好的👌")
    await harness.text("lisi", "明天几点集合?")
    assert harness.replies("lisi") == []
    await harness.text("lisi", "今天做了3件好事")
    [hint] = harness.replies("lisi")
    assert "没有识别到工作内容" in hint and hint.count("· ") == 2
    assert reports(harness) == []


async def test_withdraw_last_and_by_id_with_permissions(harness):
    await harness.text("lisi", "清理小广告15处")
    await harness.text("lisi", "入户走访8户")
    await harness.text("lisi", "撤回")
    assert [r["status"] for r in reports(harness)] == ["active", "withdrawn"]
    assert "已撤回 #R2" in harness.last_reply("lisi")
    await harness.text("wangwu", "撤回 #R1")
    assert "不是您的上报" in harness.last_reply("wangwu")
    assert reports(harness)[0]["status"] == "active"
    await harness.text("zhangsan", "撤回 #R1")  # the grid leader may
    r1 = reports(harness)[0]
    assert r1["status"] == "withdrawn" and r1["history"][-1]["by"] == "zhangsan"
    await harness.text("sunqi", "撤回 #R1")  # another grid's leader may not
    assert "没有找到" in harness.last_reply("sunqi") or "不是您的上报" in harness.last_reply("sunqi")


async def test_correction_replaces_items_and_keeps_history(harness):
    await harness.text("lisi", "清理小广告15处")
    await harness.text("lisi", "更正 #R1 清理小广告12处")
    [r] = reports(harness)
    assert r["items"] == [{"category": "ads", "quantity": 12, "unit": "处"}]
    assert r["history"][0]["before"]["items"][0]["quantity"] == 15
    assert r["history"][0]["by"] == "lisi"
    assert "已更正 #R1" in harness.last_reply("lisi") and "12处" in harness.last_reply("lisi")
    await harness.text("zhouba", "更正 #R1 清理小广告99处")
    assert "不是您的上报" in harness.last_reply("zhouba")


async def test_correction_changes_only_the_categories_it_names(harness):
    await harness.text("lisi", "清理小广告15处,入户走访12户,巡查背街小巷2条")
    await harness.text("lisi", "更正 #R1 巡查背街小巷3条")
    [r] = reports(harness)
    assert r["items"] == [{"category": "ads", "quantity": 15, "unit": "处"},
                          {"category": "visit", "quantity": 12, "unit": "户"},
                          {"category": "patrol", "quantity": 3, "unit": "条"}]
    assert r["text"] == "清理小广告15处,入户走访12户,巡查背街小巷2条"  # the original, as sent
    assert r["corrected_text"] == "巡查背街小巷3条"
    assert harness.last_reply("lisi") == ("已更正 #R1(11月25日),现为:\n· 小广告清理 15处\n"
                                          "· 入户走访 12户\n· 巡查巡逻 3条")


async def test_correction_without_a_number_fixes_the_latest_report_never_a_second_one(harness):
    await harness.text("lisi", "清理小广告15处,入户走访12户")
    await harness.text("lisi", "更正 清理小广告5处")
    [r] = reports(harness)  # not a second report: the work is not counted twice
    assert [it["quantity"] for it in r["items"]] == [5, 12]
    assert "已更正 #R1" in harness.last_reply("lisi")
    await harness.text("lisi", "更正:入户走访10户")
    assert [it["quantity"] for it in reports(harness)[0]["items"]] == [5, 10]
    assert reports(harness)[0]["history"][0]["before"]["text"] == "清理小广告15处,入户走访12户"


async def test_correction_asks_which_report_when_the_latest_does_not_hold_it(harness):
    await harness.text("lisi", "清理小广告15处")
    await harness.text("lisi", "入户走访12户")
    await harness.text("lisi", "更正 清理小广告5处")
    r1, r2 = reports(harness)
    assert r1["items"][0]["quantity"] == 15 and "corrected" not in r1 and "corrected" not in r2
    ask = harness.last_reply("lisi")
    assert ask.startswith("要更正哪一条?") and "更正 #R1 清理小广告5处" in ask
    assert "#R2(11月25日):入户走访12户" in ask and "#R1(11月25日):小广告清理15处" in ask


async def test_correction_without_content_or_report_gets_the_accepted_form(harness):
    await harness.text("lisi", "更正")
    assert "例如“更正 #R12 清理小广告12处”" in harness.last_reply("lisi")
    await harness.text("lisi", "更正 清理小广告5处")
    assert harness.last_reply("lisi") == "最近7天没有您可更正的上报。"
    assert reports(harness) == []


async def test_late_reports(harness):
    await harness.text("lisi", "昨天调解邻里纠纷1起")
    await harness.text("lisi", "补报 入户走访10户")
    await harness.text("lisi", "11月10日 清理小广告4处")
    await harness.text("lisi", "11月28日 清理小广告4处")
    r1, r2 = reports(harness)
    assert r1["work_date"] == "2026-11-24" and r1["late"] and "补报" in harness.replies("lisi")[0]
    assert r2["work_date"] == "2026-11-24" and r2["late"]
    too_old, future = harness.replies("lisi")[2:]
    assert "只能补报最近7天" in too_old
    assert "未来" in future


async def test_implausible_counts_are_flagged_and_confirmed_by_grid_leader(harness):
    await harness.text("lisi", "清理小广告5000处")
    [r] = reports(harness)
    assert r["unconfirmed"] and "implausible" in r["flags"] and not counted(r)
    assert "待核实" in harness.last_reply("lisi") or "核实" in harness.last_reply("lisi")
    [card] = harness.cards("zhangsan")
    assert card["card"]["main_title"] == {"title": "#R1 上报待核实", "desc": "李四 · 数量超出常规"}
    assert card["card"]["sub_title_text"] == "清理小广告5000处"
    await harness.text("wangwu", "核实 #R1")
    assert "只有本网格的网格长" in harness.last_reply("wangwu")
    await harness.text("zhangsan", "核实 #R1")
    assert counted(reports(harness)[0])
    assert "已由张三核实" in harness.last_reply("lisi")


async def test_grid_leader_confirms_an_unusual_count_with_one_tap(harness):
    await harness.text("lisi", "清理小广告5000处")
    assert (await harness.tap("zhangsan", "核实无误"))["ok"]
    [r] = reports(harness)
    assert counted(r) and r["history"][-1]["action"] == "confirm" and r["history"][-1]["by"] == "zhangsan"
    assert harness.last_reply("zhangsan") == "已核实 #R1,计入统计。"
    assert harness.last_reply("lisi") == "您的上报 #R1 已由张三核实,计入统计。"
    # The card is greyed out with what was decided; a second tap on it is refused by the page.
    [card] = harness.cards("zhangsan")
    assert card["replaced"] == "已核实"
    assert (await harness.tap("zhangsan", "核实无误"))["ok"] is False


async def test_grid_leader_keeps_an_unusual_count_out_with_one_tap(harness):
    await harness.text("lisi", "清理小广告5000处")
    await harness.tap("zhangsan", "不予计入")
    [r] = reports(harness)
    assert not counted(r) and r["confirm_rejected"] and r["history"][-1]["action"] == "confirm_rejected"
    assert harness.last_reply("zhangsan") == "已确认 #R1 不予计入统计,已告知李四。如需改为计入,可发送“核实 #R1”。"
    assert harness.last_reply("lisi").startswith("您的上报 #R1 经张三核实,数量不予计入统计。")
    assert harness.cards("zhangsan")[0]["replaced"] == "不予计入"
    # Changing one's mind in words still works.
    await harness.text("zhangsan", "核实 #R1")
    assert counted(reports(harness)[0])


async def test_same_report_twice_within_ten_minutes_is_flagged(harness):
    await harness.text("lisi", "入户走访8户")
    harness.clock.advance(minutes=3)
    await harness.text("lisi", "入户走访8户")
    r1, r2 = reports(harness)
    assert not r1["unconfirmed"] and "repeat" in r2["flags"] and r2["unconfirmed"]
    harness.clock.advance(minutes=30)
    await harness.text("lisi", "入户走访8户")
    assert not reports(harness)[2]["unconfirmed"]


async def test_help_and_my_week(harness):
    await harness.text("lisi", "帮助")
    assert "清理小广告15处" in harness.last_reply("lisi") and "撤回" in harness.last_reply("lisi")
    await harness.text("lisi", "清理小广告15处")
    await harness.text("lisi", "本周")
    week = harness.last_reply("lisi")
    assert "我的本周" in week and "小广告清理 15处" in week


@pytest.mark.parametrize("examples", [p for p in (_SHARED, REPO / "tests" / "data" / "reports.jsonl") if p.exists()],
                         ids=lambda p: p.parent.name)
def test_parse_command_on_the_examples_file(examples):
    # The examples' relative dates ("上周五", "3天前") are written for a message sent on a
    # Wednesday, 25 November 2026: the command is given that date, never today's.
    out = subprocess.run([sys.executable, "-m", "bot.cli", "parse", "--json", "--file", str(examples),
                          "--date", "2026-11-25", "--config", str(REPO / "config.example.toml")],
                         capture_output=True, text=True, cwd=REPO, check=True)
    got = [json.loads(line) for line in out.stdout.splitlines()]
    want = [json.loads(line) for line in examples.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert [[i["category"], i["quantity"], i["unit"]] for i in g["items"]] == w["items"], w["text"]
        assert g["date_offset"] == w["date_offset"], w["text"]


def test_parse_command_single_text():
    out = subprocess.run([sys.executable, "-m", "bot.cli", "parse", "--json", "昨天巡查4次"],
                         capture_output=True, text=True, cwd=REPO, check=True)
    assert json.loads(out.stdout) == {"items": [{"category": "patrol", "quantity": 4, "unit": "次"}],
                                      "date_offset": -1}


@pytest.mark.parametrize("text, hint", [
    ("撤回问题怎么弄", "撤回问题:“撤回 #P12”"),
    ("我要更正一下", "更正上报:“更正 #R12 清理小广告12处”"),
    ("帮我核实下", "网格长核实上报:“核实 #R12”"),
    ("整改好了", "整改 #P12 已清理"),
    ("请假的事情怎么弄", "请假可以这样说"),
    ("本周的怎么看", "查看本周统计请发送“本周”"),
])
async def test_a_command_word_that_is_not_understood_gets_the_accepted_forms(harness, text, hint):
    await harness.text("lisi", text)
    assert hint in harness.last_reply("lisi")
    assert reports(harness) == [] and harness.store.get("leave", "lisi") is None


async def test_chit_chat_is_still_met_with_silence(harness):
    for text in ("收到", "好的", "辛苦了", "👍"):
        await harness.text("lisi", text)
    assert harness.replies("lisi") == []


# --- the parser's second edition, as people see it ---------------------------------------


async def test_a_traditional_report_is_stored_as_sent_and_counted_in_simplified_units(harness):
    await harness.text("lisi", "清理小廣告15處,入戶走訪十二戶")
    [r] = reports(harness)
    assert r["text"] == "清理小廣告15處,入戶走訪十二戶"
    assert r["items"] == [{"category": "ads", "quantity": 15, "unit": "处"},
                          {"category": "visit", "quantity": 12, "unit": "户"}]
    assert "· 小广告清理 15处\n· 入户走访 12户" in harness.last_reply("lisi")


async def test_a_late_report_beyond_the_window_says_the_window_and_whom_to_ask(harness):
    await harness.text("lisi", "补报 10天前 入户走访5户")
    assert reports(harness) == []
    reply = harness.last_reply("lisi")
    assert reply == ("11月15日的工作已超过补报期限,没有记录。只能补报最近7天(11月18日及以后)的工作;"
                     "如需补录更早的工作,请联系网格长张三。")
    await harness.text("zhangsan", "补报 10天前 入户走访5户")  # the grid leader has no leader to ask
    assert "请联系社区管理员" in harness.last_reply("zhangsan")


async def test_dates_back_within_the_window_are_booked_on_their_day(harness):
    await harness.text("lisi", "补报 5天前 入户走访5户")
    await harness.text("lisi", "上周五清理小广告3处")
    await harness.text("lisi", "补报 清理卫生死角2处")  # no date: yesterday, as before
    assert [r["work_date"] for r in reports(harness)] == ["2026-11-20", "2026-11-20", "2026-11-24"]
    assert all(r["late"] for r in reports(harness))


async def test_planned_work_is_answered_and_never_booked(harness):
    await harness.text("lisi", "明天入户走访10户")
    await harness.text("lisi", "下周一组织志愿者开展义务劳动")
    assert reports(harness) == []
    assert harness.replies("lisi") == ["计划中的工作不计入,完成后再上报(如“入户走访10户”)。"] * 2


async def test_work_done_is_booked_and_the_plan_beside_it_is_not(harness):
    await harness.text("lisi", "今天走访8户,明天计划走访20户")
    [r] = reports(harness)
    assert r["items"] == [{"category": "visit", "quantity": 8, "unit": "户"}]
    reply = harness.last_reply("lisi")
    assert "· 入户走访 8户" in reply and "计划中的工作(入户走访 20户)不计入,完成后再上报。" in reply
    assert "本周累计:入户走访 8户" in reply


async def test_a_message_with_two_work_dates_is_not_booked_and_says_why(harness):
    await harness.text("lisi", "昨天走访5户,今天走访3户")
    assert reports(harness) == []
    assert "包含不同日期的工作" in harness.last_reply("lisi")
    assert "请按日期分开发送" in harness.last_reply("lisi")


async def test_a_quoted_instruction_acknowledged_is_chit_chat(harness):
    await harness.text("lisi", "「张三:今天每人至少走访20户」\n- - - - - - - - - - - - - - -\n收到")
    assert reports(harness) == [] and harness.replies("lisi") == []
    await harness.text("lisi", "「张三:今天每人至少走访20户」\n- - - - - - - - - - - - - - -\n收到,已走访12户")
    [r] = reports(harness)
    assert r["items"] == [{"category": "visit", "quantity": 12, "unit": "户"}]


async def test_a_zero_count_is_a_report_without_items(harness):
    await harness.text("lisi", "今日巡查,发现燃气隐患0处")
    [r] = reports(harness)
    assert r["items"] == [] and "未识别到数量,已按工作记录保存" in harness.last_reply("lisi")
