"""One bot per data directory: an exclusive flock on data_dir/gridbot.lock, held while it runs.

Two bots on one data dir would replay the same pending messages and write clashing record ids
into one journal. The lock is taken before anything in the data dir is read or written (the
journal, the shards, the log file); a second `gridbot run` stops at once and names the process
that holds it. Readers (`gridbot stats`, `export`, `jobs run`) open the store read-only and
never take the lock, so they keep working beside the bot.

flock, not a pid file: the kernel drops the lock when the process dies, even by kill -9, so a
crash never leaves a stale lock behind. The file itself stays (unlinking it would let a third
process lock a fresh inode while the second still holds the old one); it only carries the pid.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_NAME = "gridbot.lock"

# This process's locks by resolved data dir: the command line takes the lock before logging
# starts and the runtime takes it again at startup; both mean one hold.
_held: dict[Path, list] = {}  # path -> [fd, holders]


class DataDirBusy(Exception):
    """Another running bot holds the data dir. The text is for the admin who started this one."""

    def __init__(self, path: Path, pid: int | None):
        self.path = path
        self.pid = pid
        who = f"(进程 {pid})" if pid else ""
        super().__init__(
            f"数据目录 {path} 已被另一个正在运行的网格助手占用{who}。同一份数据只能由一个网格助手使用:"
            f"如需重启,请先停止正在运行的那个;如需同时运行两个,请在配置文件 [bot] data_dir 中为它另设目录。"
            f"\n/ the data directory {path} is in use by another running gridbot"
            f"{f' (pid {pid})' if pid else ''}; stop it first, or give this one its own data_dir.")


def _holder_pid(fd: int) -> int | None:
    try:
        raw = os.pread(fd, 32, 0)
    except OSError:
        return None
    text = raw.decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


def acquire(data_dir: Path) -> None:
    """Hold the data dir's lock for this process (again, if it already does). Raises DataDirBusy
    when another process holds it, OSError when the lock file cannot be made."""
    path = Path(data_dir).resolve()
    entry = _held.get(path)
    if entry is not None:
        entry[1] += 1
        return
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _holder_pid(fd)
        os.close(fd)
        raise DataDirBusy(path, pid) from None
    except BaseException:
        os.close(fd)
        raise
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError:
        pass  # the pid is a courtesy for the message above; the lock is what counts
    _held[path] = [fd, 1]


def release(data_dir: Path) -> None:
    path = Path(data_dir).resolve()
    entry = _held.get(path)
    if entry is None:
        return
    entry[1] -= 1
    if entry[1] > 0:
        return
    del _held[path]
    try:
        os.ftruncate(entry[0], 0)
    except OSError:
        pass
    os.close(entry[0])  # closing the last descriptor releases the flock
