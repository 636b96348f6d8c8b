"""How problem texts are read: what opens a problem, what closes one (bot.problem_phrases)."""

from __future__ import annotations

from datetime import datetime

import pytest

from bot.problem_phrases import parse_close, parse_opening, parse_withdraw


@pytest.mark.parametrize("text,body", [
    ("问题:幸福路3号楼下堆放建筑垃圾", "幸福路3号楼下堆放建筑垃圾"),
    ("问题：幸福路3号楼下堆放建筑垃圾", "幸福路3号楼下堆放建筑垃圾"),
    ("发现问题 5栋2单元楼道堆放杂物", "5栋2单元楼道堆放杂物"),
    ("反映和平路小区门口有流动摊贩", "和平路小区门口有流动摊贩"),
    ("隐患:燃气管道锈蚀", "燃气管道锈蚀"),
])
def test_openings_recognised(text, body):
    assert parse_opening(text, datetime(2026, 11, 25).date()) == body


@pytest.mark.parametrize("text", ["排查安全隐患三处", "隐患排查:发现问题2处", "发现问题2处",
                                  "反映路边有两辆共享单车乱停", "隐患排查", "清理小广告15处"])
def test_non_openings(text):
    assert parse_opening(text, datetime(2026, 11, 25).date()) is None


def test_parse_close_forms():
    assert parse_close("整改 #P12 已清理") == {"n": "12", "note": "已清理", "done": True}
    assert parse_close("#P12 已整改")["done"] is True
    assert parse_close("销号 P3")["n"] == "3"
    assert parse_close("整改 #P12 正在清运")["done"] is False
    assert parse_close("整改占道经营5处") is None


@pytest.mark.parametrize("text,n,reason", [
    ("撤回 #P12", "12", ""),
    ("撤回问题 #P12", "12", ""),
    ("#P12 撤回", "12", ""),
    ("问题 #P12 撤回", "12", ""),
    ("撤回 #P12 重复登记", "12", "重复登记"),
    ("撤回#P12,原因:重复登记。", "12", "重复登记"),
    ("撤回 #P4 吧", "4", ""),  # a particle is tone, not a reason
    ("撤销问题 P7 登记错了", "7", "登记错了"),
    ("＃Ｐ１２　撤回", "１２", ""),
])
def test_parse_withdraw_forms(text, n, reason):
    assert parse_withdraw(text) == {"n": n, "reason": reason}


@pytest.mark.parametrize("text", ["撤回", "撤回 #R12", "撤回 R3", "撤回问题怎么弄", "问题 #P12"])
def test_withdrawing_a_report_or_asking_is_not_withdrawing_a_problem(text):
    assert parse_withdraw(text) is None
