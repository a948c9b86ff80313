"""The data directory's lock file: one owner (process or open ``Database``) at a time."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from tsdb_arrow.errors import LockedError

LOCK_FILE = "LOCK"


class DirectoryLock:
    """An exclusive ``flock`` on ``<dir>/LOCK``; the owner's pid is written into it."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise LockedError(
                f"{self.path.parent} is already open (lock held by pid {owner}); close the other "
                "Database or process first, or open a different directory"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
