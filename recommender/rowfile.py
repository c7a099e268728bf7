"""The rows file: the vector of every published article and the facts ranking reads of it (``Facts``), by key, in one
file that every process of a server reads. A list reads its ~200 candidates there, one copy in the page cache for all
processes, instead of reading their rows from the store and parsing them (10-30 ms of a list at 1M articles, where
a process keeps a fifth of the rows parsed); it parses only the articles it shows.

A key's vector and facts are one record (a read of one page, not eight), read with ``preadv`` rather than mapped:
a fault on a mapped file also maps the cached pages around it (64 KB), so after 5 s of lists a worker mapped most of
the 2.1 GB file at 1M articles and the processes' PSS rose by 1.7 GB for pages the OS caches once anyway.

The process that saves the index checkpoint writes it at its checkpoints, as often as the lexical weights: the
previous file with what changed since, or the whole store when there is none. A process reads the rows written
after the file's sequence from the store, as it read every row before (``recommender.rows.RowTable``)."""

from __future__ import annotations

import logging
import mmap
import os
import time
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from index.files import check_store
from recommender.arrayfile import read_layout, writing_arrays
from recommender.candidates import FACT_COLUMNS, Facts, fact_columns
from recommender.store.articles import ArticleStore

log = logging.getLogger("recommender")

ROWS_FORMAT = 2  # the record's layout and ``text_hash``'s: a file of another is written whole again
_FACT_BYTES = 8 * len(FACT_COLUMNS)  # ``Facts.stacked``: int64 each


@dataclass(frozen=True)
class RowsFile:
    """An open rows file: the record of key k holds that article's vector, then its facts, where the facts say
    it is published (a published article at sequence ``seq``; the others are zero)."""

    seq: int
    model: str
    size: int  # keys below it have a record
    dim: int
    file: BinaryIO
    start: int  # where key 0's record begins
    records: np.ndarray | None = None  # every record, mapped (``mapped``); None: each read is a ``preadv``

    @property
    def record_bytes(self) -> int:
        return 4 * self.dim + _FACT_BYTES

    def mapped(self) -> RowsFile:
        """This file read through a read-only mapping of its records: a read is a copy from memory, not a system
        call a key (~0.5 ms of a box's ~5 at 1M articles). For a batch job: the process's RSS (and PSS) grows by
        the pages it touches, most of the file in an import's box processes: a server's processes read by calls."""
        if self.records is not None:
            return self
        length = self.size * self.record_bytes
        if not length:
            return self
        view = mmap.mmap(self.file.fileno(), self.start + length, access=mmap.ACCESS_READ)
        records = np.frombuffer(view, dtype=np.uint8, count=length, offset=self.start)
        return replace(self, records=records.reshape(self.size, self.record_bytes))

    def read(self, keys: np.ndarray) -> tuple[np.ndarray, Facts]:
        """The vectors and facts of ``keys`` (each below ``size``), in their order; one read a key."""
        if self.records is not None:
            records = self.records[keys]
        else:
            records = self._read(keys)
        return records[:, :4 * self.dim].view(np.float32), Facts.unstacked(records[:, 4 * self.dim:].view(np.int64))

    def _read(self, keys: np.ndarray) -> np.ndarray:
        width = self.record_bytes
        records = np.empty((len(keys), width), dtype=np.uint8)
        view, fd = records.reshape(-1).data, self.file.fileno()
        for at, key in enumerate(keys.tolist()):
            if os.preadv(fd, [view[at * width:(at + 1) * width]], self.start + key * width) != width:
                raise ValueError(f"the rows file ends before key {key}'s record")
        return records


def open_rows_file(path: Path, store: str | None = None) -> RowsFile:
    """The rows file at ``path``; raises ``FileNotFoundError``, or ``ValueError`` for one this version cannot
    read or one derived from another store than ``store`` (``index.files.check_store``). A file replaced after it
    was opened is read whole as it was."""
    file = open(path, "rb", buffering=0)  # its header and its records from this one file
    try:
        layout, meta = read_layout(file)
        check_store(path, meta.get("store", ""), store)
        if int(meta["format"]) != ROWS_FORMAT:
            raise ValueError(f"format {meta['format']}, not {ROWS_FORMAT}")
        records, dim = layout["rows"], int(meta["dim"])
        if len(records.shape) != 2 or records.shape[1] != 4 * dim + _FACT_BYTES:
            raise ValueError(f"records of {records.shape[1:]} bytes, not {4 * dim + _FACT_BYTES}")
        return RowsFile(int(meta["seq"]), meta["model"], records.shape[0], dim, file, records.offset)
    except (KeyError, ValueError) as exc:
        file.close()
        raise ValueError(f"rows file {path} is unreadable: {exc}") from exc


def rows_file_seq(path: Path, store: str | None = None) -> int:
    """The store sequence of the rows file at ``path``; -1 when there is none this version can read (nor one
    derived from ``store``)."""
    try:
        with open(path, "rb") as file:
            layout, meta = read_layout(file)
        check_store(path, meta.get("store", ""), store)
        return int(meta["seq"]) if int(meta.get("format", -1)) == ROWS_FORMAT and "rows" in layout else -1
    except (FileNotFoundError, ValueError):
        return -1


