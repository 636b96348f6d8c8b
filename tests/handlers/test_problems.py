"""Problems found on patrol and their rectification, through the real encrypted callback."""

from __future__ import annotations

import io
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from PIL import Image

from bot.config_loading import load_config
from bot.stats import compute_stats

from tests.support.factories import write_config
from tests.support.problem_flow import fix_and_pass, photo
from bot.store_choice import store_for

TZ = ZoneInfo("Asia/Shanghai")
OPEN_TEXT = "问题:幸福路3号楼下堆放建筑垃圾"


def jpeg(seed: int = 0) -> bytes:
    img = Image.new("RGB", (64, 48), ((seed * 53) % 256, (seed * 97) % 256, (seed * 31) % 256))
    img.putpixel((seed % 64, 0), (255 - seed % 256, 0, 0))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def problem(harness, pid: str = "P1") -> dict:
    doc = harness.store.get("problems", pid)
    assert doc is not None, f"{pid} was not stored"
    return doc


def actions(doc: dict) -> list[str]:
    return [h["action"] for h in doc["history"]]


async def open_problem(harness, userid: str = "lisi", text: str = OPEN_TEXT) -> str:
    await harness.text(userid, text)
    reply = harness.last_reply(userid)
    assert reply.startswith("已登记 #P"), reply
    return reply.split("#")[1].split(",")[0]


# --- opening ------------------------------------------------------------------------------

async def test_opening_registers_problem_with_deadline_and_tells_grid_leader(harness):
    await harness.text("lisi", OPEN_TEXT)
    reply = harness.last_reply("lisi")
    # Opened Wed 11月25日 09:30, default 48 hours.
    assert reply.startswith("已登记 #P1,整改期限 11月27日 09:30")
    assert "已告知网格长张三" in reply
    told = harness.last_reply("zhangsan")
    assert "#P1" in told and "幸福路3号楼下堆放建筑垃圾" in told and "李四" in told
    p = problem(harness)
    assert p["grid"] == "g1" and p["status"] == "open" and p["reporter"] == "lisi"
    assert p["text"] == "幸福路3号楼下堆放建筑垃圾"
    assert p["category"] == "sanitation"
    assert p["deadline"] - p["opened_at"] == 48 * 3600
    assert p["opened_at"] == int(datetime(2026, 11, 25, 9, 30, tzinfo=TZ).timestamp())
    assert actions(p) == ["opened"]
    # Not a report: nothing was tallied.
    assert list(harness.store.docs("reports")) == []


async def test_opening_with_photos_and_location_within_window(harness):
    await harness.text("lisi", "发现问题:和平路口井盖缺失")
    harness.clock.advance(minutes=2)
    await harness.image("lisi", jpeg(1))
    assert "已添加现场照片到 #P1(共1张)" in harness.last_reply("lisi")
    harness.clock.advance(minutes=3)
    await harness.image("lisi", jpeg(2))
    assert "共2张" in harness.last_reply("lisi")
    await harness.location("lisi", 30.5, 114.3, "和平路与幸福路交叉口")
    assert "已记录 #P1 的位置:和平路与幸福路交叉口" in harness.last_reply("lisi")
    p = problem(harness)
    assert len(p["photos_before"]) == 2
    for rel in p["photos_before"]:
        assert (harness.bot.config.data_path / rel).is_file()
        assert "problem" in rel
    assert p["location"]["label"] == "和平路与幸福路交叉口"
    assert actions(p) == ["opened", "photo_before", "photo_before", "location"]


async def test_photo_after_window_falls_through_to_checkin(harness):
    await open_problem(harness)
    harness.clock.advance(minutes=11)
    before = len(harness.replies("lisi"))
    await harness.image("lisi", jpeg(3))
    assert problem(harness)["photos_before"] == []
    assert not any("#P1" in r for r in harness.replies("lisi")[before:])


