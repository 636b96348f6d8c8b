"""The report parsing rules of DESIGN.md, second edition, one rule at a time: what a grid worker
types and what the ledger then holds."""

from __future__ import annotations

from datetime import date

import pytest

from bot.report_parser import parse_report
from bot.taxonomy import DEFAULT_CATEGORIES

SENT = date(2026, 11, 25)  # a Wednesday


def items(text: str) -> list[tuple]:
    return [(i.category, i.quantity, i.unit) for i in parse_report(text, DEFAULT_CATEGORIES, SENT).items]


@pytest.mark.parametrize("text, expected", [
    ("清理小廣告15處,入戶走訪十二戶", [("ads", 15, "处"), ("visit", 12, "户")]),
    ("發放宣傳資料兩百份", [("publicity", 200, "份")]),
    ("調解鄰里糾紛1起", [("mediation", 1, "起")]),
    ("環境衛生:清掃樓道5棟", [("sanitation", 5, "栋")]),
    ("補植樹木30棵,修剪綠化帶200平米", [("greening", 30, "棵"), ("greening", 200, "平方米")]),
])
def test_traditional_characters_count_like_simplified_ones(text, expected):
    assert items(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("清理小广告3-5处", [("ads", 3, "处")]),
    ("清除野广告大约3—5处", [("ads", 3, "处")]),
    ("入户走访20~30户", [("visit", 20, "户")]),
    ("劝导行人20到30人", [("persuasion", 20, "人")]),
    ("排查燃气隐患三四处", [("hazard", 3, "处")]),
    ("走访困难家庭两三户", [("visit", 2, "户")]),
    ("发放文明手册七八十本", [("publicity", 70, "本")]),
    ("巡逻一到两小时", [("patrol", 1, "小时")]),
    ("清理小广告3、4处", [("ads", 3, "处")]),
])
def test_a_range_keeps_its_lower_end(text, expected):
    assert items(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("入户走访十几户", [("visit", 10, "户")]),
    ("发放宣传资料百十来份", [("publicity", 100, "份")]),
    ("发放倡议书上百份", [("publicity", 100, "份")]),
    ("劝导行人几十人", [("persuasion", 10, "人")]),
    ("张贴海报数十张", [("publicity", 10, "张")]),
    ("走访群众30余户", [("visit", 30, "户")]),
    ("慰问困难群众二十几户", [("visit", 20, "户")]),
    ("清扫落叶百余袋", [("sanitation", 100, "袋")]),
    ("巡逻三个多小时", [("patrol", 3, "小时")]),
])
def test_at_least_words_keep_the_number(text, expected):
    assert items(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("巡逻两个小时", [("patrol", 2, "小时")]),
    ("清运垃圾3大袋", [("sanitation", 3, "袋")]),
    ("清理杂物两大车", [("sanitation", 2, "车")]),
    ("捡拾烟头垃圾5小袋", [("sanitation", 5, "袋")]),
    ("出动10个人开展义务劳动", [("volunteer", 10, "人")]),
    ("入户走访30户次", [("visit", 30, "户")]),
    ("夜间巡防3个钟头", [("patrol", 3, "小时")]),
])
def test_measure_words_and_adjectives_between_number_and_unit(text, expected):
    assert items(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("1.入户走访20户\n2.200份宣传资料已发放", [("visit", 20, "户"), ("publicity", 200, "份")]),
    ("今日:1.30户入户走访完成 2.15处小广告已清理", [("visit", 30, "户"), ("ads", 15, "处")]),
    ("1、200份倡议书已发放", [("publicity", 200, "份")]),
    ("清运建筑垃圾2.5吨", [("sanitation", 2.5, "吨")]),  # a measured unit keeps its decimals
    ("1.2万份宣传单已发放", [("publicity", 12000, "份")]),
])
def test_a_list_marker_glued_to_a_number(text, expected):
    assert items(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("3号网格今日入户走访15户", [("visit", 15, "户")]),
    ("走访3栋2单元302户独居老人", []),
    ("到幸福小区5栋3单元502户走访独居老人1户", [("visit", 1, "户")]),
    ("走访5号楼1502户,了解垃圾分类情况", []),
    ("走访1号楼10户居民", [("visit", 10, "户")]),  # two digits after 楼: households, not a flat
    ("悬挂10米长的横幅2条", [("publicity", 2, "条")]),
    ("悬挂一条10米长的横幅", [("publicity", 1, "条")]),
    ("拆除长约15米的违建围挡1处", [("demolition", 1, "处")]),
    ("制作3米×2米展板4块", [("publicity", 4, "块")]),
    ("今天第二次入户走访,走访8户", [("visit", 8, "户")]),
    ("联系电话13812345678,入户走访3户", [("visit", 3, "户")]),
    ("垃圾分类知晓率达到95%,入户宣传40户", [("visit", 40, "户")]),
    ("2026年度第3次大扫除,清理杂物5车", [("sanitation", 5, "车")]),
    ("早上7:30开始清扫,清扫垃圾8袋", [("sanitation", 8, "袋")]),
])
def test_what_is_not_a_quantity(text, expected):
    assert items(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("和志愿者一起清扫楼道", []),
    ("和网格长一块儿巡逻2小时", [("patrol", 2, "小时")]),
    ("为辖区独居老人建立一户一档", []),
    ("一次性清运垃圾5车", [("sanitation", 5, "车")]),
    ("走进千家万户宣传垃圾分类", []),
    ("三番五次劝导流动摊贩", []),
    ("一户户走访独居老人", []),
    ("调解了一起邻里纠纷", [("mediation", 1, "起")]),
    ("搞了一场消防安全宣传活动", [("hazard", 1, "场")]),
])
def test_idioms_count_nothing_but_an_incident_or_an_event_counts(text, expected):
    assert items(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("「李主任:今天每人至少走访20户」\n- - - - - - - - - - - - - - -\n收到,今天走访了15户", [("visit", 15, "户")]),
    ("李主任说:“今天每人至少走访20户”,我已走访12户", [("visit", 12, "户")]),
    ('王书记:"清理小广告50处",已完成清理小广告12处', [("ads", 12, "处")]),
    ("「张三:明天清理小广告30处」收到", []),
    ("領取「文明城市」宣傳手冊40冊", [("publicity", 40, "册")]),  # a quoted phrase keeps its words
    ("发放“垃圾分类”宣传单200份", [("publicity", 200, "份")]),  # double quotes alone are a title
])
def test_quoted_text_is_never_counted(text, expected):
    assert items(text) == expected


