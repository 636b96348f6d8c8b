"""A hand-computed week (2026-W48, Mon 11-23 … Sun 11-29, five workdays) for the digest and
ledger tests, written straight into the store with the shared record schemas.

Check-in days (counted, on workdays) over expected days (workdays not on leave), as the tally counts:
  g1 张三 zhangsan  Mon–Fri                      5/5 = 1.0
  g1 李四 lisi      Mon Tue Wed (+Wed again, Sat, a stale Thu photo not counted)  3/5 = 0.6, missing Thu–Fri (2)
  g1 王五 wangwu    Mon (Tue duplicate, not counted)  1/5 = 0.2, missing Tue–Fri (4)  → listed
  g2 孙七 sunqi     Mon–Thu                        4/5 = 0.8
  g2 周八 zhouba    none, on leave Wed–Fri          0/2 = 0.0, missing Mon–Tue (2)   → not listed
  Rates pool the days: g1 (5 + 3 + 1) / 15 = 0.6, g2 (4 + 0) / (5 + 2) = 4/7 ≈ 0.571,
  street 13 / 22 ≈ 0.591.
Previous week: only zhangsan checked in (5 days): g1 5/15, g2 0, street 5/25 = 0.2.

Reports counted: g1 ads 15+27 = 42 处, visit 12+20 = 32 户 (3 reports); g2 publicity 200 份,
ads 3 处 (2 reports). Not counted: R4 (implausible, unconfirmed), R5 (withdrawn).
Previous week: g1 ads 30 处, visit 40 户; g2 publicity 200 份.

Problems: P1 g1 overdue since Wed 10:00; P2 g1 open, due 12-01; P3 g1 closed Thu by 张三;
P4 g2 overdue since Thu; P5 g1 opened and closed the week before (not in this week).
"""

from __future__ import annotations

import io
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from PIL import Image

from bot.config_loading import load_config
from bot.store import Store

from tests.support.factories import BASE_CONFIG, write_config

TZ = ZoneInfo("Asia/Shanghai")
WEEK = "2026-W48"
PREV = "2026-W47"
MON = date(2026, 11, 23)

# Grid 1 gets weekly targets: visit is behind (32/50), ads is met (42/40).
CONFIG = BASE_CONFIG.replace("households = 400", "households = 400\ntargets = { visit = 50, ads = 40 }")

PEOPLE = {"zhangsan": ("张三", "g1"), "lisi": ("李四", "g1"), "wangwu": ("王五", "g1"),
          "sunqi": ("孙七", "g2"), "zhouba": ("周八", "g2")}


def ts(day: date, hh: int, mm: int = 0) -> int:
    return int(datetime(day.year, day.month, day.day, hh, mm, tzinfo=TZ).timestamp())


def d(offset: int, base: date = MON) -> date:
    from datetime import timedelta
    return base + timedelta(days=offset)


def report(rid: str, userid: str, day: date, text: str, items: list[tuple[str, float, str]], *,
           flags=(), unconfirmed=False, status="active", history=None, corrected=False) -> dict:
    name, grid = PEOPLE[userid]
    return {"id": rid, "msgid": f"m{rid}", "userid": userid, "name": name, "grid": grid,
            "work_date": day.isoformat(), "sent_at": ts(day, 17), "text": text,
            "items": [{"category": c, "quantity": q, "unit": u} for c, q, u in items],
            "flags": list(flags), "late": False, "unconfirmed": unconfirmed, "status": status,
            "corrected": corrected, "history": history or []}


def checkin(cid: str, userid: str, day: date, hh: int = 8, *, counted=True, flags=(), reason="",
            file: str | None = None) -> dict:
    name, grid = PEOPLE[userid]
    rel = file if file is not None else f"media/{WEEK}/{grid}/{day.isoformat()}_checkin_{userid}_{cid.lower()}.jpg"
    return {"id": cid, "msgid": f"m{cid}", "userid": userid, "name": name, "grid": grid,
            "date": day.isoformat(), "time": ts(day, hh), "counted": counted, "flags": list(flags),
            "reason": reason, "file": rel, "thumb": rel.replace(".jpg", ".thumb.jpg"), "sha256": cid,
            "phash": "0" * 16, "exif_time": None, "gps": None, "width": 64, "height": 48,
            "location": {"lat": 30.27, "lng": 120.15, "label": "幸福路3号"} if userid == "lisi" else None,
            "duplicate_of": None}


def problem(pid: str, grid: str, opened: int, deadline: int, text: str, *, closed_at: int | None = None,
            closed_by: str | None = None, photos_before=(), photos_after=()) -> dict:
    return {"id": pid, "grid": grid, "reporter": "lisi", "reporter_name": "李四", "text": text,
            "category": "sanitation", "opened_at": opened, "deadline": deadline,
            "status": "closed" if closed_at else "open", "closed_at": closed_at, "closed_by": closed_by,
            "closed_note": "已清理完毕" if closed_at else "", "closed_without_photo": False,
            "photos_before": list(photos_before), "photos_after": list(photos_after), "location": None,
            "history": []}