async def test_photo_without_any_problem_context_is_not_taken(harness):
    await harness.image("wangwu", jpeg(4))
    assert list(harness.store.docs("problems")) == []
    assert not any("#P" in r for r in harness.replies("wangwu"))


async def test_unreadable_photo_gets_polite_reply_and_context_remains(harness):
    await open_problem(harness)
    await harness.image("lisi", b"this is not a jpeg at all")
    reply = harness.last_reply("lisi")
    assert "无法识别" in reply and "重新发送" in reply
    await harness.image("lisi", jpeg(5))
    assert len(problem(harness)["photos_before"]) == 1


async def test_category_deadline_overrides_default(tmp_path, aiohttp_client, clock):
    from bot.app import create_app
    from tests.support.factories import BotHarness
    extra = """
[[categories]]
id = "hazard"
label = "隐患排查"
keywords = ["隐患", "消防", "燃气", "灭火器"]
deadline_hours = 24

[[categories]]
id = "sanitation"
label = "环境卫生"
keywords = ["垃圾", "杂物"]
"""
    cfg = load_config(write_config(tmp_path, extra))
    app = create_app(cfg, clock=clock)
    client = await aiohttp_client(app)
    h = BotHarness(app, client, clock)
    h.emulator.set_origin(str(client.make_url("")).rstrip("/"))
    await h.text("lisi", "隐患:3号楼消防通道堆放杂物")
    assert h.last_reply("lisi").startswith("已登记 #P1,整改期限 11月26日 09:30")
    await h.text("wangwu", "问题:幸福路垃圾桶满溢")
    assert h.last_reply("wangwu").startswith("已登记 #P2,整改期限 11月27日 09:30")


@pytest.mark.parametrize("text", [
    "排查安全隐患三处",
    "隐患排查:发现问题2处",
    "隐患排查三处",
    "发现问题2处",
    "问题整改完成",
])
async def test_counted_reports_are_not_problems(harness, text):
    await harness.text("lisi", text)
    assert list(harness.store.docs("problems")) == []
    assert not any(r.startswith("已登记 #P") for r in harness.replies("lisi"))


async def test_report_with_count_is_still_recorded(harness):
    await harness.text("lisi", "排查安全隐患三处")
    assert "已记录 #R1" in harness.last_reply("lisi")
    assert list(harness.store.docs("problems")) == []


async def test_bare_prefix_asks_for_description(harness):
    await harness.text("lisi", "发现问题")
    assert "请写明问题内容" in harness.last_reply("lisi")
    assert list(harness.store.docs("problems")) == []


async def test_leader_without_grid_names_grid_in_text(harness):
    await harness.text("zhoushuji", "问题:幸福路垃圾桶满溢")
    assert "请注明问题所在网格" in harness.last_reply("zhoushuji")
    await harness.text("zhoushuji", "问题:2号网格 和平路垃圾桶满溢")
    assert harness.last_reply("zhoushuji").startswith("已登记 #P1")
    assert problem(harness)["grid"] == "g2"
    assert "#P1" in harness.last_reply("sunqi")


# --- possible duplicates --------------------------------------------------------------------

async def test_likely_duplicate_is_registered_and_pointed_out_to_sender_and_grid_leader(harness):
    await open_problem(harness)
    harness.clock.advance(hours=2)
    await harness.text("wangwu", "问题:幸福路三号楼旁建筑垃圾未清运")
    reply = harness.last_reply("wangwu")
    assert reply.startswith("已登记 #P2,整改期限 11月27日 11:30,已告知网格长张三。\n")
    assert ("疑似重复登记,已有 #P1(幸福路3号楼下堆放建筑垃圾,李四 11月25日 09:30登记),"
            "如确为新问题可忽略本提示;如是重复登记,请发送“撤回 #P2 重复登记”。") in reply
    told = harness.last_reply("zhangsan")
    assert told.startswith("【新问题】#P2 1号网格(环境卫生)")
    assert "⚠ 疑似重复登记,已有 #P1(幸福路3号楼下堆放建筑垃圾" in told
    p = problem(harness, "P2")
    assert p["status"] == "open" and p["possible_duplicates"] == ["P1"]
    # The sender agrees: it goes, P1 stays.
    await harness.text("wangwu", "撤回 #P2 重复登记")
    assert harness.last_reply("wangwu").startswith("已撤回 #P2")
    assert problem(harness)["status"] == "open"


