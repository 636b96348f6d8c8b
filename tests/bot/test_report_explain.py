"""`gridbot parse` for admins: the Chinese table, --explain (each number and why), --json as before."""

from __future__ import annotations

import json
from pathlib import Path

from bot.cli import main

REPO = Path(__file__).resolve().parents[2]
CONFIG = str(REPO / "config.example.toml")


def run(capsys, *args: str) -> tuple[int, str]:
    code = main(["parse", "--config", CONFIG, "--date", "2026-11-25", *args])
    return code, capsys.readouterr().out


def test_explain_says_why_each_number_counts_or_not(capsys):
    code, out = run(capsys, "--explain", "清理小廣告15處,走访3栋2单元302户独居老人,悬挂10米长的横幅2条;"
                                         "第3次巡逻30分钟,电话13812345678")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "原文:清理小廣告15處,走访3栋2单元302户独居老人,悬挂10米长的横幅2条;第3次巡逻30分钟,电话13812345678"
    assert lines[1].startswith("规范化后:清理小广告15处,") and "繁体转简体" in lines[1]
    assert "工作日期:11月25日(未写日期,按发送当天" in out

    def line_of(number: str) -> str:
        [found] = [line for line in lines if line.strip().startswith(f"“{number}”")]
        return found

    assert "计入 小广告清理 15处 —— 数字前面有关键词“小广告”" in line_of("15处")
    assert "门牌地址" in line_of("302户")
    assert "尺寸" in line_of("10米")
    assert "计入 宣传发动 2条 —— 数字前面有关键词“横幅”" in line_of("2条")
    assert "序数" in line_of("3次")
    assert "后面的“分钟”不是计量单位" in line_of("30") and "extra_units" in line_of("30")
    assert "电话号码" in line_of("13812345678")
    assert lines[-1] == "结果:小广告清理 15处, 宣传发动 2条"


def test_explain_names_the_words_after_the_number_the_heading_quotes_and_plans(capsys):
    _, out = run(capsys, "--explain", "「李主任:今天每人至少走访20户」\n- - - - - - - - -\n"
                                      "昨天清理了6处牛皮癣,环境卫生:清理4处,明天走访20户")
    assert "引用的消息,其中的数字和关键词都不计" in out
    assert "“昨天”" in out and "日期 → 11月24日" in out
    assert "计入 小广告清理 6处 —— 数字前面没有关键词,后面有“牛皮癣”" in out
    assert "计入 环境卫生 4处 —— 前后都没有关键词,按标题“环境卫生”" in out
    assert "计划中的工作(入户走访 20户),不计入" in out
    assert "工作日期:11月24日(文中的日期,比发送日早1天)" in out


def test_explain_a_number_that_names_no_category_and_two_dates(capsys):
    _, out = run(capsys, "--explain", "昨天走访5户,今天发现3处")
    assert "“3处”" in out and "前后和标题里都没有类别关键词" in out
    _, out = run(capsys, "--explain", "昨天走访5户,今天走访3户")
    assert "工作日期:无法确定" in out


def test_plain_parse_prints_a_readable_table(capsys):
    code, out = run(capsys, "清理小廣告15處,入戶走訪十二戶")
    assert code == 0
    assert out.splitlines() == [
        "清理小廣告15處,入戶走訪十二戶",
        "  工作日期:11月25日(未写日期,按发送当天;以“补报”开头时按前一天)",
        "  类别        数量  单位",
        "  小广告清理    15  处",
        "  入户走访      12  户",
    ]
    _, out = run(capsys, "今天走访8户,明天计划走访20户")
    assert "计划中,不计入:入户走访 20户" in out
    _, out = run(capsys, "今天入户走访了独居老人")
    assert "没有计数的工作项(文中有类别关键词,仍算一条工作记录)" in out


def test_json_output_is_unchanged(capsys):
    _, out = run(capsys, "--json", "昨天清理小廣告15處")
    assert json.loads(out) == {"items": [{"category": "ads", "quantity": 15, "unit": "处"}], "date_offset": -1}


def test_a_bad_date_is_refused(capsys):
    assert main(["parse", "--config", CONFIG, "--date", "11月25日", "巡查4次"]) == 2
    assert "YYYY-MM-DD" in capsys.readouterr().err
