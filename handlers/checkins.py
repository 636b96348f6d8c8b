"""Photo check-ins (拍照打卡): download, fingerprint, check the evidence, store, reply.

Rules (times are the message's CreateTime, never when it was processed):
- the same or a near-identical photo used by anyone within `[checkin] duplicate_days` → not counted;
- EXIF capture time older than `max_photo_age_hours` → not counted; no EXIF → counted, flagged;
- outside the check-in window → counted, marked 非工作时段;
- a location (photo GPS, a location message or WeCom's location event within `location_minutes`)
  outside the grid's geofence → counted, flagged 网格外, and the grid leader is told.
Photos that belong to a problem report are taken by the problems router before this one.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

from bot.clock import CLOCK_SLACK, iso_week, zh_date
from bot.config import Config, Grid
from bot.context import Context
from bot.router import Router
from bot.events import AppEvent, ImageMessage, LocationMessage
from bot.photos.checks import check_photo
from bot.photos.intake import read_photo
from bot.photos.files import save_photo
from bot.photos.media_store import media_for
from bot.photos.geo import FenceResult, check_fence, wgs84_to_gcj02
from bot.photos.hashing import hex64
from bot.workdays import is_workday

# Phone clocks drift; a few minutes ahead is not a forged date.
FUTURE_SLACK = timedelta(minutes=10)

router = Router("checkins")

TABLE = "checkins"
NO_GRID = "照片已收到。您没有分配到网格,拍照打卡只统计网格员;如需登记问题,请发送“问题:…”。"


def hm(dt: datetime) -> str:
    return dt.strftime("%H:%M")


def in_window(t: time, start: time, end: time) -> bool:
    if start <= end:
        return start <= t < end
    return t >= start or t < end  # a window across midnight


def fence_of(cfg: Config, grid_id: str | None):
    grid = cfg.grid(grid_id)
    return (grid, grid.geofence) if grid is not None and grid.geofence is not None else (grid, None)


def place_check(cfg: Config, grid_id: str | None, lat: float, lng: float) -> FenceResult | None:
    """Where a GCJ-02 point lies relative to the grid's geofence; None when the grid has none."""
    _grid, fence = fence_of(cfg, grid_id)
    return check_fence(fence, lat, lng) if fence is not None else None


def outside_text(grid: Grid | None, result: FenceResult) -> str:
    name = grid.name if grid else "本网格"
    far = f"(距网格中心约{round(result.from_centre_m)}米)" if result.from_centre_m is not None else ""
    return f"不在{name}范围内{far}"


def tell_leaders(ctx: Context, doc: dict, where: str) -> None:
    for leader in ctx.config.grid_leaders(doc.get("grid") or ""):
        if leader.userid != doc["userid"]:
            at = ctx.clock.from_timestamp(doc["time"])
            ctx.transport.send_text(leader.userid, f"【网格外打卡】{doc['name']} {zh_date(at)} {hm(at)} 的打卡 #{doc['id']} "
                                                   f"位置{where},已标记网格外(仍计入),请核实。")


def grid_today(ctx: Context, grid_id: str, day: str, week: str) -> tuple[int, int]:
    members = {p.userid for p in ctx.config.grid_members(grid_id)}
    done = {c["userid"] for c in ctx.store.docs_by(TABLE, "grid", grid_id, [week])
            if c.get("date") == day and c.get("counted")}
    return len(done & members), len(members)


def week_count(ctx: Context, userid: str, week: str) -> int:
    return sum(1 for c in ctx.store.docs_by(TABLE, "userid", userid, [week]) if c.get("counted"))


