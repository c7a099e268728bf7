"""Files replaced whole: written beside their final name, synced, renamed over it, the rename synced. A process
that opened (or mapped) the old file keeps reading it whole; one that opens the name afterwards gets the new one
whole; a crash leaves one or the other, never half of either."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def file_stamp(path: Path) -> tuple[int, int] | None:
    """Which file is at ``path`` (its inode and mtime: each replacement is a new inode), None if none: a cheap test
    of whether a newer one is there to map."""
    try:
        stat = Path(path).stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns


def check_store(path: Path, recorded: str, store: str | None) -> None:
    """Refuse (``ValueError``) the file at ``path`` when it records another store than ``store``: a data dir
    pointed at another database (``RECOMMENDER_DATABASE_URL`` changed, the SQLite file replaced) must not serve
    the old store's vectors, terms or rows under the new store's keys. A file that records none (written before
    files recorded their store) passes, as does any file when ``store`` is None (a caller that does not check)."""
    if store is not None and recorded and recorded != store:
        raise ValueError(f"{path} was derived from another store ({recorded}), not this one ({store})")


def temporary_for(path: Path) -> Path:
    """Where ``path``'s next version is written: one name per file, so a writer killed mid-write leaves nothing
    that the next save does not overwrite (writers of one file take turns: the service's ``index.lock``)."""
    return Path(path).with_name(Path(path).name + ".tmp")


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """The temporary path to write ``path``'s next version to: when the block ends it replaces ``path``
    (``replace_durably``); when the block fails it is removed (a full disk keeps no GB-sized half file)."""
    tmp = temporary_for(path)
    try:
        yield tmp
        replace_durably(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def replace_durably(tmp: Path, final: Path) -> None:
    """Make the written ``tmp`` the file at ``final``, synced to disk (its data, then the directory's rename)."""
    fd = os.open(tmp, os.O_RDONLY)  # enough to sync it (Linux), whatever its mode
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, final)
    dir_fd = os.open(Path(final).parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_through(path: Path, chunk: int = 1 << 24) -> Iterator[int]:
    """Read ``path`` once from start to end, ``chunk`` bytes a step, and drop what was read: its pages are then in
    the OS page cache, where every process that maps the file finds them, instead of each search faulting them
    in from disk one by one (a cold HNSW search at 1M articles took 8-40 ms, a cached one 0.5 ms). Yields the
    bytes of each step (none without a file): the caller may stop between two."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    buffer = bytearray(chunk)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)  # larger read-ahead: one pass at the disk's speed
        while read := os.readv(fd, [buffer]):
            yield read
    finally:
        os.close(fd)
