"""The ledger's shared wording helpers (bot.problem_ledger), as the jobs and the handlers use them."""

from __future__ import annotations

from bot.problem_ledger import short


def test_short_keeps_one_line_within_the_limit_ellipsis_included():
    assert short("幸福路3号楼下\n堆放  建筑垃圾") == "幸福路3号楼下 堆放 建筑垃圾"
    assert short("一二三四五", 5) == "一二三四五"
    assert short("一二三四五六", 5) == "一二三四…"
    assert short(None) == short("") == ""
