"""The access token never reaches the log: not in an error's text (aiohttp puts the whole URL,
access_token included, into a redirect loop's error), not in a traceback."""

from __future__ import annotations

import io

import aiohttp
import pytest
from aiohttp import web
from loguru import logger
from PIL import Image

from bot.log import mask, setup_logging
from bot.wecom.api import WecomError

ACCESS_TOKEN = "at-9f8e7d6c5b4a3f2e1d0c-LEAK"


def jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (120, 30, 200)).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture
async def wecom_redirect_loop(aiohttp_server):
    """A WeCom stand-in whose media/get redirects to itself for ever (a broken proxy does this);
    gettoken and message/send work, so the bot can still tell the person."""
    sent: list[dict] = []

    async def gettoken(request):
        return web.json_response({"errcode": 0, "access_token": ACCESS_TOKEN, "expires_in": 7200})

    async def media_get(request):
        raise web.HTTPFound(location=str(request.rel_url))

    async def message_send(request):
        sent.append(await request.json())
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    app = web.Application()
    app.router.add_get("/cgi-bin/gettoken", gettoken)
    app.router.add_get("/cgi-bin/media/get", media_get)
    app.router.add_post("/cgi-bin/message/send", message_send)
    server = await aiohttp_server(app)
    return str(server.make_url("/cgi-bin/")), sent


@pytest.fixture
def log_file(tmp_path):
    setup_logging(tmp_path / "logs", console=False)
    yield tmp_path / "logs" / "bot.log"
    logger.remove()


async def test_a_failing_media_get_never_logs_the_token(harness, wecom_redirect_loop, log_file, monkeypatch):
    import bot.photos.files
    monkeypatch.setattr(bot.photos.files, "RETRY_DELAY", 0)
    base, sent = wecom_redirect_loop
    harness.runtime.set_api_base(base)
    assert await harness.image("lisi", jpeg()) == 200
    # The person is asked to send the photo again.
    assert [m["text"]["content"] for m in sent if m["touser"] == "lisi"] == ["这张照片已无法获取(可能已过期),请重新发送照片。"]
    # A handler that let the same error escape: its traceback is logged too.
    with pytest.raises((aiohttp.ClientError, WecomError)) as caught:
        await harness.runtime.client.media_get("emu-any")
    logger.opt(exception=caught.value).error("handler:image failed: 处理李四的消息(image)时出错")
    # Any other error that carries a URL, in a traceback.
    try:
        raise aiohttp.InvalidURL(f"{base}message/send?access_token={ACCESS_TOKEN}")
    except aiohttp.InvalidURL:
        logger.exception("reply failed")
    await logger.complete()
    text = log_file.read_text(encoding="utf-8")
    # The admin still sees what failed, where and why.
    assert "media/get failed" in text and "TooManyRedirects" in text and "Traceback" in text
    assert "message/send?access_token=***" in text
    assert ACCESS_TOKEN not in text


def test_mask_hides_credentials_in_any_url():
    line = ("GET https://qyapi.weixin.qq.com/cgi-bin/media/get?access_token=abc123&media_id=m1 failed; "
            "gettoken?corpid=ww1&corpsecret=s3cr3t-value; webhook/send?key=693a91f6-7xxx; "
            "URL('http://127.0.0.1/cgi-bin/message/send?access_token=tok%2Bx')")
    masked = mask(line)
    for secret in ("abc123", "s3cr3t-value", "693a91f6-7xxx", "tok%2Bx"):
        assert secret not in masked
    assert "media_id=m1" in masked and "corpid=ww1" in masked  # ids are not secrets: keep them to debug