@router.on(ImageMessage)
async def on_photo(event: ImageMessage, ctx: Context) -> None:
    cfg, person = ctx.config, ctx.person
    if not person.grid:
        ctx.reply(NO_GRID)
        return
    sent = ctx.sent_at
    day = sent.date()
    week = iso_week(day)
    if any(c.get("msgid") == event.key for c in ctx.store.docs_by(TABLE, "userid", person.userid, [week])):
        return  # handled before a restart; the inbox replays it: never a second record
    got = await read_photo(ctx)
    if got is None:
        return
    photo, facts = got
    # The file does not depend on the verdict: write it before taking the lock.
    rel, thumb = await save_photo(media_for(cfg), day, person.grid, person.userid, photo, "checkin")
    rules = cfg.checkin
    reasons: dict[str, str] = {}  # flag → why, in the order found
    async with check_photo(ctx.bot, sent, facts.hashes, key=event.key, userid=person.userid, name=person.name,
                           new_id=lambda: ctx.store.next_id("C")) as check:
        match = check.match
        if match:
            who = match.name or "他人"
            reasons["duplicate"] = f"疑似重复照片,与 {zh_date(ctx.clock.from_timestamp(match.time))} {who} 的打卡相同"
        if facts.exif_time is None:
            reasons["no_exif"] = "照片没有拍摄时间信息"
        elif facts.exif_time < sent - timedelta(hours=rules.max_photo_age_hours):
            reasons["stale"] = (f"旧照片,拍摄于{zh_date(facts.exif_time)} {hm(facts.exif_time)},"
                                f"超过{rules.max_photo_age_hours:g}小时")
        elif facts.exif_time > sent + FUTURE_SLACK:
            # A photo "taken" after it was sent: an edited date or a phone clock set wrong.
            # Treated like a stale photo: the time it claims cannot be trusted.
            reasons["stale"] = (f"照片的拍摄时间({zh_date(facts.exif_time)} {hm(facts.exif_time)})"
                                f"晚于发送时间,无法确认是现场拍摄")
        if not in_window(sent.time(), rules.window_start, rules.window_end):
            reasons["offhours"] = "非工作时段"
        fence = None
        if facts.gps is not None:
            fence = place_check(cfg, person.grid, *wgs84_to_gcj02(*facts.gps))
            if fence is not None and not fence.inside:
                reasons["outside"] = "网格外(照片定位)"
        flags = list(reasons)
        counted = "duplicate" not in flags and "stale" not in flags
        cid = check.checkin
        doc = {
            "id": cid, "msgid": event.key, "userid": person.userid, "name": person.name,
            "grid": person.grid, "date": day.isoformat(), "time": ctx.event.create_time,
            "counted": counted, "flags": flags, "reason": ";".join(reasons.values()),
            "file": rel, "thumb": thumb, "sha256": photo.sha256,
            "phash": hex64(facts.phash), "phash_crops": [hex64(h) for h in facts.hashes[1:]],
            "exif_time": facts.exif_time.isoformat() if facts.exif_time else None,
            "gps": {"lat": facts.gps[0], "lng": facts.gps[1]} if facts.gps else None,
            "width": photo.width, "height": photo.height, "location": None,
            "duplicate_of": match.key if match else None,
            "duplicate_distance": match.distance if match else None,
        }
        await ctx.store.put(TABLE, doc, shard=week)
    if not counted:
        why = ";".join(reasons[f] for f in ("duplicate", "stale") if f in reasons)
        ctx.reply(f"{why},本次不计入。请在现场拍摄新照片后发送。")
        return
    done, total = grid_today(ctx, person.grid, doc["date"], week)
    rest_day = not is_workday(sent.date(), cfg.calendar)
    # A rest-day check-in is kept and shown in the weekly tally, but never in the rate.
    note = "(休息日,不计入打卡率)" if rest_day else "(非工作时段)" if "offhours" in flags else ""
    head = f"打卡成功 {hm(sent)}{note}"
    head += f" · 本周第{week_count(ctx, person.userid, week)}次 · 今日本网格已打卡 {done}/{total}"
    lines = [head]
    grid, grid_fence = fence_of(cfg, person.grid)
    if fence is not None and not fence.inside:
        where = outside_text(grid, fence)
        lines.append(f"⚠ 照片定位{where},已标记网格外(仍计入),已告知网格长。")
        tell_leaders(ctx, doc, where)
    elif grid_fence is not None and fence is None:
        lines.append(f"可在{rules.location_minutes}分钟内发送位置,记入本次打卡。")
    ctx.reply("\n".join(lines))


# --- locations that follow a photo ----------------------------------------------------

def latest_checkin(ctx: Context, at: datetime) -> dict | None:
    window = ctx.config.checkin.location_minutes * 60
    ts = at.timestamp()
    weeks = {iso_week(at.date()), iso_week((at - timedelta(seconds=window)).date())}
    mine = [c for c in ctx.store.docs_by(TABLE, "userid", ctx.person.userid, sorted(weeks))
            if ts - window <= c.get("time", 0) <= ts + CLOCK_SLACK]
    return max(mine, key=lambda c: (c["time"], int(c["id"][1:]) if c["id"][1:].isdigit() else 0), default=None)


async def attach_location(ctx: Context, lat: float, lng: float, label: str, *, explicit: bool) -> None:
    cfg = ctx.config
    doc = latest_checkin(ctx, ctx.sent_at)
    if doc is None:
        if explicit:
            ctx.reply(f"已收到位置。位置需在拍照打卡后{cfg.checkin.location_minutes}分钟内发送才会记入打卡,"
                      "请先拍照打卡。")
        return
    if not explicit and doc.get("location"):
        return  # WeCom reports the position every few seconds: the first one, or the person's own, stands
    result = place_check(cfg, doc.get("grid"), lat, lng)
    was_outside = "outside" in doc.get("flags", [])
    now_outside = result is not None and not result.inside
    flags = [f for f in doc.get("flags", []) if f != "outside"] + (["outside"] if now_outside else [])
    reasons = [r for r in (doc.get("reason") or "").split(";") if r and not r.startswith("网格外")]
    reasons += ["网格外(发送的位置)"] if now_outside else []
    location = {"lat": lat, "lng": lng, "label": label}
    await ctx.store.put(TABLE, {**doc, "location": location, "flags": flags, "reason": ";".join(reasons)})
    at = ctx.clock.from_timestamp(doc["time"])
    grid, _fence = fence_of(cfg, doc.get("grid"))
    if now_outside:
        where = outside_text(grid, result)  # type: ignore[arg-type]
        ctx.reply(f"已记录打卡位置(#{doc['id']} {hm(at)})。⚠ 该位置{where},已标记网格外(仍计入),已告知网格长。")
        if not was_outside:
            tell_leaders(ctx, doc, where)
    elif explicit:
        ctx.reply(f"已记录打卡位置(#{doc['id']} {hm(at)})" + (f":{label}" if label else "") + "。")


@router.on(LocationMessage)
async def on_location(event: LocationMessage, ctx: Context) -> None:
    await attach_location(ctx, event.lat, event.lng, event.label, explicit=True)


@router.on(AppEvent, filter=lambda e, ctx: e.event == "location" and e.lat is not None and e.lng is not None)
async def on_location_event(event: AppEvent, ctx: Context) -> None:
    await attach_location(ctx, float(event.lat), float(event.lng), "", explicit=False)  # type: ignore[arg-type]
