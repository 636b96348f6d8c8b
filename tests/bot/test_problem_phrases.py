"""How problem texts are read: what opens a problem, what closes one (bot.problem_phrases)."""

from __future__ import annotations

from datetime import datetime

import pytest

from bot.problem_phrases import parse_close, parse_opening


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