def test_a_quoted_message_alone_is_not_a_report():
    parsed = parse_report("「李主任:今天每人至少走访20户」\n- - - - - - - - -\n收到", DEFAULT_CATEGORIES, SENT)
    assert parsed.items == () and not parsed.matched


@pytest.mark.parametrize("text, expected", [
    ("环境卫生:清理4处", [("sanitation", 4, "处")]),
    ("【环境卫生】清理卫生死角6处,清理4处", [("sanitation", 6, "处"), ("sanitation", 4, "处")]),
    ("市容秩序:规范车辆停放20辆,劝离摊贩3个", [("order", 20, "辆"), ("order", 3, "个")]),
    ("矛盾调解:2起", [("mediation", 2, "起")]),
    # A heading that names no category ends the reach of the one before.
    ("消防检查:检查商铺15家,发现问题3处\n其他:发现问题1处", [("hazard", 15, "家"), ("hazard", 3, "处")]),
    ("宣传发动:横幅3条;今日小结:完成3处", [("publicity", 3, "条")]),
])
def test_a_heading_names_its_category_by_keyword_or_label(text, expected):
    assert items(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("清理了15处小广告", [("ads", 15, "处")]),
    ("共8处野广告被清除", [("ads", 8, "处")]),
    ("有5户居民接受了上门走访", [("visit", 5, "户")]),
    ("拆除违建2处约30平方米", [("demolition", 2, "处")]),  # no "same as the previous item"
    ("清运垃圾2车约3吨", [("sanitation", 2, "车")]),
    ("入户走访5户(其中独居老人2户)", [("visit", 5, "户")]),  # the part is not counted twice
])
def test_the_words_after_a_number_and_no_previous_item_step(text, expected):
    assert items(text) == expected


@pytest.mark.parametrize("text", ["发现燃气隐患0处", "今日巡查,发现问题零处", "清理小广告-5处"])
def test_a_zero_or_negative_count_is_no_item(text):
    parsed = parse_report(text, DEFAULT_CATEGORIES, SENT)
    assert parsed.items == () and parsed.matched


@pytest.mark.parametrize("text, done, planned", [
    ("明天入户走访10户", [], [("visit", 10, "户")]),
    ("后天发放宣传资料300份", [], [("publicity", 300, "份")]),
    ("下周一组织志愿者20人开展义务劳动", [], [("volunteer", 20, "人")]),
    ("计划本周入户走访40户", [], [("visit", 40, "户")]),
    ("今天走访8户,明天计划走访20户", [("visit", 8, "户")], [("visit", 20, "户")]),
    ("本周计划走访50户,今天已走访10户", [("visit", 10, "户")], [("visit", 50, "户")]),
    ("按计划完成入户走访20户", [("visit", 20, "户")], []),
    ("今天清理小广告6处,下周继续", [("ads", 6, "处")], []),
])
def test_planned_work_is_not_work_done(text, done, planned):
    parsed = parse_report(text, DEFAULT_CATEGORIES, SENT)
    assert [(i.category, i.quantity, i.unit) for i in parsed.items] == done
    assert [(i.category, i.quantity, i.unit) for i in parsed.planned] == planned
    assert parsed.planned_only is (not done)


def test_a_plan_without_a_number_is_still_only_a_plan():
    parsed = parse_report("明天继续入户走访", DEFAULT_CATEGORIES, SENT)
    assert parsed.matched and parsed.planned_only and parsed.items == ()


def test_the_tokenizer_shortcut_finds_what_a_full_scan_finds():
    """The tokenizer jumps between characters a token can start with; trying every position
    must find exactly the same tokens, or a rule would silently stop applying."""
    import json
    import random
    from pathlib import Path

    from bot.report_parser import compile_categories
    from bot.report_text import prepare

    tokenizer = compile_categories(DEFAULT_CATEGORIES).tokenizer
    data = Path(__file__).resolve().parents[1] / "data" / "reports.jsonl"
    texts = [json.loads(line)["text"] for line in data.read_text(encoding="utf-8").splitlines() if line.strip()]
    alphabet = sorted(set("".join(texts)) | set("①⑵(【-−~%:;!?|…"))
    rng = random.Random(48)
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))) for _ in range(3000)]
    for text in texts:
        t = prepare(text).text
        full = [(m.span(), m.lastgroup) for m in tokenizer.pattern.finditer(t)]
        assert [(m.span(), m.lastgroup) for m in tokenizer.scan(t)] == full, text
