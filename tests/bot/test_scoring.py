"""Points (积分) computed from the records of a hand-computed October (tests/support/month_october.py
has every figure worked out): per person, per member of a grid, ranks, and every entry traced
back to the record that earned it."""

from __future__ import annotations

from datetime import date, datetime

from bot.scoring import fmt_points, month_standings

from tests.support.month_october import cfg, config_path, store  # noqa: F401  (shared fixtures)
from tests.support.month_october import MONTH, TZ


async def test_october_points_match_the_hand_computed_month(cfg, store):
    points, _, _ = month_standings(cfg, store, MONTH)
    totals = {u: p.total for u, p in points.people.items()}
    assert totals == {"zhangsan": 25, "lisi": 20, "wangwu": 7, "sunqi": 19, "zhouba": 12}
    assert {u: (p.rank, p.grid_rank, p.grid_of) for u, p in points.people.items()} == {
        "zhangsan": (1, 1, 3), "lisi": (2, 2, 3), "wangwu": (5, 3, 3), "sunqi": (3, 1, 2), "zhouba": (4, 2, 2)}
    # Per person, every rule with its count: 王五 9 check-in days (leave 10-19..23 is not missed),
    # R6 counted after he corrected it himself, P2 found, a stale photo, R5 withdrawn by 张三.
    assert points.people["wangwu"].tally.lines() == [
        ("打卡", 9, "天", 9), ("有效上报", 1, "条", 1), ("发现问题", 1, "项", 2), ("重复或旧照片", 1, "张", -3),
        ("数量不实", 1, "条", -2)]
    assert points.people["sunqi"].tally.lines() == [("打卡", 19, "天", 19), ("有效上报", 1, "条", 1),
                                                   ("整改被退回", 1, "次", -1)]
    # Grids: members' points plus the grid's own overdue days, per member.
    g1, g2 = points.grids["g1"], points.grids["g2"]
    assert (g1.total, g1.members, g1.per_member, g1.rank) == (48, 3, 16, 1)
    assert (g2.total, g2.members, g2.per_member, g2.rank) == (23, 2, 11.5, 2)
    assert g2.tally.by_rule["overdue_day"] == [8, -8]  # P3 six days, P5 two (its deadline was 9-30)
    assert len(points.entries) == 102
    assert sum(e.points for e in points.entries) == 71


async def test_every_point_traces_to_a_record_with_its_date(cfg, store):
    """Each entry names a record that exists, and the entry's date is that record's own date:
    a report's work date, a check-in's day, the day a problem was opened, closed or reopened, or
    the day an overdue day completed."""
    points, _, _ = month_standings(cfg, store, MONTH)
    table = {"R": "reports", "C": "checkins", "P": "problems"}

    def day(ts: float) -> date:
        return datetime.fromtimestamp(ts, TZ).date()

    for e in points.entries:
        doc = store.get(table[e.record[0]], e.record)
        assert doc is not None, e
        expected = {
            "checkin_day": lambda: date.fromisoformat(doc["date"]),
            "bad_photo": lambda: date.fromisoformat(doc["date"]),
            "report": lambda: date.fromisoformat(doc["work_date"]),
            "wrong_count": lambda: date.fromisoformat(doc["work_date"]),
            "problem_found": lambda: day(doc["opened_at"]),
            "problem_closed_on_time": lambda: day(doc["closed_at"]),
            "fix_rejected": lambda: day(next(h["at"] for h in doc["history"] if h["action"] == "reopened")),
            "overdue_day": lambda: day(doc["deadline"] + int(e.note.removeprefix("逾期第").removesuffix("天")) * 86400),
        }[e.rule]()
        assert e.day == expected, e
        if e.rule == "checkin_day":
            assert doc["userid"] == e.userid and doc["counted"]
    overdue = [(e.record, e.day.day) for e in points.entries if e.rule == "overdue_day"]
    assert overdue == [("P5", 1), ("P5", 2), ("P2", 15), ("P3", 26), ("P3", 27), ("P3", 28), ("P4", 29),
                       ("P3", 29), ("P4", 30), ("P3", 30), ("P4", 31), ("P3", 31)]


async def test_a_wrong_count_costs_points_only_when_someone_else_confirmed_it_wrong(cfg, store):
    points, _, _ = month_standings(cfg, store, MONTH)
    wrong = [(e.record, e.userid, e.note) for e in points.entries if e.rule == "wrong_count"]
    # R5 was withdrawn by the grid leader; R6 was corrected by 王五 himself, then verified.
    assert wrong == [("R5", "wangwu", "数量超出常规,经张三撤回")]
    bad = [(e.userid, e.day.day, e.note) for e in points.entries if e.rule == "bad_photo"]
    # 王五's photo is both stale and without EXIF: still one deduction per photo.
    assert bad == [("lisi", 12, "疑似重复照片"), ("wangwu", 13, "旧照片")]


async def test_admins_change_the_weights_and_a_zero_switches_a_rule_off(cfg, store):
    # 张三: no points for check-ins now; his report R4 ×5, P4 found +2, P1 closed on time +3.
    changed = cfg.model_copy(update={"scoring": cfg.scoring.model_copy(update={"checkin_day": 0, "report": 5})})
    points, _, _ = month_standings(changed, store, MONTH)
    assert points.people["zhangsan"].total == 10
    assert not any(e.rule == "checkin_day" for e in points.entries)


async def test_a_month_in_progress_counts_up_to_now(cfg, store):
    """Tue 10-20 18:00. 张三: check-in days 8, 9, 10, 12–16, 19, 20 = 10, R4 +1, P1 closed on time
    +3 (P4 is yet to come) = 14. 周八: 8 days, R8 R9 +2, P3 found this morning +2 = 12.
    g2's own: P5's two overdue days; P3's deadline is still ahead."""
    now = datetime(2026, 10, 20, 18, 0, tzinfo=TZ)
    points, _, people = month_standings(cfg, store, MONTH, now)
    assert points.people["zhangsan"].total == 14
    assert points.people["zhouba"].total == 12
    assert points.grids["g2"].tally.by_rule["overdue_day"] == [2, -2]
    assert len(people["zhangsan"].workdays) == 10


def test_points_are_written_as_people_read_them():
    assert [fmt_points(x) for x in (12, 12.0, 11.5, 14.25, -3, None)] == ["12", "12", "11.5", "14.2", "-3", "—"]
    assert [fmt_points(x, signed=True) for x in (3, -1, 0, -0.04)] == ["+3", "-1", "0", "0"]


async def test_points_of_people_outside_the_grids_are_kept_but_never_ranked(cfg, store):
    """The admin closes 李四's new problem P6 on time: 李四 gets +2 for finding it; the admin's +3
    is an entry of its own (the ledger shows it), in nobody's total and no grid's."""
    from tests.support.month_october import day, problem, ts
    p6 = problem("P6", "g1", "lisi", ts(day(10, 27), 9), ts(day(10, 29), 9), "路灯损坏",
                 closed_at=ts(day(10, 28), 9), closed_by="zhangsan")
    await store.put("problems", {**p6, "closed_by": "admin", "closed_by_name": "管理员"})
    points, _, _ = month_standings(cfg, store, MONTH)
    assert points.people["lisi"].total == 22 and points.grids["g1"].total == 50
    [admin] = [e for e in points.entries if e.userid == "admin"]
    assert (admin.rule, admin.points, admin.name, admin.record) == ("problem_closed_on_time", 3, "管理员", "P6")
    assert "admin" not in points.people
