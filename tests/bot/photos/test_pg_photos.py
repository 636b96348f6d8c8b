"""Photos with several bot processes on one PostgreSQL database: the duplicate-photo check covers
every worker's photos and holds when two check at once (bot.photos.pg_fingerprints), and the
photo files live in one folder all of them use ([store] media_dir, bot.photos.media_store)."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
import time
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace

import asyncpg
import numpy as np
import pytest
from PIL import Image

from bot.config_loading import load_config
from bot.pg_migrate import migrate_to_postgres
from bot.photos.checks import check_photo
from bot.replies import INTERNAL_ERROR, PHOTO_UNREADABLE
from bot.store_choice import store_for

from tests.support.factories import BotHarness, on_store, start_harness, write_config
from tests.support.photo_samples import png_claiming
from tests.support.photo_worker import SENT, fingerprint
from tests.support.problem_flow import photo, register, submit_fix

REPO = Path(__file__).resolve().parents[3]
TODAY = date(2026, 11, 25)
DEADLINE = 10.0  # seconds for another process to follow a change (about one poll), on a loaded machine


def worker_config(folder: Path, dsn: str, media: Path | None = None) -> Path:
    folder.mkdir(exist_ok=True)
    more = f'dsn = "{dsn}"\n' + (f'media_dir = "{media}"\n' if media else "")
    return write_config(folder, base=on_store("postgres", more))


@pytest.fixture
async def workers(aiohttp_client, tmp_path, pg_dsn, clock):
    """Two bots on one database and one clock, as two worker processes would be; each with a
    data folder of its own and the photo folder shared."""
    shared = tmp_path / "shared-media"

    async def start(name: str) -> BotHarness:
        h = await start_harness(aiohttp_client, worker_config(tmp_path / name, pg_dsn, shared), clock)
        async with asyncio.timeout(30):
            await h.store.warmed()
        return h
    return start


async def until(check, what: str) -> None:
    end = time.monotonic() + DEADLINE
    while not check():
        assert time.monotonic() < end, f"not within {DEADLINE} s: {what}"
        await asyncio.sleep(0.05)


def fingerprint_rows(dsn: str) -> list:
    async def read():
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetch("SELECT msgid, checkin, userid, dup_of FROM photo_prints ORDER BY seq")
        finally:
            await conn.close()
    return asyncio.run(read())


# --- the duplicate check across workers --------------------------------------------------------

async def test_a_photo_checked_in_on_one_worker_and_resent_to_another_is_flagged_there(workers, pg_dsn):
    a, b = await workers("a"), await workers("b")
    taken = a.clock.now() - timedelta(minutes=3)
    await b.image("sunqi", photo(40, taken))  # worker B has built its index before A's photo
    assert b.last_reply("sunqi").startswith("打卡成功")
    await a.image("lisi", photo(41, taken))
    assert a.last_reply("lisi").startswith("打卡成功")
    a.clock.advance(minutes=5)
    await b.image("wangwu", photo(41, taken))
    assert b.last_reply("wangwu") == ("疑似重复照片,与 11月25日 李四 的打卡相同,本次不计入。"
                                      "请在现场拍摄新照片后发送。")
    mine = [c for c in b.store.docs("checkins") if c["userid"] == "wangwu"]
    assert [(c["counted"], c["duplicate_of"]) for c in mine] == [(False, "C2")]
    rows = await asyncio.to_thread(fingerprint_rows, pg_dsn)
    assert [(r["checkin"], r["userid"], r["dup_of"]) for r in rows] == [
        ("C1", "sunqi", None), ("C2", "lisi", None), ("C3", "wangwu", "C2")]


async def test_the_same_photo_to_two_workers_at_once_counts_once(workers):
    a, b = await workers("a"), await workers("b")
    same = photo(42, a.clock.now() - timedelta(minutes=2))
    await asyncio.gather(a.image("lisi", same), b.image("wangwu", same))
    replies = [a.last_reply("lisi"), b.last_reply("wangwu")]
    assert sorted(r.startswith("打卡成功") for r in replies) == [False, True], replies
    flagged = next(r for r in replies if not r.startswith("打卡成功"))
    assert flagged.startswith("疑似重复照片,与 11月25日 ")


def test_two_processes_checking_the_same_photos_at_the_same_moment_flag_exactly_one_each(tmp_path, pg_dsn):
    """Real processes, started on each photo together (a shared go-signal): whoever takes the
    lock second sees the first's fingerprint, whatever the interleaving."""
    rounds = 12
    go = tmp_path / "go"
    go.mkdir()
    procs = []
    for userid, name in (("lisi", "李四"), ("wangwu", "王五")):
        config = worker_config(tmp_path / userid, pg_dsn)
        procs.append(subprocess.Popen([sys.executable, "-m", "tests.support.photo_worker", str(config), userid,
                                       name, str(rounds), str(go)], cwd=REPO, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    verdicts: dict[int, list[dict]] = {}
    try:
        for n in range(rounds):
            for p in procs:
                line = p.stdout.readline()
                assert line.strip() == f"ready {n}", line + p.stderr.read()
            (go / str(n)).touch()
            verdicts[n] = [json.loads(p.stdout.readline()) for p in procs]
        for p in procs:
            assert p.wait(timeout=60) == 0, p.stderr.read()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for n, pair in verdicts.items():
        originals = [v for v in pair if v["duplicate_of"] is None]
        copies = [v for v in pair if v["duplicate_of"] is not None]
        assert len(originals) == 1 and len(copies) == 1, (n, pair)
        assert copies[0]["duplicate_of"] == originals[0]["checkin"]


async def test_a_message_checked_before_a_crash_gets_its_first_verdict_again(tmp_path, pg_dsn):
    """Worker A committed the photo's fingerprint and died before storing the check-in; the
    message is handled again by worker B: the same check-in number and verdict (it is no copy of
    itself), and a real copy sent later points at that number."""
    opened = []
    try:
        async def worker(name: str) -> SimpleNamespace:
            cfg = load_config(worker_config(tmp_path / name, pg_dsn))
            store = store_for(cfg)
            opened.append(store)
            store.load(today=TODAY)
            return SimpleNamespace(config=cfg, store=store, photo_index=None, locks=defaultdict(asyncio.Lock))
        a, b = await worker("a"), await worker("b")
        hashes = fingerprint(7)

        async def check(bot, key: str, userid: str):
            async with check_photo(bot, SENT, hashes, key=key, userid=userid, name=userid,
                                   new_id=lambda: bot.store.next_id("C")) as got:
                return got
        first = await check(a, "7001", "lisi")  # and A dies: no check-in stored
        again = await check(b, "7001", "lisi")
        copy = await check(b, "7002", "wangwu")
    finally:
        for store in opened:
            await asyncio.to_thread(store._open().close)
    assert (first.checkin, first.match) == (again.checkin, None)
    assert copy.match is not None and (copy.match.key, copy.match.distance, copy.match.name) == (first.checkin, 0, "lisi")


async def test_a_photo_whose_check_in_could_not_be_stored_counts_when_sent_again(workers, monkeypatch):
    a = await workers("a")
    same = photo(49, a.clock.now() - timedelta(minutes=2))
    real_put = a.store.put

    async def refused(table, doc, **kw):
        if table == "checkins":
            raise OSError("PostgreSQL refused the write: ConnectionDoesNotExistError")
        return await real_put(table, doc, **kw)
    monkeypatch.setattr(a.store, "put", refused)
    await a.image("lisi", same)
    assert a.last_reply("lisi") == INTERNAL_ERROR
    monkeypatch.setattr(a.store, "put", real_put)
    await a.image("lisi", same)
    assert a.last_reply("lisi").startswith("打卡成功"), a.last_reply("lisi")


# --- the shared photo folder -------------------------------------------------------------------

def panel_is_photo(picture: bytes) -> bool:
    """Whether the before panel of a side-by-side picture shows a photo, not "(无照片)" on grey."""
    from bot.photos.side_by_side import HEAD_H, PAD, PANEL_H, PANEL_W
    img = Image.open(io.BytesIO(picture)).convert("RGB").crop((PAD, HEAD_H + 40, PAD + PANEL_W, HEAD_H + PANEL_H))
    px = np.asarray(img, dtype=np.int16)
    grey = np.abs(px - np.array([238, 240, 243])).max(axis=2) <= 6
    return grey.mean() < 0.6


async def test_the_before_photo_taken_in_by_one_worker_is_beside_the_after_photo_made_by_another(
        workers, tmp_path):
    a, b = await workers("a"), await workers("b")
    pid = await register(a, before_seed=44)
    await until(lambda: (b.store.get("problems", pid) or {}).get("photos_before"), "the problem reached B")
    before = b.store.get("problems", pid)["photos_before"][0]
    assert (tmp_path / "shared-media" / Path(before).relative_to("media")).is_file()
    assert not (tmp_path / "a" / "data" / "media").exists()  # not in A's own folder
    a.clock.advance(hours=3)
    reply = await submit_fix(b, pid, seed=45)
    assert reply.startswith(f"已提交 #{pid} 的整改情况,等待网格长张三核查。"), reply
    emu = b.emulator
    pictures = [emu.media[e["media_url"].rsplit("/", 1)[1]].data for e in emu.sent("app_message")
                if "zhangsan" in e["to"] and e.get("msgtype") == "image"]
    assert len(pictures) == 1 and panel_is_photo(pictures[0])


async def test_a_check_in_thumbnail_is_served_by_a_worker_that_did_not_take_the_photo(workers):
    a, b = await workers("a"), await workers("b")
    await a.image("lisi", photo(46, a.clock.now() - timedelta(minutes=1)))
    await until(lambda: b.store.get("checkins", "C1") is not None, "the check-in reached B")
    r = await b.client.get("/emulator/ui/checkin-thumb/C1")
    assert r.status == 200
    thumb = Image.open(io.BytesIO(await r.read()))
    assert thumb.format == "JPEG" and max(thumb.size) == 480


async def test_a_broken_or_huge_image_gets_the_polite_reply_and_leaves_nothing_behind(workers, tmp_path, pg_dsn):
    a = await workers("a")
    good = photo(47)
    for bad in (good[: len(good) // 2], png_claiming(100_000, 100_000)):
        a.clear()
        await a.image("lisi", bad)
        assert a.replies("lisi") == [PHOTO_UNREADABLE]
    shared = tmp_path / "shared-media"
    assert not shared.exists() or not any(p.is_file() for p in shared.rglob("*"))
    assert await asyncio.to_thread(fingerprint_rows, pg_dsn) == []
    assert list(a.store.docs("checkins")) == []


# --- moving over -------------------------------------------------------------------------------

async def test_photos_checked_in_before_the_move_to_postgres_are_still_found(aiohttp_client, tmp_path, pg_dsn, clock):
    files = tmp_path / "files"
    files.mkdir()
    old = await start_harness(aiohttp_client, write_config(files, base=on_store("tinydb")), clock)
    clock.set(clock.now() - timedelta(days=7))  # last week, on the file store
    await old.image("lisi", photo(48, clock.now() - timedelta(minutes=1)))
    assert old.last_reply("lisi").startswith("打卡成功")
    await old.client.close()
    assert migrate_to_postgres(files / "data", pg_dsn, io.StringIO()) == 0
    clock.set(clock.now() + timedelta(days=7))
    new = await start_harness(aiohttp_client, worker_config(tmp_path / "pg", pg_dsn, files / "data" / "media"), clock)
    await new.image("wangwu", photo(48, clock.now() - timedelta(days=7, minutes=1)))
    assert new.last_reply("wangwu").startswith("疑似重复照片,与 11月18日 李四 的打卡相同")


async def test_a_database_older_than_the_fingerprint_table_gets_its_check_ins_fingerprinted(tmp_path, pg_dsn):
    """Check-ins stored by a bot before migration 0050: applying it fills the table from their
    documents, the same numbers the bot itself would have written (high bit set or not)."""
    from bot.pg_bridge import PgBridge
    from bot.pg_schema import MIGRATIONS, ensure_partition, migrate
    from bot.photos.hashing import hex64
    from bot.photos.pg_fingerprints import signed
    earlier = tmp_path / "migrations"
    earlier.mkdir()
    for f in MIGRATIONS.glob("*.sql"):
        if f.name < "0050":
            (earlier / f.name).write_text(f.read_text(encoding="utf-8"), encoding="utf-8")
    hashes = list(fingerprint(8))
    hashes[0] |= 1 << 63  # pHash's first bit is set in most photos: PostgreSQL's bigint is signed
    doc = {"id": "C7", "msgid": "m7", "userid": "lisi", "name": "李四", "time": 1795570200,
           "phash": hex64(hashes[0]), "phash_crops": [hex64(h) for h in hashes[1:]], "duplicate_of": None}
    bridge = PgBridge(pg_dsn)
    try:
        await bridge.arun(lambda c: migrate(c, earlier))
        await bridge.arun(lambda c: ensure_partition(c, "2026-W48"))
        await bridge.arun(lambda c: c.execute("INSERT INTO docs VALUES ('2026-W48', 'checkins', 'C7', $1::json)",
                                              json.dumps(doc)))
        applied = await bridge.arun(migrate)
        assert applied[0] == "0050_photos.sql"
        assert applied == sorted(f.name for f in MIGRATIONS.glob("*.sql") if f.name >= "0050")
        rows = await bridge.arun(lambda c: c.fetch("SELECT msgid, checkin, name, at, hashes FROM photo_prints"))
    finally:
        await asyncio.to_thread(bridge.close)
    assert [tuple(r) for r in rows] == [("m7", "C7", "李四", 1795570200.0, [signed(h) for h in hashes])]