def write_rows_file(path: Path, store: ArticleStore, seq: int, model: str, dim: int) -> None:
    """Write the rows file of ``store`` stamped ``seq`` (a sequence whose writes are all in the store): the file
    at ``path``, if it is of ``model`` and of this store, with the rows written since its sequence read again,
    else every row. A row written after ``seq`` may be in either state: readers read those from the store."""
    started = time.monotonic()
    try:
        previous: RowsFile | None = open_rows_file(path, store.id)
    except (FileNotFoundError, ValueError):
        previous = None
    if previous is not None and (previous.model != model or previous.dim != dim):
        previous.file.close()
        previous = None
    try:
        _write(path, store, seq, model, dim, previous)
    finally:
        if previous is not None:
            previous.file.close()
    log.info("rows file at sequence %d written in %.1f s (%s)", seq, time.monotonic() - started,
             "every row read from the store" if previous is None else f"the rows changed since {previous.seq} read")


def _write(path: Path, store: ArticleStore, seq: int, model: str, dim: int, previous: RowsFile | None) -> None:
    since = -1 if previous is None else previous.seq
    size, width = max(store.max_key() + 1, 0 if previous is None else previous.size), 4 * dim + _FACT_BYTES
    metadata = {"format": str(ROWS_FORMAT), "seq": str(seq), "store": store.id, "model": model, "dim": str(dim)}
    with writing_arrays(path, {"rows": (np.uint8, (size, width))}, metadata) as (fd, layout):
        records = _Records(fd, layout["rows"].offset, width, size)
        if previous is not None:
            _copy(previous, records)
        for page in store.ranked_pages(since):
            records.put(page, dim)
        gone = store.deleted_since(since)
        gone = gone[gone < size]
        records.write(gone, np.zeros((len(gone), width), dtype=np.uint8))


def _copy(previous: RowsFile, records: _Records, chunk: int = 1 << 26) -> None:
    """The records of ``previous`` into the first of ``records``, ``chunk`` bytes at a time: copied by the kernel
    (``copy_file_range``: 0.8 s for 2.1 GB on this project's machines, against 20 s through ``pread`` and
    ``pwrite``), through this process where it cannot (another file system, another OS)."""
    total, source = previous.size * previous.record_bytes, previous.file.fileno()
    at = 0
    while at < total:
        length = min(chunk, total - at)
        try:
            copied = os.copy_file_range(source, records.fd, length, previous.start + at, records.start + at)
        except (AttributeError, OSError):
            part = os.pread(source, length, previous.start + at)
            copied = len(part)
            _write_all(records.fd, part, records.start + at)
        if not copied:
            raise ValueError("the previous rows file is shorter than its header says")
        at += copied


@dataclass(frozen=True)
class _Records:
    """The records of a rows file being written: ``size`` of ``width`` bytes from ``start`` in the file ``fd``."""

    fd: int
    start: int
    width: int
    size: int

    def put(self, rows: list[Any], dim: int) -> None:
        """Write ``rows`` (``RANKED_COLUMNS``) as records; a key beyond them (written after they were sized, so
        after the file's sequence) is left out, an unpublished row zeroed."""
        rows = [row for row in rows if row["key"] < self.size]
        if not rows:
            return
        keys = np.fromiter((row["key"] for row in rows), dtype=np.int64, count=len(rows))
        vectors = np.frombuffer(b"".join(row["vector"] for row in rows), dtype=np.float32)
        if len(vectors) != len(rows) * dim:
            raise ValueError(f"the store holds vectors of another dimension than {dim}: re-embed it")
        facts = fact_columns([row["id"] for row in rows], [row["title"] for row in rows],
                             [datetime.fromisoformat(row["published_at"]) if row["published_at"] else None
                              for row in rows],
                             [row["section"] for row in rows], [row["language"] for row in rows],
                             [row["status"] == "published" for row in rows])
        block = np.concatenate([vectors.reshape(len(rows), dim).view(np.uint8), facts.stacked().view(np.uint8)],
                               axis=1)
        block[~facts.published] = 0  # a file is the same whether written whole or from the last one
        self.write(keys, block)

    def write(self, keys: np.ndarray, block: np.ndarray) -> None:
        """Write row i of ``block`` as the record of ``keys[i]``: one write per run of consecutive keys (a page of
        the store's rows, in key order, is mostly one)."""
        for run in np.split(np.arange(len(keys)), np.flatnonzero(np.diff(keys) != 1) + 1):
            if len(run):
                _write_all(self.fd, np.ascontiguousarray(block[run[0]:run[-1] + 1]).data,
                           self.start + int(keys[run[0]]) * self.width)


def _write_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    """``pwrite`` all of ``data`` at ``offset`` (one call writes at most ~2 GiB on Linux)."""
    view = memoryview(data).cast("B")
    while len(view):
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written
