"""Big photos within a memory budget: a phone's long screenshot (1242×26000 PNG) and a 7000×7000 PNG
each raise the process's peak memory by less than 150 MB (they took 322 and 481 MB, and kept
them, when decoded whole), and the memory goes back. One bounded decode per photo, two at a time,
and downloads cut off at the size cap."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
import textwrap
import time

import pytest
from aiohttp import web
from PIL import Image

from bot.photos import decode, files
from bot.photos.decode import develop
from bot.photos.files import MAX_BYTES, PhotoError, inspect
from bot.wecom.api import WecomClient, WecomError

from tests.support.big_png import write_png
from tests.support.photo_samples import jpeg, scene

BUDGET_MB = 150

MEASURE = textwrap.dedent("""
    import gc, io, json, sys
    from datetime import date
    from pathlib import Path
    from zoneinfo import ZoneInfo
    from PIL import Image
    from bot.photos.files import _write, inspect, photo_path
    from bot.photos.hashing import analyze
    from bot.photos.media_store import FolderMedia

    def rss_mb():
        return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20

    def peak_mb():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024

    def check_in(data, day):  # what the check-in handler does with a photo
        photo = inspect(data)
        analyze(photo, ZoneInfo("Asia/Shanghai"))
        _write(FolderMedia(Path(sys.argv[2]) / "media"), photo_path(day, "g1", "lisi", photo), photo)

    buf = io.BytesIO()
    Image.new("RGB", (1200, 900), (40, 120, 200)).save(buf, "PNG")
    check_in(buf.getvalue(), date(2026, 11, 24))  # warm up: imports, codecs, allocator pools
    data = Path(sys.argv[1]).read_bytes()
    gc.collect()
    before = rss_mb()
    open("/proc/self/clear_refs", "w").write("5")  # the peak counts from here
    check_in(data, date(2026, 11, 25))
    peak = peak_mb()
    gc.collect()
    print(json.dumps({"peak": peak - before, "after": rss_mb() - before}))
""")


@pytest.fixture(scope="module")
def big_pngs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("big")
    made = {}
    for name, (w, h) in {"long screenshot": (1242, 26000), "7000×7000": (7000, 7000)}.items():
        path = folder / f"{w}x{h}.png"
        assert write_png(path, w, h, filters=(2,)) < MAX_BYTES
        made[name] = path
    return made


@pytest.mark.parametrize("name", ["long screenshot", "7000×7000"])
def test_a_big_png_stays_within_the_memory_budget_and_gives_it_back(big_pngs, name, tmp_path):
    run = subprocess.run([sys.executable, "-c", MEASURE, str(big_pngs[name]), str(tmp_path)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    m = json.loads(run.stdout)
    assert m["peak"] < BUDGET_MB, f"{name}: peak +{m['peak']:.0f} MB"
    assert m["after"] < 20, f"{name}: +{m['after']:.0f} MB kept after the photo"
    thumbs = list(tmp_path.rglob("2026-11-25_*.thumb.jpg"))
    assert len(thumbs) == 1 and max(Image.open(thumbs[0]).size) == 480


@pytest.mark.parametrize("colour_type", [0, 2, 3, 4, 6])
def test_a_png_decoded_band_by_band_is_the_same_picture(tmp_path, monkeypatch, colour_type):
    path = tmp_path / "p.png"
    palette = bytes((i * 7 % 256, i * 13 % 256, 255 - i) [k] for i in range(256) for k in range(3))
    write_png(path, 333, 1001, colour_type, palette=palette,
              trns=bytes(range(0, 256, 2)) if colour_type == 3 else None)
    # Small bands and a small preview: many bands, each reduced threefold.
    monkeypatch.setattr(decode, "BAND_BYTES", 20_000)
    monkeypatch.setattr(decode, "PREVIEW_PIXELS", 40_000)
    data = path.read_bytes()
    whole = Image.open(path)
    whole.load()
    assert whole.mode == {0: "L", 2: "RGB", 3: "P", 4: "LA", 6: "RGBA"}[colour_type]
    expected = (whole.convert("RGBA") if colour_type == 3 else whole).convert("RGB").reduce(3)
    got = develop(Image.open(io.BytesIO(data)), data).preview
    assert got.size == expected.size == (111, 334)
    assert got.tobytes() == expected.tobytes()


def test_a_big_jpeg_is_decoded_at_a_reduced_scale_and_turned_upright():
    data = jpeg(scene(2, (3200, 2400)).transpose(Image.Transpose.ROTATE_90), orientation=6)
    photo = inspect(data)
    assert (photo.width, photo.height) == (2400, 3200)  # as stored
    assert photo.preview.width > photo.preview.height  # as seen
    assert photo.preview.width * photo.preview.height <= decode.PREVIEW_PIXELS


def test_a_truncated_png_is_refused():
    buf = io.BytesIO()
    Image.effect_noise((600, 400), 40).convert("RGB").save(buf, "PNG")
    data = buf.getvalue()
    with pytest.raises(PhotoError):
        inspect(data[: len(data) * 2 // 3] + data[-12:])  # IEND kept, pixels cut


async def test_a_check_in_decodes_its_photo_once(harness, monkeypatch):
    calls = []
    real = files.develop

    def counted(img, data):
        calls.append(len(data))
        return real(img, data)
    monkeypatch.setattr(files, "develop", counted)
    await harness.image("lisi", jpeg(scene(11)))
    assert harness.last_reply("lisi").startswith("打卡成功")
    assert len(calls) == 1


async def test_at_most_two_photos_are_decoded_at_once(monkeypatch):
    running, peak = 0, 0

    def slow_inspect(data):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        time.sleep(0.1)
        running -= 1
        return data
    monkeypatch.setattr(files, "inspect", slow_inspect)
    await asyncio.gather(*(files.inspect_bounded(b"x") for _ in range(6)))
    assert peak == files.DECODES_AT_ONCE == 2


@pytest.mark.parametrize("announce", [True, False])
async def test_a_download_over_the_cap_is_cut_off(aiohttp_server, announce):
    sent = 0

    async def token(request):
        return web.json_response({"errcode": 0, "access_token": "t", "expires_in": 7200})

    async def media(request):
        nonlocal sent
        resp = web.StreamResponse(headers={"Content-Type": "image/png"})
        if announce:
            resp.content_length = 100 * 2**20
        await resp.prepare(request)
        chunk = b"\0" * 2**16
        try:
            while sent < 100 * 2**20:
                await resp.write(chunk)
                sent += len(chunk)
        except (ConnectionError, RuntimeError):
            pass
        return resp
    app = web.Application()
    app.router.add_get("/gettoken", token)
    app.router.add_get("/media/get", media)
    server = await aiohttp_server(app)
    client = WecomClient(str(server.make_url("/")), "corp", "secret", 1)
    try:
        with pytest.raises(WecomError) as e:
            await client.media_get("m1", limit=2 * 2**20)
        assert e.value.errcode == -3
    finally:
        await client.close()
    assert sent < 20 * 2**20  # stopped reading at the cap, not at 100 MB
