"""Where photo files go ([store] media_dir, bot.photos.media_store): the folder a config names,
written whole or not at all, never outside it."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from bot.config_loading import load_config
from bot.config_watch import needs_restart
from bot.photos.media_store import FolderMedia, media_root

from tests.support.factories import start_harness, write_config
from tests.support.problem_flow import photo

REPO = Path(__file__).resolve().parents[3]
KEY = "media/2026-W48/g1/2026-11-25_checkin_lisi_0123456789ab.jpg"


def with_media_dir(folder: Path, value: str) -> Path:
    path = write_config(folder)
    text = path.read_text(encoding="utf-8").replace("[store]\n", f'[store]\nmedia_dir = "{value}"\n', 1)
    path.write_text(text, encoding="utf-8")
    return path


def test_photos_go_to_the_configured_folder_relative_to_the_config_file(tmp_path):
    default = load_config(write_config(tmp_path))
    assert media_root(default) == tmp_path / "data" / "media"  # where a single bot always kept them
    assert media_root(load_config(with_media_dir(tmp_path, ""))) == tmp_path / "data" / "media"
    chosen = load_config(with_media_dir(tmp_path, "shared/photos"))
    assert media_root(chosen) == tmp_path / "shared" / "photos"
    assert needs_restart(default, chosen) == ["store.media_dir"]


async def test_a_check_in_photo_lands_in_the_media_dir_and_its_thumbnail_is_served(aiohttp_client, tmp_path, clock):
    h = await start_harness(aiohttp_client, with_media_dir(tmp_path, str(tmp_path / "nfs")), clock)
    await h.image("lisi", photo(5, clock.now() - timedelta(minutes=1)))
    assert h.last_reply("lisi").startswith("打卡成功")
    c = h.store.get("checkins", "C1")
    assert c["file"].startswith("media/2026-W48/g1/")  # records name the photo, not the folder
    assert (tmp_path / "nfs" / Path(c["file"]).relative_to("media")).read_bytes()[:2] == b"\xff\xd8"
    assert not (tmp_path / "data" / "media").exists()
    assert (tmp_path / "nfs").stat().st_mode & 0o777 == 0o700  # photos of people and places
    r = await h.client.get("/emulator/ui/checkin-thumb/C1")
    assert r.status == 200 and (await r.read())[:2] == b"\xff\xd8"


def test_a_key_from_a_record_never_reaches_outside_the_folder(tmp_path):
    media = FolderMedia(tmp_path / "media")
    (tmp_path / "secret.txt").write_text("x")
    for key in ("media/../secret.txt", "/etc/passwd", "secret.txt", "media/a/../../secret.txt", "media"):
        assert media.local_path(key) is None and not media.exists(key)
        with pytest.raises(FileNotFoundError):
            media.get(key)
        with pytest.raises(FileNotFoundError):
            media.put(key, b"y")
    assert (tmp_path / "secret.txt").read_text() == "x"


def test_workers_writing_the_same_photo_at_once_leave_it_whole(tmp_path):
    media = FolderMedia(tmp_path / "media")
    data = photo(6)
    threads = [threading.Thread(target=media.put, args=(KEY, data)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert media.get(KEY) == data
    assert [p.name for p in media.path(KEY).parent.iterdir()] == [Path(KEY).name]  # no temp file left


KILLED_MID_WRITE = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from bot.photos import media_store
    from bot.store_files import atomic_file

    class Stuck:  # writes half of the photo, says so, and hangs: the process is killed there
        def __init__(self, f):
            self.f = f
        def write(self, data):
            self.f.write(data[: len(data) // 2])
            self.f.flush()
            print("half", flush=True)
            time.sleep(60)

    def stuck_write(path, data):
        with atomic_file(path) as f:
            Stuck(f).write(data)
    media_store.atomic_write = stuck_write
    media_store.FolderMedia(Path(sys.argv[1])).put(sys.argv[2], b"\\xff\\xd8" + b"x" * 4_000_000)
""")


def test_a_worker_killed_mid_write_leaves_no_half_photo(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", KILLED_MID_WRITE, str(tmp_path / "media"), KEY],
                             cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "half"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    media = FolderMedia(tmp_path / "media")
    assert not media.exists(KEY) and media.local_path(KEY) is None
    data = photo(7)
    media.put(KEY, data)  # the next worker to get the photo writes it whole
    assert media.get(KEY) == data