def week_entries() -> list[tuple[str, dict, str]]:
    e: list[tuple[str, dict, str]] = []
    n = 0

    def ci(userid, day, **kw):
        nonlocal n
        n += 1
        doc = checkin(f"C{n}", userid, day, **kw)
        e.append(("checkins", doc, WEEK if day >= MON else PREV))

    for i in range(5):
        ci("zhangsan", d(i))
    for i in (0, 1, 2):
        ci("lisi", d(i))
    ci("lisi", d(2), hh=15)  # a second photo the same day: still one day
    ci("lisi", d(5))  # Saturday: not a workday, not in the rate
    ci("lisi", d(3), counted=False, flags=["stale"], reason="照片拍摄于3天前")
    ci("wangwu", d(0))
    ci("wangwu", d(1), counted=False, flags=["duplicate"], reason="与李四的打卡照片相同")
    for i in range(4):
        ci("sunqi", d(i))
    for i in range(5):
        ci("zhangsan", d(i - 7))  # the week before

    reports = [
        report("R1", "lisi", d(0), "清理小广告15处,入户走访12户", [("ads", 15, "处"), ("visit", 12, "户")]),
        report("R2", "lisi", d(1), "清理小广告27处", [("ads", 27, "处")], corrected=True, history=[
            {"action": "correct", "by": "lisi", "by_name": "李四", "at": ts(d(1), 18),
             "before": {"items": [{"category": "ads", "quantity": 72, "unit": "处"}], "text": "清理小广告72处",
                        "status": "active"}}]),
        report("R3", "zhangsan", d(2), "入户走访20户", [("visit", 20, "户")]),
        report("R4", "wangwu", d(3), "清理小广告5000处", [("ads", 5000, "处")], flags=["implausible"],
               unconfirmed=True),
        report("R5", "wangwu", d(4), "入户走访8户", [("visit", 8, "户")], status="withdrawn"),
        report("R6", "sunqi", d(1), "发放宣传资料200份", [("publicity", 200, "份")]),
        report("R7", "zhouba", d(0), "清理小广告3处", [("ads", 3, "处")]),
    ]
    e += [("reports", r, WEEK) for r in reports]
    prev = [
        report("R101", "lisi", d(-6), "清理小广告30处", [("ads", 30, "处")]),
        report("R102", "zhangsan", d(-5), "入户走访40户", [("visit", 40, "户")]),
        report("R103", "sunqi", d(-4), "发放宣传资料200份", [("publicity", 200, "份")]),
    ]
    e += [("reports", r, PREV) for r in prev]

    e += [("problems", p, "main") for p in (
        problem("P1", "g1", ts(d(0), 10), ts(d(2), 10), "幸福路3号楼下堆放建筑垃圾",
                photos_before=[f"media/{WEEK}/g1/2026-11-23_problem_lisi_aaaaaaaaaaaa.jpg"]),
        problem("P2", "g1", ts(d(1), 9), ts(d(8), 9), "幸福路5号共享单车乱停放"),
        problem("P3", "g1", ts(d(0), 11), ts(d(2), 11), "楼道堆放杂物", closed_at=ts(d(3), 16), closed_by="zhangsan",
                photos_after=[f"media/{WEEK}/g1/2026-11-26_rectify_zhangsan_bbbbbbbbbbbb.jpg"]),
        problem("P4", "g2", ts(d(2), 9), ts(d(3), 9), "和平路流动摊贩占道经营"),
        problem("P5", "g1", ts(d(-6), 9), ts(d(-4), 9), "上周的问题", closed_at=ts(d(-5), 9), closed_by="zhangsan"),
    )]
    # 周八 asked for leave on Wednesday until Friday.
    e.append(("leave", {"id": "zhouba", "until": d(4).isoformat(), "set_by": "zhouba", "at": ts(d(2), 8)}, "main"))
    return e


def jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 120, 40)).save(buf, "JPEG")
    return buf.getvalue()


def write_photos(data_dir: Path, entries: list[tuple[str, dict, str]], skip: set[str] = frozenset()) -> list[str]:
    """Create the photo files the week's records point to (except `skip` ids); returns their paths."""
    made = []
    for table, doc, _ in entries:
        paths = []
        if table == "checkins" and doc["id"] not in skip and doc["date"] >= MON.isoformat():
            paths = [doc["file"]]
        elif table == "problems" and doc["id"] not in skip:
            paths = doc["photos_before"] + doc["photos_after"]
        for rel in paths:
            f = data_dir / rel
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_bytes(jpeg())
            made.append(rel)
    return made


def rows(ws) -> list[dict]:
    """A ledger sheet's rows, each keyed by the header row."""
    it = ws.iter_rows(values_only=True)
    header = next(it)
    return [dict(zip(header, r)) for r in it]


# --- fixtures shared by the digest and ledger tests (imported by both) -----------------------

@pytest.fixture
def config_path(tmp_path):
    # Overrides the shared fixture so the harness runs with this week's config (grid targets too).
    return write_config(tmp_path, base=CONFIG)


@pytest.fixture
def cfg(config_path):
    return load_config(config_path)


@pytest.fixture
async def store(cfg):
    s = Store(cfg.data_path)
    s.load()
    await s.start()
    await s.put_many(week_entries())
    yield s
    await s.close()
