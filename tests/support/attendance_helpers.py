"""Records inserted straight into the store (the check-in and report handlers are tested apart)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.clock import iso_week
from bot.config_loading import load_config

TZ = ZoneInfo("Asia/Shanghai")


def at(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=TZ)


async def checkin(bot, userid: str, day: date, *, counted: bool = True, hour: int = 8) -> dict:
    person = bot.config.person(userid)
    cid = await bot.store.next_id("C")
    ts = int(datetime.combine(day, time(hour, 0), TZ).timestamp())
    doc = {"id": cid, "msgid": f"m-{cid}", "userid": userid, "name": person.name, "grid": person.grid,
           "date": day.isoformat(), "time": ts, "counted": counted,
           "flags": [] if counted else ["duplicate"], "reason": "" if counted else "疑似重复照片",
           "file": f"photos/{cid}.jpg", "thumb": f"photos/{cid}_t.jpg", "sha256": cid, "phash": "0" * 16,
           "exif_time": None, "gps": None, "width": 800, "height": 600, "location": None,
           "duplicate_of": None}
    await bot.store.put("checkins", doc, shard=iso_week(day))
    return doc


async def checkins(bot, userids, days) -> None:
    for d in days:
        for u in userids:
            await checkin(bot, u, d)


async def report(bot, userid: str, day: date, items: list[tuple[str, float, str]], *,
                 status: str = "active", unconfirmed: bool = False) -> dict:
    person = bot.config.person(userid)
    rid = await bot.store.next_id("R")
    doc = {"id": rid, "msgid": f"m-{rid}", "userid": userid, "name": person.name, "grid": person.grid,
           "work_date": day.isoformat(),
           "sent_at": int(datetime.combine(day, time(12, 0), TZ).timestamp()),
           "text": "", "items": [{"category": c, "quantity": q, "unit": u} for c, q, u in items],
           "flags": [], "late": False, "unconfirmed": unconfirmed, "status": status,
           "corrected": False, "history": []}
    await bot.store.put("reports", doc, shard=iso_week(day))
    return doc


async def problem(bot, grid: str, text: str, *, opened: datetime, deadline: datetime,
                  status: str = "open") -> dict:
    pid = await bot.store.next_id("P")
    doc = {"id": pid, "grid": grid, "reporter": "lisi", "reporter_name": "李四", "text": text,
           "category": None, "opened_at": int(opened.timestamp()), "deadline": int(deadline.timestamp()),
           "status": status, "closed_at": None, "closed_by": None, "closed_note": "",
           "closed_without_photo": False, "photos_before": [], "photos_after": [], "location": None,
           "history": []}
    await bot.store.put("problems", doc)
    return doc


def use_config(harness, folder: Path, text: str, name: str = "alt.toml") -> None:
    """Swap the running bot's config (as a hot reload would) without touching config.toml."""
    path = folder / name
    path.write_text(text, encoding="utf-8")
    harness.runtime.apply_config(load_config(path))


def week_days(monday: date, n: int = 5) -> list[date]:
    return [monday + timedelta(days=i) for i in range(n)]
