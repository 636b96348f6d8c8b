"""What counts as the same place for a possible duplicate (bot.problem_places)."""

from __future__ import annotations

import pytest

from bot.problem_places import (address, hot_spots, possible_duplicates, recurrence_of, same_place, similar_place,
                                text_overlap)

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


# --- recurrence (反弹) and hot spots ---------------------------------------------------------------

DAY = 86400


def cfg(**problems):
    from bot.config import Config
    return Config.model_validate({"wecom": {"corp_id": "c", "agent_id": 1, "secret": "s", "token": "t",
                                            "encoding_aes_key": "a" * 43}, "problems": problems})


def rec(pid, opened, *, status="closed", grid="g1", category="sanitation", text=BASE, location=None, **extra):
    return {"id": pid, "opened_at": opened, "status": status, "grid": grid, "category": category, "text": text,
            "location": location, **extra}


def test_a_recurrence_is_a_fixed_problem_of_the_kind_at_the_place_within_the_window():
    c = cfg()
    new = rec("P9", 40 * DAY, status="open", text="幸福路三号楼旁又堆了建筑垃圾")
    earlier = [rec("P1", 5 * DAY),  # 35 days before: outside the 30-day window
               rec("P2", 15 * DAY), rec("P3", 20 * DAY, status="pending_check"),
               rec("P4", 25 * DAY, status="open"),  # still open: a duplicate, not a recurrence
               rec("P5", 26 * DAY, status="withdrawn"), rec("P6", 27 * DAY, category="order"),
               rec("P7", 28 * DAY, text="幸福路5号楼下堆放建筑垃圾"), rec("P8", 29 * DAY, grid="g2")]
    assert recurrence_of(c, earlier + [new], new) == ["P2", "P3"]
    assert recurrence_of(cfg(recurrence_days=40), earlier, new) == ["P1", "P2", "P3"]


def test_locations_decide_the_place_when_both_have_one():
    c = cfg(recurrence_distance_m=50)
    here = {"lat": 30.2741, "lng": 120.1551}
    near = {"lat": 30.2744, "lng": 120.1551}  # about 33 m
    far = {"lat": 30.2761, "lng": 120.1551}  # about 220 m
    new = rec("P9", 10 * DAY, status="open", text="小区东门垃圾桶满溢", location=here)
    assert same_place(c, new, rec("P1", DAY, text="小区北侧绿化带垃圾", location=near))  # texts differ
    assert not same_place(c, new, rec("P2", DAY, text="小区东门垃圾桶满溢", location=far))  # texts agree
    # Without a location on both, the texts decide, within one grid.
    assert same_place(c, new, rec("P3", DAY, text="小区东门垃圾桶满溢无人清理"))
    assert not same_place(c, new, rec("P4", DAY, grid="g2", text="小区东门垃圾桶满溢无人清理"))


def test_hot_spots_join_the_links_made_at_registration():
    c = cfg(hot_spot_count=2)
    now = 60 * DAY
    docs = [rec("P1", 20 * DAY), rec("P2", 40 * DAY, recurs_of=["P1"]), rec("P3", 50 * DAY, recurs_of=["P2"]),
            rec("P4", 45 * DAY, status="open", possible_duplicates=["P3"]),
            rec("P5", 50 * DAY, text="和平路口积水"), rec("P6", 55 * DAY, status="withdrawn", recurs_of=["P5"])]
    spots = hot_spots(c, docs, now)
    # P1 is older than 30 days: the spot counts P2, P4, P3; P5 alone (P6 was withdrawn) is none.
    assert [[p["id"] for p in s] for s in spots] == [["P2", "P4", "P3"]]