@pytest.mark.parametrize("who, text", [
    ("wangwu", "问题:幸福路5号楼下堆放建筑垃圾"),  # the next building
    ("wangwu", "问题:和平路3号楼下堆放建筑垃圾"),  # another road
    ("wangwu", "问题:幸福路3号楼下乱停共享单车"),  # same place, another category
    ("zhouba", "问题:幸福路3号楼下堆放建筑垃圾"),  # another grid
])
async def test_near_misses_are_not_called_duplicates(harness, who, text):
    await open_problem(harness)
    await harness.text(who, text)
    reply = harness.last_reply(who)
    assert reply.startswith("已登记 #P2") and "疑似重复" not in reply
    assert "possible_duplicates" not in problem(harness, "P2")


@pytest.mark.parametrize("ended_by", ["closed", "withdrawn"])
async def test_a_problem_no_longer_open_is_not_a_duplicate(harness, ended_by):
    await open_problem(harness)
    if ended_by == "closed":
        await fix_and_pass(harness, "P1")
    else:
        await harness.text("zhangsan", "撤回 #P1")
    await harness.text("wangwu", OPEN_TEXT)
    assert "疑似重复" not in harness.last_reply("wangwu")
    assert "疑似重复" not in harness.last_reply("zhangsan")


# --- reassign and reopen ----------------------------------------------------------------------

async def test_grid_leader_reassigns_by_name_and_id(harness):
    await open_problem(harness)
    await harness.text("zhangsan", "转 #P1 2号网格")
    assert "已将 #P1 从1号网格转至2号网格" in harness.last_reply("zhangsan")
    p = problem(harness)
    assert p["grid"] == "g2"
    assert "【转派问题】#P1" in harness.last_reply("sunqi")
    assert "转至2号网格" in harness.last_reply("lisi")
    # Now 2号网格's leader owns it and may send it back by id; 张三 no longer may.
    await harness.text("zhangsan", "转 #P1 g1")
    assert "只有2号网格的网格长" in harness.last_reply("zhangsan")
    await harness.text("sunqi", "转 #P1 g1")
    assert problem(harness)["grid"] == "g1"
    h = problem(harness)["history"]
    assert [(e["action"], e.get("from_grid"), e.get("to_grid")) for e in h[1:]] == [
        ("reassigned", "g1", "g2"), ("reassigned", "g2", "g1")]
    assert h[1]["by"] == "zhangsan" and h[2]["by_name"] == "孙七"


async def test_reassign_refusals(harness):
    await open_problem(harness)
    await harness.text("lisi", "转 #P1 2号网格")
    assert "只有1号网格的网格长、领导或管理员可以转派" in harness.last_reply("lisi")
    await harness.text("admin", "转 #P1 9号网格")
    assert "没有找到网格“9号网格”" in harness.last_reply("admin")
    assert problem(harness)["grid"] == "g1"
    await harness.text("admin", "转 #P1 二号网格")
    assert problem(harness)["grid"] == "g2"


