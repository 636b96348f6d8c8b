"""Where photo files live: one small interface, a folder behind it.

Records name a photo by the key photo_path made ("media/2026-W48/g1/2026-11-25_checkin_lisi_…jpg"),
never by where it lies, so the place can change without touching a record. With several bot
processes (a city on PostgreSQL), every process must reach every photo: a problem's before-photo
taken in by one worker is put beside the after-photo by another, the weekly archive is zipped
by whichever runs the job. `[store] media_dir` names that place; by default it is data_dir/media,
which is what a single bot has always used.

MediaStore is what the bot needs of such a place: put (all or nothing, idempotent: a photo's key
holds its content hash, so writing the same key twice writes the same bytes), get, exists, and a
local path when there is one (a web page or a zip file hands the file on as it is). FolderMedia
keeps them in a folder: a local disk for one machine, or an NFS/CIFS share every worker mounts.

Object storage (S3, MinIO, OSS) would be another implementation of the same four calls, on
paper only for now: put = PUT of the object (atomic by nature: an object appears whole or not at
all), get = GET, exists = HEAD, local_path = None (callers then read the bytes with get); the key
as the object name under a configured bucket and prefix.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Protocol

from bot.store_files import atomic_write

if TYPE_CHECKING:
    from bot.config import Config

PREFIX = "media"  # the first part of every key photo_path makes


class MediaStore(Protocol):
    def put(self, key: str, data: bytes) -> None:
        """Store `data` under `key`, whole or not at all (a process killed meanwhile leaves nothing)."""

    def get(self, key: str) -> bytes:
        """The bytes under `key`; FileNotFoundError when there are none."""

    def exists(self, key: str) -> bool: ...

    def local_path(self, key: str) -> Path | None:
        """A file holding the bytes, to hand on as is; None when the store has no files or no such key."""


class FolderMedia:
    """Photos as files under one folder; `root` stands for the keys' "media/" part."""

    def __init__(self, root: Path):
        self.root = root
        self._made = False

    def path(self, key: str) -> Path:
        """Where `key` lies; FileNotFoundError for a key outside the folder (a record is data: a
        key read from it must not name /etc/passwd through "..")."""
        parts = PurePosixPath(key).parts
        if len(parts) < 2 or parts[0] != PREFIX or any(p in ("..", "") for p in parts) or key.startswith("/"):
            raise FileNotFoundError(f"not a photo key: {key!r}")
        return self.root.joinpath(*parts[1:])

    def put(self, key: str, data: bytes) -> None:
        path = self.path(key)
        if not self._made:
            # Faces and places: only the bot's user may read them, as in data_dir (0700). The
            # folders below are then out of others' reach whatever their own mode.
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._made = True
        # A temp file of its own beside the target, then rename (bot.store_files.atomic_file):
        # two workers writing the same photo at once each rename a whole file over the other.
        atomic_write(path, data)

    def get(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def exists(self, key: str) -> bool:
        try:
            return self.path(key).is_file()
        except FileNotFoundError:
            return False

    def local_path(self, key: str) -> Path | None:
        try:
            p = self.path(key)
        except FileNotFoundError:
            return None
        return p if p.is_file() else None


def media_root(cfg: Config) -> Path:
    """`[store] media_dir` (relative to the config file's folder), else data_dir/media."""
    chosen = cfg.store.media_dir
    if chosen is None:
        return cfg.data_path / PREFIX
    if not chosen.is_absolute() and cfg.source is not None:
        return cfg.source.parent / chosen
    return chosen


def media_for(cfg: Config) -> MediaStore:
    return FolderMedia(media_root(cfg))
