"""The daily jobs on a street of many grids: they run on the thread that answers WeCom, so they
must cost O(grids), not O(grids × the week's records). They take who checked in and what was
reported from the store's day index; a job that scans the week's check-ins once per grid (75 s
for a district, every callback waiting) reads thousands of documents here and fails."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, time, timedelta

import pytest

from bot.clock import iso_week
from schedules.reminders import checkin_nudge, daily_reminder, escalation
from schedules.supervise import ladder
from tests.support.factories import write_config
from tests.conftest import TZ

GRIDS = 30  # besides the test config's g1 and g2, each with a grid leader and three members
MON = date(2026, 11, 23)
WED = date(2026, 11, 25)


def many_grids() -> str:
    out = []
    for g in range(3, GRIDS + 3):
        out.append(f'[[grids]]\nid = "g{g}"\nname = "{g}号网格"\ncommunity = "heping"\n'
                   f'robot_webhook = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k{g}"\n')
        for p in range(4):
            role = "grid_leader" if p == 0 else "member"
            out.append(f'[[people]]\nuserid = "u{g}_{p}"\nname = "网格员{g}-{p}"\nrole = "{role}"\ngrid = "g{g}"\n')
    return "\n".join(out)


@pytest.fixture
def config_path(tmp_path):
    return write_config(tmp_path, many_grids())


def absent(userid: str, day: date) -> bool:
    # Member 3 of every new grid has not checked in since Tuesday, lisi not today; everyone else
    # every workday.
    return (userid.endswith("_3") and day >= date(2026, 11, 24)) or (userid == "lisi" and day == WED)


async def fill_week(bot) -> None:
    entries = []
    people = [p for p in bot.config.people if p.grid]
    for day in (MON + timedelta(days=i) for i in range(3)):
        stamp = int(datetime.combine(day, time(8), TZ).timestamp())
        for p in people:
            n = len(entries)
            if not absent(p.userid, day):
                entries.append(("checkins", {"id": f"C{n}", "msgid": f"mc{n}", "userid": p.userid, "name": p.name,
                                             "grid": p.grid, "date": day.isoformat(), "time": stamp,
                                             "counted": True, "flags": []}, iso_week(day)))
            for k in range(3):
                entries.append(("reports", {"id": f"R{n}_{k}", "msgid": f"mr{n}_{k}", "userid": p.userid,
                                            "name": p.name, "grid": p.grid, "work_date": day.isoformat(),
                                            "sent_at": stamp + 3600, "text": "清理小广告5处", "status": "active",
                                            "unconfirmed": False, "flags": [], "history": [],
                                            "items": [{"category": "ads", "quantity": 5.0, "unit": "处"}]},
                                iso_week(day)))
    await bot.store.put_many(entries)


def count_reads(monkeypatch, store) -> Counter:
    """Documents of each table the store hands out through its scanning calls."""
    seen: Counter = Counter()
    docs, docs_by = store.docs, store.docs_by

    def counting_docs(table, shards=None):
        for d in docs(table, shards):
            seen[table] += 1
            yield d

    def counting_docs_by(table, field, value, shards):
        out = docs_by(table, field, value, shards)
        seen[table] += len(out)
        return out

    monkeypatch.setattr(store, "docs", counting_docs)
    monkeypatch.setattr(store, "docs_by", counting_docs_by)
    return seen


@pytest.mark.parametrize("job, at", [
    (checkin_nudge, datetime(2026, 11, 25, 17, 0, tzinfo=TZ)),
    (escalation, datetime(2026, 11, 25, 20, 30, tzinfo=TZ)),
    (daily_reminder, datetime(2026, 11, 25, 8, 30, tzinfo=TZ)),
    (ladder, datetime(2026, 11, 25, 21, 0, tzinfo=TZ)),
])
async def test_a_daily_job_reads_no_week_of_records_per_grid(harness, monkeypatch, job, at):
    await fill_week(harness.bot)
    seen = count_reads(monkeypatch, harness.store)
    result = await job(harness.bot, at)
    assert result and "不是工作日" not in result
    assert seen["checkins"] == 0 and seen["reports"] == 0, dict(seen)
    await harness.settle()


async def test_the_nudge_still_names_exactly_who_is_missing(harness):
    await fill_week(harness.bot)
    # lisi had checked in, but that photo turned out to be a duplicate: no longer counted.
    harness.clock.set(datetime(2026, 11, 25, 17, 0, tzinfo=TZ))
    lisi = {"id": "C-lisi", "msgid": "m-lisi", "userid": "lisi", "name": "李四", "grid": "g1",
            "date": WED.isoformat(), "time": 0, "counted": True, "flags": []}
    await harness.store.put("checkins", lisi, shard=iso_week(WED))
    await harness.store.put("checkins", {**lisi, "counted": False, "flags": ["duplicate"]})
    result = await checkin_nudge(harness.bot, harness.clock.now())
    await harness.settle()
    assert result == f"已在{GRIDS + 1}个网格群提醒{GRIDS + 1}人打卡。"
    assert [p["mentioned"] for p in harness.pushes("g1")] == [["lisi"]]
    assert [p["mentioned"] for p in harness.pushes("g7")] == [["u7_3"]]
    assert harness.pushes("g2") == []


async def test_the_morning_reminder_sums_yesterdays_reports_per_grid(harness):
    await fill_week(harness.bot)
    await daily_reminder(harness.bot, datetime(2026, 11, 25, 8, 30, tzinfo=TZ))
    await harness.settle()
    g7 = harness.pushes("g7")[-1]["content"]
    # Four people, three reports of 5 each; three of the four checked in on Tuesday.
    assert "昨日(11月24日)本网格:上报12条,小广告清理 60处;打卡 3/4人" in g7