async def test_reopen_closed_problem(harness):
    await open_problem(harness)
    await fix_and_pass(harness, "P1", fixer="wangwu")
    await harness.text("lisi", "重开 #P1 又堆了")
    assert "只有1号网格的网格长" in harness.last_reply("lisi")
    harness.clock.advance(days=1)
    await harness.text("zhangsan", "重开 #P1 原因:垃圾又堆了")
    assert harness.last_reply("zhangsan") == "已重开 #P1,新的整改期限 11月28日 09:30。"
    p = problem(harness)
    assert p["status"] == "open" and p["closed_at"] is None
    reopened = p["history"][-1]
    assert reopened["action"] == "reopened" and reopened["note"] == "垃圾又堆了"
    assert reopened["previous"]["closed_by"] == "zhangsan"
    # The reporter and whoever fixed it last hear why it is open again.
    assert "垃圾又堆了" in harness.last_reply("lisi") and "垃圾又堆了" in harness.last_reply("wangwu")
    await harness.text("zhangsan", "重开 #P1")
    assert "尚未销号" in harness.last_reply("zhangsan")


async def test_full_history_is_kept(harness):
    await open_problem(harness)
    await harness.image("lisi", jpeg(12))
    await harness.text("zhangsan", "转 #P1 2号网格")
    await harness.text("zhouba", "整改 #P1 已清理")
    await harness.image("zhouba", photo(13))
    await harness.text("sunqi", "驳回 #P1 不彻底")
    harness.clock.advance(hours=1)
    await harness.text("zhouba", "整改 #P1 已清理干净")
    await harness.image("zhouba", photo(14))
    await harness.text("sunqi", "核查 #P1 通过")
    p = problem(harness)
    assert actions(p) == ["opened", "photo_before", "reassigned", "close_requested", "fix_submitted",
                          "check_rejected", "close_requested", "fix_submitted", "check_passed"]
    assert [e["by"] for e in p["history"]] == ["lisi", "lisi", "zhangsan", "zhouba", "zhouba", "sunqi",
                                                "zhouba", "zhouba", "sunqi"]
    assert all(isinstance(e["at"], int) for e in p["history"])
    # Which photo came with which fix, and the one that was sent back.
    assert p["history"][4]["photo"] != p["history"][7]["photo"]
    assert p["photos_after"] == [p["history"][7]["photo"]] and p["closed_without_photo"] is False
    assert harness.last_reply("sunqi").startswith("#P1 核查通过,已销号,用时1小时")


# --- listing ----------------------------------------------------------------------------------

async def test_list_open_problems_of_my_grid(harness):
    await harness.text("lisi", "问题")
    assert "1号网格目前没有待整改的问题" in harness.last_reply("lisi")
    await open_problem(harness)
    await open_problem(harness, "wangwu", "问题:幸福路5号门前乱停车辆")
    await open_problem(harness, "zhouba", "问题:和平路垃圾桶满溢")
    await fix_and_pass(harness, "P2", fixer="wangwu")
    harness.clock.advance(days=3)
    await harness.text("wangwu", "我的问题")
    reply = harness.last_reply("wangwu")
    assert "【1号网格 待整改问题 1项,逾期1项】" in reply
    assert "#P1 幸福路3号楼下堆放建筑垃圾 · 期限11月27日 09:30 ⚠逾期1天" in reply
    assert "#P2" not in reply and "#P3" not in reply
    await harness.text("qian", "问题")
    reply = harness.last_reply("qian")
    assert "#P1" in reply and "#P3" in reply and "2号网格" in reply


async def test_problem_detail(harness):
    await open_problem(harness)
    await harness.text("wangwu", "问题 #P1")
    reply = harness.last_reply("wangwu")
    assert "#P1(1号网格,待整改)" in reply and "上报:李四" in reply


# --- durability and stats ---------------------------------------------------------------------

async def test_photo_context_survives_in_store(harness):
    await open_problem(harness)
    await harness.store.checkpoint()
    other = store_for(harness.bot.config, readonly=True)
    other.load()
    ctx = other.get("problem_context", "lisi")
    assert ctx["problem"] == "P1" and ctx["kind"] == "opened"
    assert other.get("problems", "P1")["status"] == "open"


