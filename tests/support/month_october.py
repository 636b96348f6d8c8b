"""A hand-computed month, October 2026, for the monthly bulletin, points, ledger and 我的积分 tests.

The calendar. National Day: 10-01..10-07 off; Saturday 10-10 a make-up workday (调休). The config
adds a campaign period (迎检) "迎接省级复检" 10-26..11-01, which makes Saturday 10-31 (and Sunday
11-01) workdays. October's workdays: 8, 9, 10, 12–16, 19–23, 26–31 = 3 + 5 + 5 + 6 = 19.
September 2026: 22 workdays (Mid-Autumn 9-25 off, Sunday 9-20 a make-up workday).

Check-ins (counted ones on workdays are check-in days; expected = workdays not on leave):
  g1 张三 zhangsan  all 19 workdays                                   19/19
  g1 李四 lisi      every workday but 10-30 (18), also holiday 10-03 (not in the rate),
                   and a duplicate photo 10-12 (not counted)            18/19
  g1 王五 wangwu    on leave 10-19..10-23 (5 workdays); 8, 9, 10 and 26–31 (9), also 10-21
                   while on leave (not in the rate), a stale photo 10-13  9/14
  g2 孙七 sunqi     all 19                                               19/19
  g2 周八 zhouba    8, 9, 10, 12–16 (8)                                   8/19
  g1 (19 + 18 + 9) / (19 + 19 + 14) = 46/52 = 88%; g2 (19 + 8) / 38 = 27/38 = 71%;
  street 73/90 = 81%. September: only 张三, all 22 days: g1 22/66 = 33%, g2 0%, street 20%.
  Campaign days (street): 10-26..29 and 31: 张三 李四 王五 孙七 = 4/5 = 80%; 10-30: 3/5 = 60%.

Reports (counted = active and not waiting for 核实):
  R1 lisi 10-08 清理小广告15处,入户走访12户               ads 15, visit 12
  R2 lisi 10-09 走访3栋2单元302户、401户                    no quantity; names 2 households
  R3 lisi 10-10 入户走访3户:3栋2单元302、5栋1单元101、5栋1单元102   visit 3; names 3 (302 again)
  R4 zhangsan 10-12 入户走访20户                            visit 20
  R5 wangwu 10-13 清理小广告5000处: implausible, withdrawn by 张三 → not counted, 数量不实 −2
  R6 wangwu 10-14 清理小广告800处: implausible, corrected by 王五 himself to 80, confirmed
     (核实) by 张三 → counted, ads 80, no deduction (owning up costs nothing)
  R7 sunqi 10-15 发放宣传资料200份                          publicity 200
  R8 zhouba 10-16 清理小广告3处                             ads 3
  R9 zhouba 10-03 (a holiday) 入户走访5户                    visit 5 (work on a holiday counts)
  R10 sunqi 10-20 入户走访8户, withdrawn by himself          not counted
  September: R101 lisi ads 30, R102 zhangsan visit 40, R103 sunqi publicity 200.
  Totals: g1 ads 15 + 80 = 95 处, visit 12 + 3 + 20 = 35 户; g2 ads 3 处, visit 5 户, publicity 200 份.
  Coverage (visit, households g1 400, g2 300): g1 names {3-2-302, 3-2-401, 5-1-101, 5-1-102} = 4
  distinct, plus R1 12 + R4 20 = 32 unnamed: 36/400 = 9%; g2 5/300 = 2%.
  Monthly targets: g1 visit 35/30 = 117% (met), ads 95/120 = 79%; g2 publicity 200/150 = 133%.

Problems:
  P1 g1 by lisi 10-09 10:00, deadline 10-11 10:00, closed by 张三 10-10 16:00: on time.
  P2 g1 by wangwu 10-12 09:00, deadline 10-14 09:00, closed by lisi 10-15 12:00: one day late.
  P3 g2 by zhouba 10-20 10:00, closed by 孙七 10-21, reopened (重开) by admin 10-23 09:00 with a new
     deadline 10-25 09:00, open at the month's end: overdue days complete 10-26..10-31 09:00 = 6.
  P4 g1 by zhangsan 10-26 10:00, deadline 10-28 10:00, open: overdue days 10-29, 10-30, 10-31 = 3.
  P5 g2 by zhouba 9-28 10:00, deadline 9-30 10:00, closed by 孙七 10-02 15:00: overdue days
     complete 10-01 and 10-02 10:00 = 2, both in October.
  g1: opened 3 (P1 P2 P4), on time 1, late 1, overdue at the end 1 (P4);
  g2: opened 1 (P3), on time 0, late 1 (P5), overdue 1 (P3).

Points (check-in day +1, report +1, found +2, closed on time +3, fix rejected −1, overdue day −1,
bad photo −3, wrong count −2):
  张三 19 + 1 (R4) + 2 (P4) + 3 (P1)       = 25   (rank 1 of 5; 1st of 3 in g1)
  李四 18 + 3 (R1 R2 R3) + 2 (P1) − 3       = 20   (2; 2nd in g1)
  王五 9 + 1 (R6) + 2 (P2) − 3 − 2 (R5)     = 7    (5; 3rd in g1)
  孙七 19 + 1 (R7) − 1 (P3 reopened)        = 19   (3; 1st in g2)
  周八 8 + 2 (R8 R9) + 2 (P3)               = 12   (4; 2nd in g2)
  g1: 52 − 1 (P2) − 3 (P4) = 48, 16 per member (rank 1); g2: 31 − 6 (P3) − 2 (P5) = 23, 11.5 (rank 2).
  Street 71 over 5 members = 14.2. September: 张三 22 + 1, 李四 1, 孙七 1, 周八 2 (found P5):
  g1 24/3 = 8, g2 3/2 = 1.5, street 27/5 = 5.4.
  Entries: 73 check-in days + 8 reports + 4 found + 1 on time + 1 rejected + 12 overdue days
  + 2 bad photos + 1 wrong count = 102 rows in 积分明细, summing to 71.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.clock import iso_week
from bot.config_loading import load_config
from bot.store import Store

from tests.support.factories import BASE_CONFIG, write_config

TZ = ZoneInfo("Asia/Shanghai")
MONTH = "2026-10"
PEOPLE = {"zhangsan": ("张三", "g1"), "lisi": ("李四", "g1"), "wangwu": ("王五", "g1"),
          "sunqi": ("孙七", "g2"), "zhouba": ("周八", "g2")}

CAMPAIGN = """
[calendar]
[[calendar.campaigns]]
name = "迎接省级复检"
start = 2026-10-26
end = 2026-11-01
"""
CONFIG = (BASE_CONFIG
          .replace("households = 400", "households = 400\nmonthly_targets = { visit = 30, ads = 120 }")
          .replace("households = 300", "households = 300\nmonthly_targets = { publicity = 150 }")
          + CAMPAIGN)


def day(m: int, d: int) -> date:
    return date(2026, m, d)


def ts(d: date, hh: int, mm: int = 0) -> int:
    return int(datetime(d.year, d.month, d.day, hh, mm, tzinfo=TZ).timestamp())


OCT_WORKDAYS = [day(10, d) for d in (8, 9, 10, 12, 13, 14, 15, 16, 19, 20, 21, 22, 23, 26, 27, 28, 29, 30, 31)]
SEP_WORKDAYS = [day(9, d) for d in (1, 2, 3, 4, 7, 8, 9, 10, 11, 14, 15, 16, 17, 18, 20, 21, 22, 23, 24, 28, 29, 30)]


def report(rid: str, userid: str, d: date, text: str, items, *, flags=(), unconfirmed=False, status="active",
           history=None, corrected_text: str = "") -> dict:
    name, grid = PEOPLE[userid]
    return {"id": rid, "msgid": f"m{rid}", "userid": userid, "name": name, "grid": grid,
            "work_date": d.isoformat(), "sent_at": ts(d, 17), "text": text, "corrected_text": corrected_text,
            "items": [{"category": c, "quantity": q, "unit": u} for c, q, u in items],
            "flags": list(flags), "late": False, "unconfirmed": unconfirmed, "status": status,
            "corrected": bool(corrected_text), "history": history or []}


def checkin(cid: str, userid: str, d: date, *, counted=True, flags=()) -> dict:
    name, grid = PEOPLE[userid]
    return {"id": cid, "msgid": f"m{cid}", "userid": userid, "name": name, "grid": grid, "date": d.isoformat(),
            "time": ts(d, 8), "counted": counted, "flags": list(flags), "reason": "", "file": "", "thumb": "",
            "sha256": cid, "phash": "0" * 16, "location": None, "duplicate_of": None}


def problem(pid: str, grid: str, reporter: str, opened: int, deadline: int, text: str, *, closed_at=None,
            closed_by=None, history=None) -> dict:
    return {"id": pid, "grid": grid, "reporter": reporter, "reporter_name": PEOPLE[reporter][0], "text": text,
            "category": "sanitation", "opened_at": opened, "deadline": deadline,
            "status": "closed" if closed_at else "open", "closed_at": closed_at, "closed_by": closed_by,
            "closed_by_name": PEOPLE[closed_by][0] if closed_by else None, "closed_note": "",
            "closed_without_photo": False, "photos_before": [], "photos_after": [], "location": None,
            "history": history or []}


def entries() -> list[tuple[str, dict, str]]:
    out: list[tuple[str, dict, str]] = []
    n = 0

    def ci(userid: str, days, **kw) -> None:
        nonlocal n
        for d in days:
            n += 1
            out.append(("checkins", checkin(f"C{n}", userid, d, **kw), iso_week(d)))

    ci("zhangsan", OCT_WORKDAYS)
    ci("lisi", [d for d in OCT_WORKDAYS if d != day(10, 30)] + [day(10, 3)])
    ci("lisi", [day(10, 12)], counted=False, flags=["duplicate"])
    ci("wangwu", [day(10, d) for d in (8, 9, 10, 21, 26, 27, 28, 29, 30, 31)])
    ci("wangwu", [day(10, 13)], counted=False, flags=["stale", "no_exif"])
    ci("sunqi", OCT_WORKDAYS)
    ci("zhouba", [day(10, d) for d in (8, 9, 10, 12, 13, 14, 15, 16)])
    ci("zhangsan", SEP_WORKDAYS)

    zhang = {"by": "zhangsan", "by_name": "张三"}
    reports = [
        report("R1", "lisi", day(10, 8), "清理小广告15处,入户走访12户", [("ads", 15, "处"), ("visit", 12, "户")]),
        report("R2", "lisi", day(10, 9), "走访3栋2单元302户、401户", []),
        report("R3", "lisi", day(10, 10), "入户走访3户:3栋2单元302、5栋1单元101、5栋1单元102", [("visit", 3, "户")]),
        report("R4", "zhangsan", day(10, 12), "入户走访20户", [("visit", 20, "户")]),
        report("R5", "wangwu", day(10, 13), "清理小广告5000处", [("ads", 5000, "处")], flags=["implausible"],
               unconfirmed=True, status="withdrawn",
               history=[{"action": "withdraw", **zhang, "at": ts(day(10, 13), 19)}]),
        report("R6", "wangwu", day(10, 14), "清理小广告800处", [("ads", 80, "处")], flags=["implausible"],
               corrected_text="清理小广告80处", history=[
                   {"action": "correct", "by": "wangwu", "by_name": "王五", "at": ts(day(10, 14), 18)},
                   {"action": "confirm", **zhang, "at": ts(day(10, 14), 19)}]),
        report("R7", "sunqi", day(10, 15), "发放宣传资料200份", [("publicity", 200, "份")]),
        report("R8", "zhouba", day(10, 16), "清理小广告3处", [("ads", 3, "处")]),
        report("R9", "zhouba", day(10, 3), "入户走访5户", [("visit", 5, "户")]),
        report("R10", "sunqi", day(10, 20), "入户走访8户", [("visit", 8, "户")], status="withdrawn",
               history=[{"action": "withdraw", "by": "sunqi", "by_name": "孙七", "at": ts(day(10, 20), 18)}]),
        report("R101", "lisi", day(9, 15), "清理小广告30处", [("ads", 30, "处")]),
        report("R102", "zhangsan", day(9, 16), "入户走访40户", [("visit", 40, "户")]),
        report("R103", "sunqi", day(9, 17), "发放宣传资料200份", [("publicity", 200, "份")]),
    ]
    out += [("reports", r, iso_week(date.fromisoformat(r["work_date"]))) for r in reports]

    reopened = {"action": "reopened", "by": "admin", "by_name": "管理员", "at": ts(day(10, 23), 9),
                "note": "现场仍有摊点", "previous": {"closed_at": ts(day(10, 21), 15), "closed_by": "sunqi"}}
    p3 = problem("P3", "g2", "zhouba", ts(day(10, 20), 10), ts(day(10, 25), 9), "和平路流动摊贩占道经营",
                 history=[reopened])
    p3["reopened_at"] = ts(day(10, 23), 9)
    out += [("problems", p, "main") for p in (
        problem("P1", "g1", "lisi", ts(day(10, 9), 10), ts(day(10, 11), 10), "幸福路3号楼下堆放建筑垃圾",
                closed_at=ts(day(10, 10), 16), closed_by="zhangsan"),
        problem("P2", "g1", "wangwu", ts(day(10, 12), 9), ts(day(10, 14), 9), "幸福路5号共享单车乱停放",
                closed_at=ts(day(10, 15), 12), closed_by="lisi"),
        p3,
        problem("P4", "g1", "zhangsan", ts(day(10, 26), 10), ts(day(10, 28), 10), "楼道堆放杂物"),
        problem("P5", "g2", "zhouba", ts(day(9, 28), 10), ts(day(9, 30), 10), "和平路绿化带缺株",
                closed_at=ts(day(10, 2), 15), closed_by="sunqi"),
    )]
    out.append(("leave", {"id": "wangwu", "periods": [{"from": "2026-10-19", "until": "2026-10-23"}],
                          "until": "2026-10-23", "set_by": "wangwu", "at": ts(day(10, 16), 9)}, "main"))
    return out


# --- fixtures (import them into a test module to use them) -----------------------------------

@pytest.fixture
def config_path(tmp_path):
    # Overrides the shared fixture: the harness runs with this month's config.
    return write_config(tmp_path, base=CONFIG)


@pytest.fixture
def cfg(config_path):
    return load_config(config_path)


@pytest.fixture
async def store(cfg):
    s = Store(cfg.data_path)
    s.load(recent_weeks=None)
    await s.start()
    await s.put_many(entries())
    yield s
    await s.close()


def month_end() -> datetime:
    return datetime(2026, 11, 1, tzinfo=TZ)


def after(days: int = 0) -> datetime:
    return month_end() + timedelta(days=days, hours=8, minutes=30)
