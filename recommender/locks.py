"""Locks on files in the data dir, shared by the processes serving it; the OS drops them when a holder dies."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class FileLock:
    """An ``flock`` on ``path``: ``try_exclusive()`` for a role held until released (the refresher),
    ``held(shared=...)`` around a short critical section (saving or reading the index files)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd: int | None = None

    def try_exclusive(self) -> bool:
        """Take the lock without waiting; True when this object holds it (now or already)."""
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    @contextmanager
    def held(self, shared: bool = False) -> Iterator[None]:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