async def test_replayed_message_does_not_open_twice(harness):
    await harness.text("lisi", OPEN_TEXT, msgid="900001")
    await harness.text("lisi", OPEN_TEXT, msgid="900001")
    assert len(list(harness.store.docs("problems"))) == 1


async def test_stats_count_open_and_closed(harness):
    await open_problem(harness)
    await open_problem(harness, "wangwu", "问题:幸福路5号门前乱停车辆")
    await open_problem(harness, "zhouba", "问题:和平路垃圾桶满溢")
    await fix_and_pass(harness, "P1")
    harness.clock.set(datetime(2026, 12, 2, 9, 0, tzinfo=TZ))  # the next ISO week
    await open_problem(harness, "lisi", "问题:幸福路路灯不亮")
    await harness.store.checkpoint()
    ro = store_for(harness.bot.config, readonly=True)
    ro.load()
    cfg = harness.bot.config
    all_time = compute_stats(ro, cfg)
    assert (all_time["problems_open"], all_time["problems_closed"]) == (3, 1)
    w48 = compute_stats(ro, cfg, week="2026-W48")
    assert (w48["problems_open"], w48["problems_closed"]) == (2, 1)
    w49 = compute_stats(harness.store, cfg, week="2026-W49")
    assert (w49["problems_open"], w49["problems_closed"]) == (1, 0)



# --- recurrence (反弹) ------------------------------------------------------------------------------

async def test_a_problem_back_at_a_fixed_place_is_linked_and_called_a_recurrence(harness):
    await open_problem(harness)
    await fix_and_pass(harness, "P1")
    harness.clock.advance(days=10)
    await harness.text("wangwu", "问题:幸福路三号楼旁又堆了建筑垃圾")
    reply = harness.last_reply("wangwu")
    assert reply == ("已登记 #P2,整改期限 12月7日 09:30,已告知网格长张三。\n"
                     "⚠ 反弹问题:该处30天内已有同类问题 #P1(11月25日登记,已销号),本次为第2次。\n"
                     "可在10分钟内补发现场照片和位置。")
    assert "⚠ 反弹问题:该处30天内已有同类问题 #P1" in harness.last_reply("zhangsan")
    assert problem(harness, "P2")["recurs_of"] == ["P1"]
    await harness.text("wangwu", "问题 #P2")
    assert "反弹:该处30天内已有同类问题 #P1" in harness.last_reply("wangwu")
    await harness.text("wangwu", "问题")
    assert "#P2 幸福路三号楼旁又堆了建筑垃圾 · 期限12月7日 09:30 · 反弹" in harness.last_reply("wangwu")
    # Another kind of problem at the same place, or the same kind elsewhere, is no recurrence.
    await harness.text("lisi", "问题:幸福路3号楼下乱停共享单车")
    await harness.text("lisi", "问题:幸福路5号楼下堆放建筑垃圾")
    assert "反弹" not in harness.last_reply("lisi")
    assert "recurs_of" not in problem(harness, "P3") and "recurs_of" not in problem(harness, "P4")


async def test_a_location_sent_after_registering_finds_the_recurrence(harness):
    await harness.text("lisi", "问题:东门垃圾桶满溢")
    await harness.location("lisi", 30.2741, 120.1551, "阳光小区东门")
    await fix_and_pass(harness, "P1")
    harness.clock.advance(days=3)
    await harness.text("wangwu", "问题:小区门口垃圾满了没人收")  # written differently
    assert "反弹" not in harness.last_reply("wangwu")
    await harness.location("wangwu", 30.2743, 120.1552, "阳光小区东门外")  # about 24 m away
    assert harness.last_reply("wangwu") == ("已记录 #P2 的位置:阳光小区东门外。\n"
                                            "⚠ 反弹问题:该处30天内已有同类问题 #P1(11月25日登记,已销号),本次为第2次。")
    assert problem(harness, "P2")["recurs_of"] == ["P1"]
