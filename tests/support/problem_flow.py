"""A problem's whole life through the real callback: registered, fixed with an after-photo,
checked. Photos are real scenes (tests.support.photo_samples) with the EXIF a phone writes, so
that the after-photo passes as evidence unless a test means it not to."""

from __future__ import annotations

from datetime import datetime, timedelta

from tests.support.photo_samples import jpeg, scene

SIZE = (480, 360)


def photo(seed: int, taken: datetime | None = None, gps: tuple[float, float] | None = None) -> bytes:
    """A real-looking photo (different seeds are different pictures), taken at `taken`."""
    return jpeg(scene(seed, SIZE), taken=taken, gps=gps)


async def register(harness, userid: str = "lisi", text: str = "问题:幸福路3号楼下堆放建筑垃圾", *,
                   before_seed: int | None = None) -> str:
    """Registers a problem (with a before-photo when `before_seed` is given); returns "P1"."""
    await harness.text(userid, text)
    reply = harness.last_reply(userid)
    assert reply.startswith("已登记 #P"), reply
    pid = reply.split("#")[1].split(",")[0]
    if before_seed is not None:
        await harness.image(userid, photo(before_seed, harness.clock.now() - timedelta(minutes=1)))
        assert f"已添加现场照片到 #{pid}" in harness.last_reply(userid)
    return pid


async def submit_fix(harness, pid: str, fixer: str = "lisi", *, seed: int = 900, note: str = "已清理",
                     gps: tuple[float, float] | None = None) -> str:
    """"整改 #P1 已清理" and a fresh after-photo; returns the fixer's last reply."""
    await harness.text(fixer, f"整改 #{pid} {note}")
    await harness.image(fixer, photo(seed, harness.clock.now() - timedelta(minutes=2), gps=gps))
    return harness.last_reply(fixer)


async def fix_and_pass(harness, pid: str, fixer: str = "lisi", checker: str = "zhangsan", **kw) -> None:
    """The fix submitted and passed by text: the problem is closed (已销号)."""
    reply = await submit_fix(harness, pid, fixer, **kw)
    assert reply.startswith(f"已提交 #{pid}"), reply
    await harness.text(checker, f"核查 #{pid} 通过")
    assert harness.last_reply(checker).startswith(f"#{pid} 核查通过"), harness.last_reply(checker)
