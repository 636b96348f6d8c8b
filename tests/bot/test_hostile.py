"""Bad and hostile input end to end: every case answered, nothing lost, nothing leaked."""

from __future__ import annotations

import time

import pytest

from bot.app import create_app
from bot.config_loading import load_config

from tests.support.factories import AES_KEY, BASE_CONFIG, SECRET, TOKEN, write_config


@pytest.mark.file_store  # the journal's write made to fail
async def test_disk_full_answers_503_then_recovers(harness, monkeypatch):
    journal = harness.store.journal

    def no_space(data):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(journal, "_write_sync", no_space)
    status = await harness.text("lisi", "清理小广告3处", msgid="5550001")
    assert status == 503  # not kept, so not acknowledged: WeCom retries
    assert list(harness.store.docs("reports")) == []
    monkeypatch.undo()
    assert await harness.text("lisi", "清理小广告3处", msgid="5550001") == 200
    assert len(list(harness.store.docs("reports"))) == 1


async def test_wecom_api_down_replies_later_callback_stays_fast(harness):
    harness.bot.transport.backoff = 0.05
    harness.emulator.fail_next("message/send", status=503, count=3)
    t = time.perf_counter()
    status = await harness.text("lisi", "入户走访8户", settle=False)
    assert status == 200 and time.perf_counter() - t < 1.0
    await harness.settle()
    assert "入户走访 8户" in harness.last_reply("lisi")


async def test_huge_text_and_odd_characters_are_handled(harness):
    assert await harness.text("lisi", "清理小广告3处," + "很长的说明" * 20000) == 200
    assert "已记录" in harness.last_reply("lisi")
    for text in ["'; DROP TABLE reports; --", "<script>alert(1)</script>", "{0} %s %(x)s {{", "🎉🎉🎉",
                 "清理小广告\t2处\u200b", "=1+1"]:
        assert await harness.text("lisi", text) == 200
    stored = [r["text"] for r in harness.store.docs("reports")]
    assert "清理小广告\t2处\u200b" in stored


@pytest.mark.parametrize("msgtype,fields", [
    ("link", {"Title": "标题", "Description": "说明", "Url": "https://example.invalid/", "PicUrl": ""}),
    ("video", {"MediaId": "m1", "ThumbMediaId": "m2"}),
    ("file", {"MediaId": "m1", "FileName": "a.docx"}),
    ("weird_new_type", {"Something": "x"}),
])
async def test_unsupported_types_get_a_polite_hint(harness, msgtype, fields):
    assert await harness.send("lisi", msgtype, fields) == 200
    assert "无法统计" in harness.last_reply("lisi")


async def test_voice_is_stored_and_answered_with_a_hint(harness):
    assert await harness.send("lisi", "voice", {"MediaId": "v1", "Format": "amr"}, msgid="6660001") == 200
    assert harness.store.get("inbox", "6660001")["event"]["kind"] == "voice"
    assert "语音" in harness.last_reply("lisi")


async def test_enter_agent_greets_once_a_day(harness):
    for _ in range(2):
        harness.clock.advance(minutes=1)
        assert await harness.send("lisi", "event", {"Event": "enter_agent", "EventKey": ""}) == 200
    greetings = [r for r in harness.replies("lisi") if "您好,李四" in r]
    assert len(greetings) == 1 and "用法" in greetings[0]
    harness.clock.advance(days=1)
    await harness.send("lisi", "event", {"Event": "enter_agent", "EventKey": ""})
    assert len([r for r in harness.replies("lisi") if "您好,李四" in r]) == 2


async def test_chat_page_state_has_no_secrets(harness):
    r = await harness.client.get("/emulator/ui/state")
    body = await r.text()
    assert r.status == 200
    for secret in (SECRET, TOKEN, AES_KEY):
        assert secret not in body


async def test_live_mode_keeps_the_emulator_closed(aiohttp_client, tmp_path):
    cfg = load_config(write_config(tmp_path, extra="").parent / "config.toml")
    cfg = cfg.model_copy(update={"wecom": cfg.wecom.model_copy(update={"mode": "live", "api_base": "http://127.0.0.1:9/"})})
    client = await aiohttp_client(create_app(cfg))
    for path in ("/", "/emulator/ui/state", "/emulator/cgi-bin/gettoken"):
        r = await client.get(path)
        assert r.status in (403, 404), path


async def test_secrets_never_reach_the_log(tmp_path):
    from loguru import logger

    from bot.log import register_secrets, setup_logging
    register_secrets(SECRET, TOKEN, AES_KEY)
    setup_logging(tmp_path / "logs", console=False)
    logger.info("token is {} and key {}", TOKEN, AES_KEY)
    logger.error("gettoken?corpsecret={}", SECRET)
    await logger.complete()
    text = (tmp_path / "logs" / "bot.log").read_text()
    assert "***" in text
    for secret in (SECRET, TOKEN, AES_KEY):
        assert secret not in text
    logger.remove()


async def test_live_mode_chat_page_needs_the_admin_token(aiohttp_client, tmp_path):
    cfg = load_config(write_config(tmp_path, extra='\n[emulator]\nenabled_in_live = true\nadmin_token = "letmein-123"\n'))
    cfg = cfg.model_copy(update={"wecom": cfg.wecom.model_copy(update={"mode": "live", "api_base": "http://127.0.0.1:9/"})})
    client = await aiohttp_client(create_app(cfg))
    assert (await client.get("/")).status == 403
    assert (await client.get("/?token=wrong")).status == 403
    assert (await client.get("/?token=letmein-123")).status == 200
    assert (await client.get("/emulator/cgi-bin/gettoken?corpid=x&corpsecret=y")).status == 403


def test_enabled_in_live_without_token_is_a_config_error(tmp_path):
    from bot.config_loading import ConfigError
    with pytest.raises(ConfigError) as e:
        load_config(write_config(tmp_path, extra='\n[emulator]\nenabled_in_live = true\n'))
    [problem] = e.value.problems
    assert str(problem).endswith(f"config.toml:{len(BASE_CONFIG.splitlines()) + 3}: emulator.enabled_in_live:"
                                 "正式环境里开放聊天页面,必须同时设置访问口令 admin_token")


async def test_config_broken_while_under_load(harness, config_path):
    """A broken edit during a burst: every message still acknowledged and kept, admins told once."""
    import asyncio

    from bot.config_watch import apply_file
    good = config_path.read_text(encoding="utf-8")
    sends = [harness.text(("lisi", "wangwu", "zhouba")[i % 3], f"清理小广告{i + 1}处", settle=False)
             for i in range(60)]

    async def break_config():
        await asyncio.sleep(0.01)
        config_path.write_text(good + "\n[[people]]\nuserid = 'x'\nname = '某人'\ngrid = 'g404'\n", encoding="utf-8")
        assert not await apply_file(harness.runtime, config_path)
    statuses = await asyncio.gather(*sends, break_config())
    await harness.settle()
    assert statuses[:-1] == [200] * 60
    assert len(list(harness.store.docs("reports"))) == 60
    [notice] = [r for r in harness.replies("admin") if "未生效" in r]
    assert notice.endswith(f"config.toml:{len(good.splitlines()) + 5}: "
                           f'人员 x(某人)的 grid:网格 "g404" 不存在,已有的网格:g1(1号网格)、g2(2号网格)')
    assert harness.bot.config.person("x") is None  # still the last good config


async def test_checkin_thumbnails_only_for_known_records(harness):
    for path in ("/emulator/ui/checkin-thumb/C999", "/emulator/ui/checkin-thumb/..%2F..%2Fconfig.toml"):
        r = await harness.client.get(path)
        assert r.status == 404
