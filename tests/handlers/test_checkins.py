"""Photo check-ins through the real callback: each evidence rule as a grid worker meets it."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from PIL import Image

from tests.support.factories import BASE_CONFIG, write_config
from tests.support.photo_samples import cropped, jpeg, png_claiming, reencode, resized, scene, screenshot

from bot.config import CheckinSection
from bot.events import event_from_dict
from bot.photos import files as photo_files
from bot.photos.geo import wgs84_to_gcj02
from bot.photos.hashing import CROPS
from bot.stats import compute_stats

TZ = ZoneInfo("Asia/Shanghai")
TODAY = datetime(2026, 11, 25, 9, 30, tzinfo=TZ)  # the harness clock's start
# 1号网格: a 500 m circle; 2号网格: a square drawn on the map (GCJ-02, as WeCom locations are).
G1_CENTRE = (39.9100, 116.4000)
G2_SQUARE = [(31.2300, 121.4700), (31.2300, 121.4800), (31.2400, 121.4800), (31.2400, 121.4700)]
GEO_CONFIG = BASE_CONFIG.replace(
    "households = 400\n",
    f"households = 400\ngeofence = {{ lat = {G1_CENTRE[0]}, lng = {G1_CENTRE[1]}, radius_m = 500 }}\n",
).replace(
    "households = 300\n",
    "households = 300\ngeofence = { polygon = [" + ", ".join(f"[{a}, {b}]" for a, b in G2_SQUARE) + "] }\n",
)


@pytest.fixture
def config_path(tmp_path) -> Path:
    return write_config(tmp_path, base=GEO_CONFIG)


@pytest.fixture(autouse=True)
def quick_retry(monkeypatch):
    monkeypatch.setattr(photo_files, "RETRY_DELAY", 0.0)


def photo(seed: int, taken: datetime | None = None, **kw) -> bytes:
    return jpeg(scene(seed), taken=taken, **kw)


def fresh(seed: int, minutes_ago: int = 20) -> bytes:
    """A photo taken just now, on site."""
    return photo(seed, TODAY - timedelta(minutes=minutes_ago))


def checkins(harness) -> list[dict]:
    return sorted(harness.store.docs("checkins"), key=lambda c: int(c["id"][1:]))


def set_rules(harness, **rules) -> None:
    cfg = harness.bot.config
    harness.runtime.apply_config(cfg.model_copy(update={"checkin": CheckinSection(**rules)}))


def stats(harness) -> dict:
    return compute_stats(harness.store, harness.bot.config)


# --- counted check-ins ----------------------------------------------------------------

async def test_checkin_counts_with_week_total_and_grid_progress(harness):
    data = photo(1, taken=datetime(2026, 11, 25, 8, 50))
    assert await harness.image("lisi", data) == 200
    reply = harness.last_reply("lisi")
    assert reply.startswith("打卡成功 09:30 · 本周第1次 · 今日本网格已打卡 1/3")
    assert "发送位置" in reply  # the grid has a geofence and the photo no location yet

    [c] = checkins(harness)
    assert c["id"] == "C1" and c["userid"] == "lisi" and c["name"] == "李四" and c["grid"] == "g1"
    assert c["counted"] is True and c["flags"] == [] and c["date"] == "2026-11-25"
    assert c["time"] == int(TODAY.timestamp())
    assert c["exif_time"] == "2026-11-25T08:50:00+08:00"
    assert (c["width"], c["height"]) == (1200, 900)
    assert c["sha256"] == hashlib.sha256(data).hexdigest()
    assert len(c["phash"]) == 16 and len(c["phash_crops"]) == len(CROPS)
    assert c["gps"] is None and c["location"] is None and c["duplicate_of"] is None
    root = harness.bot.config.data_path
    assert c["file"] == f"media/2026-W48/g1/2026-11-25_checkin_lisi_{c['sha256'][:12]}.jpg"
    assert (root / c["file"]).read_bytes() == data
    thumb = Image.open(root / c["thumb"])
    assert max(thumb.size) == 480

    await harness.image("wangwu", fresh(2))
    assert harness.last_reply("wangwu").startswith("打卡成功 09:30 · 本周第1次 · 今日本网格已打卡 2/3")
    harness.clock.set(datetime(2026, 11, 25, 11, 5, tzinfo=TZ))
    await harness.image("lisi", photo(3, taken=datetime(2026, 11, 25, 11, 0)))
    assert harness.last_reply("lisi").startswith("打卡成功 11:05 · 本周第2次 · 今日本网格已打卡 2/3")
    harness.clock.set(datetime(2026, 11, 26, 9, 0, tzinfo=TZ))
    await harness.image("lisi", photo(4, taken=datetime(2026, 11, 26, 8, 55)))
    assert harness.last_reply("lisi").startswith("打卡成功 09:00 · 本周第3次 · 今日本网格已打卡 1/3")
    assert stats(harness)["checkins"] == 4


async def test_file_name_comes_from_content_not_from_the_sender(harness):
    data = fresh(5)
    mid = harness.emulator._store_media(data, "../../../etc/passwd.jpg", "image/jpeg")
    await harness.send("lisi", "image", {"PicUrl": "", "MediaId": mid})
    [c] = checkins(harness)
    assert "passwd" not in c["file"] and ".." not in c["file"]
    assert (harness.bot.config.data_path / c["file"]).exists()


async def test_person_without_a_grid_is_told_and_nothing_is_counted(harness):
    await harness.image("qian", fresh(6))
    assert "没有分配到网格" in harness.last_reply("qian")
    assert checkins(harness) == []


# --- duplicates -----------------------------------------------------------------------

async def test_copies_of_a_photo_are_flagged_as_duplicates_and_not_counted(harness):
    original = fresh(10)
    await harness.image("lisi", original)
    assert harness.last_reply("lisi").startswith("打卡成功")
    root = harness.bot.config.data_path
    thumb = root / checkins(harness)[0]["thumb"]
    made = thumb.stat().st_mtime_ns

    copies = [("wangwu", reencode(original, 55)), ("zhangsan", resized(original, 0.5)),
              ("wangwu", cropped(original, 0.04, 0.03, 0.05, 0.02)),
              ("zhouba", screenshot(original)),  # another grid: "used by anyone"
              ("lisi", original)]  # the very same file again
    for who, data in copies:
        await harness.image(who, data)
        reply = harness.last_reply(who)
        assert reply.startswith("疑似重复照片,与 11月25日 李四 的打卡相同"), reply
        assert "重复" in reply and "不计入" in reply

    await harness.image("wangwu", fresh(11))
    assert harness.last_reply("wangwu").startswith("打卡成功 09:30 · 本周第1次 · 今日本网格已打卡 2/3")

    docs = checkins(harness)
    dups = [c for c in docs if "duplicate" in c["flags"]]
    assert len(dups) == 5
    for c in dups:
        assert c["counted"] is False and c["duplicate_of"] == "C1"
        assert "疑似重复照片" in c["reason"]
        assert (root / c["file"]).exists()  # flagged photos are kept as evidence
    assert docs[-1]["file"] != docs[0]["file"]
    assert dups[-1]["file"] == docs[0]["file"]  # the same bytes are stored once
    assert thumb.stat().st_mtime_ns == made  # and thumbnailed once
    s = stats(harness)
    assert (s["checkins"], s["duplicates"]) == (2, 5)


async def test_same_photo_sent_by_two_people_at_once_counts_once(harness, monkeypatch):
    store = harness.store
    real_put = store.put

    async def slow_put(table, doc, shard=None):
        if table == "checkins":
            await asyncio.sleep(0.3)  # a slow disk: the other message arrives meanwhile
        return await real_put(table, doc, shard)
    monkeypatch.setattr(store, "put", slow_put)
    original = fresh(12)
    await asyncio.gather(harness.image("lisi", original, settle=False),
                         harness.image("wangwu", reencode(original), settle=False))
    await harness.settle()
    docs = checkins(harness)
    assert len(docs) == 2
    assert sorted(c["counted"] for c in docs) == [False, True]


async def test_duplicate_window_is_ninety_days_and_survives_a_restart(harness):
    old, recent = photo(20), photo(21)
    harness.clock.set(datetime(2026, 8, 20, 10, 0, tzinfo=TZ))  # 97 days before
    await harness.image("lisi", old)
    harness.clock.set(datetime(2026, 8, 28, 10, 0, tzinfo=TZ))  # 89 days before
    await harness.image("lisi", recent)
    harness.clock.set(TODAY)

    await harness.image("wangwu", reencode(old))
    assert harness.last_reply("wangwu").startswith("打卡成功")
    await harness.image("wangwu", reencode(recent))
    assert harness.last_reply("wangwu").startswith("疑似重复照片,与 8月28日 李四 的打卡相同")

    # A restarted bot has no index in memory: it is built again from the stored check-ins.
    harness.bot.photo_index = None
    await harness.image("zhangsan", cropped(recent, 0.0, 0.05, 0.05, 0.0))
    assert "重复" in harness.last_reply("zhangsan")


async def test_duplicate_distance_is_configurable(harness):
    set_rules(harness, duplicate_distance=0)
    original = fresh(13)
    await harness.image("lisi", original)
    await harness.image("wangwu", cropped(original, 0.05, 0.05, 0.05, 0.05))
    assert harness.last_reply("wangwu").startswith("打卡成功")  # no longer "near-identical" enough
    await harness.image("zhangsan", original)
    assert "重复" in harness.last_reply("zhangsan")


async def test_replayed_message_makes_no_second_record(harness):
    await harness.image("lisi", fresh(14), msgid="7001")
    await harness.image("lisi", fresh(14), msgid="7001")  # WeCom retrying the same message
    inbox = harness.store.get("inbox", "7001")
    await harness.runtime.inbox._handle(event_from_dict(inbox["event"]))  # replayed at start
    await harness.settle()
    assert len(checkins(harness)) == 1
    assert len(harness.replies("lisi")) == 1


# --- stale, EXIF-less and off-hours ---------------------------------------------------

async def test_old_photo_is_refused_with_its_capture_date(harness):
    await harness.image("lisi", photo(30, taken=datetime(2026, 11, 23, 8, 15)))
    reply = harness.last_reply("lisi")
    assert reply.startswith("旧照片,拍摄于11月23日 08:15,超过24小时,本次不计入")
    [c] = checkins(harness)
    assert c["flags"] == ["stale"] and c["counted"] is False
    assert c["exif_time"] == "2026-11-23T08:15:00+08:00"

    await harness.image("lisi", photo(31, taken=TODAY - timedelta(hours=3)))
    assert harness.last_reply("lisi").startswith("打卡成功")
    set_rules(harness, max_photo_age_hours=2)
    await harness.image("lisi", photo(32, taken=TODAY - timedelta(hours=3)))
    assert "旧照片" in harness.last_reply("lisi")
    assert stats(harness)["checkins"] == 1


async def test_old_copy_of_a_used_photo_gives_both_reasons(harness):
    data = photo(33, taken=datetime(2026, 11, 20, 16, 0))
    harness.clock.set(datetime(2026, 11, 20, 16, 30, tzinfo=TZ))
    await harness.image("lisi", data)
    harness.clock.set(TODAY)
    await harness.image("wangwu", data)
    reply = harness.last_reply("wangwu")
    assert "重复" in reply and "旧照片,拍摄于11月20日 16:00" in reply
    assert checkins(harness)[-1]["flags"] == ["duplicate", "stale"]


async def test_photo_without_exif_is_counted_and_marked_in_the_ledger(harness):
    await harness.image("lisi", photo(40))
    assert harness.last_reply("lisi").startswith("打卡成功 09:30")
    [c] = checkins(harness)
    assert c["counted"] is True and c["flags"] == ["no_exif"] and c["exif_time"] is None


@pytest.mark.parametrize("hour,minute,off", [(5, 59, True), (6, 0, False), (19, 59, False), (20, 0, True),
                                             (21, 15, True)])
async def test_checkin_outside_the_window_is_counted_and_marked(harness, hour, minute, off):
    at = datetime(2026, 11, 25, hour, minute, tzinfo=TZ)
    harness.clock.set(at)
    await harness.image("lisi", photo(50, taken=at - timedelta(minutes=5)))
    reply = harness.last_reply("lisi")
    assert reply.startswith(f"打卡成功 {hour:02d}:{minute:02d}")
    assert ("非工作时段" in reply) is off
    [c] = checkins(harness)
    assert c["counted"] is True and ("offhours" in c["flags"]) is off


# --- broken input ---------------------------------------------------------------------

@pytest.mark.parametrize("what", ["text", "truncated", "megapixels", "bytes", "bomb"])
async def test_unusable_bytes_get_a_polite_reply_and_leave_nothing_behind(harness, what):
    good = fresh(60)
    data = {"text": "这不是照片".encode(), "truncated": good[: len(good) // 3],
            "megapixels": png_claiming(8000, 7000),  # 56 MP, announced in a 100-byte file
            "bytes": good + b"\0" * (20 * 1024 * 1024),  # a valid JPEG, but over 20 MB
            "bomb": png_claiming(60_000, 60_000)}[what]
    assert await harness.image("lisi", data) == 200
    assert "无法识别" in harness.last_reply("lisi")
    assert checkins(harness) == []
    media_dir = harness.bot.config.data_path / "media"
    assert not media_dir.exists() or not [p for p in media_dir.rglob("*") if p.is_file()]


async def test_media_wecom_no_longer_has_asks_to_resend(harness):
    await harness.send("lisi", "image", {"PicUrl": "", "MediaId": "expired-media-id"})
    assert "重新发送" in harness.last_reply("lisi")
    harness.emulator.fail_next("media/get", errcode=40007)
    await harness.image("wangwu", fresh(61))
    assert "重新发送" in harness.last_reply("wangwu")
    assert checkins(harness) == []


async def test_download_failures_retry_once_then_ask_to_resend(harness):
    harness.emulator.fail_next("media/get", status=502, count=2)
    await harness.image("lisi", fresh(62))
    assert "重新发送" in harness.last_reply("lisi")
    harness.emulator.fail_next("media/get", status=502, count=1)
    await harness.image("lisi", fresh(63))
    assert harness.last_reply("lisi").startswith("打卡成功")


# --- locations and geofences ----------------------------------------------------------

def north_of(point: tuple[float, float], metres: float) -> tuple[float, float]:
    return point[0] + metres / 111_195, point[1]


async def test_location_within_ten_minutes_attaches_to_the_checkin(harness):
    await harness.image("lisi", fresh(70))
    harness.clock.advance(minutes=4)
    await harness.location("lisi", *north_of(G1_CENTRE, 200), label="幸福路3号")
    assert harness.last_reply("lisi") == "已记录打卡位置(#C1 09:30):幸福路3号。"
    [c] = checkins(harness)
    assert c["location"] == {"lat": pytest.approx(G1_CENTRE[0] + 200 / 111_195), "lng": G1_CENTRE[1],
                             "label": "幸福路3号"}
    assert "outside" not in c["flags"] and c["counted"]


async def test_location_outside_the_circle_is_flagged_counted_and_told_to_the_leader(harness):
    await harness.image("lisi", fresh(71))
    harness.clock.advance(minutes=2)
    await harness.location("lisi", *north_of(G1_CENTRE, 1200), label="和平路")
    reply = harness.last_reply("lisi")
    assert "网格外" in reply and "仍计入" in reply and "约1200米" in reply
    [c] = checkins(harness)
    assert "outside" in c["flags"] and c["counted"] is True and "网格外" in c["reason"]
    told = harness.last_reply("zhangsan")
    assert "网格外" in told and "李四" in told and "#C1" in told
    assert stats(harness)["checkins"] == 1

    # Sent again from inside (the first fix was off): the flag goes away.
    await harness.location("lisi", *G1_CENTRE)
    c = checkins(harness)[0]
    assert "outside" not in c["flags"] and "网格外" not in c["reason"]


async def test_late_or_orphan_location_is_not_attached(harness):
    await harness.location("lisi", *G1_CENTRE)
    assert "请先拍照打卡" in harness.last_reply("lisi")
    await harness.image("lisi", fresh(72))
    harness.clock.advance(minutes=11)
    await harness.location("lisi", *G1_CENTRE)
    assert "请先拍照打卡" in harness.last_reply("lisi")
    assert checkins(harness)[0]["location"] is None


async def test_wecom_location_event_attaches_quietly(harness):
    await harness.image("lisi", fresh(73))
    replies = len(harness.replies("lisi"))
    harness.clock.advance(minutes=1)
    lat, lng = north_of(G1_CENTRE, 100)
    await harness.send("lisi", "event", {"Event": "LOCATION", "Latitude": lat, "Longitude": lng,
                                         "Precision": "30"})
    assert len(harness.replies("lisi")) == replies
    assert checkins(harness)[0]["location"]["lat"] == pytest.approx(lat)

    await harness.image("wangwu", fresh(74))
    lat, lng = north_of(G1_CENTRE, 2000)
    await harness.send("wangwu", "event", {"Event": "LOCATION", "Latitude": lat, "Longitude": lng,
                                           "Precision": "30"})
    assert "网格外" in harness.last_reply("wangwu")
    assert "网格外" in harness.last_reply("zhangsan")


async def test_polygon_geofence(harness):
    await harness.image("zhouba", fresh(75))
    await harness.location("zhouba", 31.2350, 121.4750)
    assert "网格外" not in harness.last_reply("zhouba")
    await harness.image("zhouba", fresh(76))
    await harness.location("zhouba", 31.2350, 121.4850)
    assert "网格外" in harness.last_reply("zhouba")
    assert "网格外" in harness.last_reply("sunqi")
    flags = [c["flags"] for c in checkins(harness)]
    assert ["outside" in f for f in flags] == [False, True]


async def test_photo_gps_is_converted_before_the_geofence_check(harness):
    # The camera writes WGS-84; the fence is GCJ-02. Find the WGS-84 point that maps onto the centre.
    lat, lng = G1_CENTRE
    for _ in range(3):
        glat, glng = wgs84_to_gcj02(lat, lng)
        lat, lng = lat - (glat - G1_CENTRE[0]), lng - (glng - G1_CENTRE[1])
    await harness.image("lisi", photo(80, taken=TODAY - timedelta(minutes=5), gps=(lat, lng)))
    assert harness.last_reply("lisi").startswith("打卡成功")
    assert "网格外" not in harness.last_reply("lisi")
    assert checkins(harness)[0]["gps"] == {"lat": pytest.approx(lat, abs=1e-6), "lng": pytest.approx(lng, abs=1e-6)}

    # Read naively, the centre's own numbers as WGS-84 lie ~555 m away in GCJ-02: outside.
    await harness.image("wangwu", photo(81, taken=TODAY - timedelta(minutes=5), gps=G1_CENTRE))
    reply = harness.last_reply("wangwu")
    assert reply.startswith("打卡成功") and "网格外" in reply
    assert checkins(harness)[1]["flags"] == ["outside"]


async def test_a_photo_taken_in_the_future_is_flagged_like_a_stale_one(harness):
    await harness.image("lisi", photo(40, taken=TODAY + timedelta(days=2)))
    [c] = checkins(harness)
    assert not c["counted"] and "stale" in c["flags"]
    reply = harness.last_reply("lisi")
    assert "晚于发送时间,无法确认是现场拍摄" in reply and reply.endswith("本次不计入。请在现场拍摄新照片后发送。")
    await harness.image("wangwu", photo(41, taken=TODAY + timedelta(minutes=5)))  # a clock a little fast
    assert harness.last_reply("wangwu").startswith("打卡成功")


async def test_a_rest_day_check_in_is_kept_and_says_it_does_not_count_in_the_rate(harness):
    harness.clock.set(datetime(2026, 11, 28, 9, 0, tzinfo=TZ))  # a Saturday
    await harness.image("lisi", photo(42, taken=datetime(2026, 11, 28, 8, 55)))
    assert harness.last_reply("lisi").startswith("打卡成功 09:00(休息日,不计入打卡率) · 本周第1次")
    [c] = checkins(harness)
    assert c["counted"] and c["date"] == "2026-11-28"


async def test_a_photo_from_ten_weeks_ago_is_caught_after_a_restart_that_left_its_week_on_disk(
        harness, aiohttp_client, config_path):
    from bot.app import create_app
    from bot.config_loading import load_config
    from tests.support.factories import BotHarness

    old = photo(31, TODAY - timedelta(weeks=10, minutes=20))
    harness.clock.set(TODAY - timedelta(weeks=10))
    await harness.image("lisi", old)
    first = checkins(harness)[0]["id"]
    harness.clock.set(TODAY)
    await harness.client.close()  # the bot stops; a new one starts on the same data

    app = create_app(load_config(config_path), clock=harness.clock)
    again = BotHarness(app, await aiohttp_client(app), harness.clock)
    again.emulator.set_origin(str(again.client.make_url("")).rstrip("/"))
    assert again.store.get("checkins", first, deep=False) is None  # that week is not in memory
    # The index is built at start, off the loop: the first photo does not wait for it.
    for _ in range(200):
        if again.bot.photo_index is not None:
            break
        await asyncio.sleep(0.01)
    assert again.bot.photo_index is not None
    await again.image("wangwu", reencode(old))
    assert again.last_reply("wangwu").startswith("疑似重复照片,与 9月16日 李四 的打卡相同")
    assert again.store.get("checkins", first, deep=False) is None
