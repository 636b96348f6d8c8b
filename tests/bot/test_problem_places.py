"""What counts as the same place for a possible duplicate (bot.problem_places)."""

from __future__ import annotations

import pytest

from bot.problem_places import address, possible_duplicates, similar_place, text_overlap

BASE = "幸福路3号楼下堆放建筑垃圾"


def test_address_tokens():
    a = address("在幸福路三号楼2单元302室门口,11月20号发现")
    assert a.names == {"幸福路"}
    assert a.numbers == {"building": {3}, "unit": {2}, "room": {302}}  # 11月20号 is a date
    assert address("３号网格沿和平路18号门前").names == {"和平路"}
    assert address("３号网格沿和平路18号门前").numbers == {"door": {18}}
    assert address("垃圾堆在路边,马路上有积水").names == set()  # no road is named


@pytest.mark.parametrize("other", [
    "幸福路三号楼旁建筑垃圾未清运",  # Chinese numeral, other words around it
    "在幸福路3栋2单元门口堆放垃圾",  # 3栋 is 3号楼; the unit only one of them gives is no conflict
    "3号楼楼下有建筑垃圾",  # the road left out
    "沿幸福路３号楼堆放建筑垃圾",  # full-width digit, a word before the road
])
def test_same_place(other):
    assert similar_place(BASE, other) and similar_place(other, BASE)


@pytest.mark.parametrize("other", [
    "幸福路5号楼下堆放建筑垃圾",  # same road, other building
    "和平路3号楼下堆放建筑垃圾",  # same building number, other road
    "向阳街3号楼楼下堆放建筑垃圾",
    "幸福路口堆放建筑垃圾",  # the road only, and the texts differ too much
    "阳光小区东门垃圾桶满溢",
])
def test_not_the_same_place(other):
    assert not similar_place(BASE, other) and not similar_place(other, BASE)


def test_unit_numbers_that_differ_tell_places_apart():
    assert not similar_place("幸福路3号楼2单元楼道堆放杂物", "幸福路3号楼4单元楼道堆放杂物")


def test_without_address_tokens_the_texts_must_mostly_match():
    assert similar_place("小区东门垃圾桶满溢", "小区东门垃圾桶满溢无人清理")
    assert text_overlap("小区东门垃圾桶满溢", "小区西门垃圾桶满溢") == pytest.approx(0.75)
    assert not similar_place("小区东门垃圾桶满溢", "小区西门垃圾桶满溢")
    assert similar_place("幸福路口垃圾桶满溢", "发现幸福路边垃圾桶满溢")  # same road, no numbers


def test_possible_duplicates_need_the_same_grid_category_and_an_open_problem():
    def doc(pid, grid="g1", category="sanitation", status="open", text=BASE):
        return {"id": pid, "grid": grid, "category": category, "status": status, "text": text}
    docs = [doc("P1"), doc("P2", grid="g2"), doc("P3", category="order"), doc("P4", status="closed"),
            doc("P5", status="withdrawn"), doc("P6", text="幸福路5号楼下堆放建筑垃圾"), doc("P7")]
    found = possible_duplicates(docs, "g1", "sanitation", "幸福路三号楼旁建筑垃圾")
    assert [p["id"] for p in found] == ["P1", "P7"]
    assert possible_duplicates([doc("P1", category=None)], "g1", None, BASE) != []
