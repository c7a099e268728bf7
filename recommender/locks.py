"""Locks shared by the processes serving one store; the OS (a file) or PostgreSQL (a session) drops them when a
holder dies."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from recommender.settings import Settings


class RoleLock(Protocol):
    """A lock held by one process at a time for a role (the refresher), until released or its holder dies."""

    def try_exclusive(self) -> bool: ...

    def release(self) -> None: ...


def refresher_lock(settings: Settings) -> RoleLock:
    """The refresher's lock: an advisory lock in the PostgreSQL database every replica shares, else a file lock
    in the data dir (every process on one SQLite file runs on this machine)."""
    if settings.database_url is not None:
        from recommender.store.postgres import AdvisoryLock

        return AdvisoryLock(settings.database_url.get_secret_value())
    return FileLock(settings.data_dir / "refresher.lock")


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
