"""A disk that fills up, for a bot running in a child process.

As root (here and in CI) it is a real tmpfs of a few MB: `fill` writes a filler file until the
kernel says ENOSPC (leaving `leave` bytes free), `free` deletes it. Where mounting is not allowed
the same test runs against the bot process's file size limit instead (prlimit RLIMIT_FSIZE):
every file the bot grows beyond the journal's size plus `leave` is refused with EFBIG, which the
bot must treat exactly like a full disk.
"""

from __future__ import annotations

import errno
import os
import resource
import subprocess
from pathlib import Path


class SmallDisk:
    def __init__(self, root: Path, mb: int = 8):
        self.root = root / "disk"
        self.root.mkdir()
        self.mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mb}m", "tmpfs", str(self.root)],
                                      capture_output=True).returncode == 0
        self._filler = self.root / "filler.bin"
        self._pid: int | None = None
        self._limit: tuple[int, int] | None = None

    @property
    def how(self) -> str:
        return "tmpfs" if self.mounted else "RLIMIT_FSIZE"

    def free_bytes(self) -> int:
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize

    def fill(self, pid: int, leave: int = 0) -> None:
        """Leave about `leave` bytes for the bot (tmpfs counts whole 4 KiB pages)."""
        if self.mounted:
            block = b"\0" * 65536
            with open(self._filler, "ab", buffering=0) as f:
                while True:
                    room = self.free_bytes() - leave
                    if room <= 0:
                        break
                    try:
                        f.write(block[:max(4096, min(len(block), room))])
                    except OSError as e:
                        assert e.errno == errno.ENOSPC
                        break
            return
        journal = max((p.stat().st_size for p in self.root.rglob("journal/*.log")), default=0)
        self._pid = pid
        self._limit = resource.prlimit(pid, resource.RLIMIT_FSIZE)
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (journal + leave, self._limit[1]))

    def free(self) -> None:
        if self.mounted:
            self._filler.unlink(missing_ok=True)
        elif self._pid is not None and self._limit is not None:
            try:
                resource.prlimit(self._pid, resource.RLIMIT_FSIZE, self._limit)
            except ProcessLookupError:
                pass

    def close(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.root)], capture_output=True)
            self.mounted = False
