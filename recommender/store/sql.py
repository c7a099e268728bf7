"""What every backend's queries run on: connections, write transactions, the meta table and the write sequence,
``IN (...)`` in chunks, and the errors a storage answers with.

``SQLStore`` keeps one writer connection behind a lock and one reader connection per thread; a backend
(``recommender.store.sqlite``, ``recommender.store.postgres``) says how to connect, its schema and how a write
transaction begins. The tables' queries are written once, in SQL both backends run (``?`` placeholders,
``INSERT ... ON CONFLICT``): the boxes' in ``recommender.store.boxes``, the articles' in
``recommender.store.articles``."""

from __future__ import annotations

import errno
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, ClassVar, Protocol

# Values per ``IN (...)`` (``in_chunks``): under every database's limit on a statement's variables.
IN_CHUNK = 500


class StoreUnavailable(RuntimeError):
    """The database cannot be reached (down, restarting, network): nothing was written; retry later."""


# SQLite's primary result codes (an extended code's low byte) and PostgreSQL's SQLSTATEs for a storage that
# refuses writes for now, each with what is wrong.
_SQLITE_REFUSALS = {sqlite3.SQLITE_FULL: "the disk is full (or the server's file size limit is reached)",
                    sqlite3.SQLITE_IOERR: "a disk I/O error (a full disk, or a failing one)",
                    sqlite3.SQLITE_BUSY: "the database is locked by another process"}
_POSTGRES_REFUSALS = {"53100": "the database server's disk is full", "55P03": "the database is locked"}
_OS_REFUSALS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
                errno.EFBIG: "the server's file size limit is reached"}


def storage_refusal(exc: BaseException) -> str | None:
    """What is wrong, when ``exc`` is the storage refusing a write for now (a full disk, the file size limit,
    an I/O error, the database locked by another process): the transaction was rolled back, and the same write
    may succeed later. None for any other error."""
    if isinstance(exc, sqlite3.OperationalError):
        return _SQLITE_REFUSALS.get(getattr(exc, "sqlite_errorcode", 0) & 0xFF)
    if isinstance(exc, OSError):
        return _OS_REFUSALS.get(exc.errno or 0)
    return _POSTGRES_REFUSALS.get(getattr(exc, "sqlstate", None) or "")


class Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """What the store calls on a connection: ``sqlite3.Connection``, or ``recommender.store.postgres.PgConnection``."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Any: ...

    def executemany(self, sql: str, parameters: Any, /) -> Any: ...

    def close(self) -> None: ...


def set_meta(conn: Connection, name: str, value: str) -> None:
    conn.execute("INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value=excluded.value",
                 (name, value))


def next_seq(conn: Connection) -> int:
    """Advance the store's write sequence inside the caller's transaction; returns the new value."""
    seq = int((conn.execute("SELECT value FROM meta WHERE name='seq'").fetchone() or [0])[0]) + 1
    set_meta(conn, "seq", str(seq))
    return seq


def in_chunks(values: Iterable[Any]) -> Iterator[tuple[list[Any], str]]:
    """The distinct ``values`` in runs of at most ``IN_CHUNK``, each with its ``?,?,...`` placeholders: every query
    with a caller-sized ``IN (...)`` reads or writes through this, so no batch runs into the database's limit on
    variables in one statement (999 in SQLite before 3.32, 32,766 since, lower where a build sets it; 65,535 in
    PostgreSQL)."""
    distinct = list(dict.fromkeys(values))
    for start in range(0, len(distinct), IN_CHUNK):
        chunk = distinct[start:start + IN_CHUNK]
        yield chunk, ",".join("?" * len(chunk))


def now_ms() -> int:
    """The time as the store keeps it: epoch milliseconds."""
    return int(time.time() * 1000)


class Transaction:
    """``with Transaction(conn, begin):`` the backend's ``begin`` statements (one writer at a time) ... COMMIT, or
    ROLLBACK on any exception."""

    def __init__(self, conn: Connection, begin: Sequence[str] = ("BEGIN IMMEDIATE",)):
        self.conn = conn
        self.begin = begin

    def __enter__(self) -> Connection:
        for statement in self.begin:
            self.conn.execute(statement)
        return self.conn

    def __exit__(self, kind, value, traceback) -> None:
        self.conn.execute("COMMIT" if kind is None else "ROLLBACK")


class SQLStore:
    """Thread-safe: one writer connection behind a lock, one reader connection per thread. A backend subclass
    gives ``_connect``, ``_create_schema``, ``BEGIN`` (the statements that start a write transaction, one writer
    at a time across every process) and ``where`` (the database, for messages)."""

    BEGIN: ClassVar[Sequence[str]] = ("BEGIN IMMEDIATE",)
    # The statement that lets the writer connection's commits return before they reach the disk (None: the
    # backend has none here; its commits stay durable).
    RELAXED_COMMITS: ClassVar[str | None] = "PRAGMA synchronous=NORMAL"
    where: str

    def __init__(self) -> None:
        self._local = threading.local()
        # Whether writes queue purges for a CDN (open_store: RECOMMENDER_PURGE_URL is set).
        self.purges = False
        self._write_lock = threading.Lock()
        self._writer = self._connect()
        self._create_schema(self._writer)
        self.id = self._identity()

    def _connect(self) -> Connection:
        raise NotImplementedError

    def _identity(self) -> str:
        """The store's id: random, given at its first open (a copy made by ``recommender migrate`` keeps it).
        Every file derived from the store records it, so a data dir's files are never taken for another store's
        (``index.files.check_store``)."""
        read = "SELECT value FROM meta WHERE name = 'store_id'"
        row = self._writer.execute(read).fetchone()
        if row is None:  # processes opening a new store at once: the first one's id stands
            self._writer.execute("INSERT INTO meta (name, value) VALUES ('store_id', ?) ON CONFLICT(name) DO NOTHING",
                                 (uuid.uuid4().hex,))
            row = self._writer.execute(read).fetchone()
        return str(row[0])

    def _create_schema(self, conn: Connection) -> None:
        raise NotImplementedError

    def transaction(self) -> Transaction:
        """A write transaction on the writer connection (the caller holds ``write_lock``)."""
        return Transaction(self._writer, self.BEGIN)

    def relax_commits(self) -> None:
        """Commits of this store return before they are on disk: still atomic, so a power loss undoes the last
        ones whole, never tears one. For a process whose writes can all be done again (the refresher's: a box
        and its queue entry go in one transaction, so a lost box is still queued); never for acknowledged writes."""
        if self.RELAXED_COMMITS is not None:
            with self._write_lock:
                self._writer.execute(self.RELAXED_COMMITS)

    @property
    def write_lock(self) -> threading.Lock:
        return self._write_lock

    @property
    def _reader(self) -> Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    def close(self) -> None:
        self._writer.close()

    def followed(self, after: int, head: int) -> None:
        """Called once the process applied the writes after sequence ``after`` up to ``head``: a backend that
        keeps what it read drops what they changed (SQLite keeps nothing: its reads are local)."""

    def read(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        """The rows of one query on this thread's reader connection (for the overrides' tables)."""
        return self._reader.execute(sql, params).fetchall()

    def meta(self, name: str) -> str | None:
        row = self._reader.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def set_meta(self, name: str, value: str) -> None:
        with self._write_lock:
            set_meta(self._writer, name, value)

    @property
    def seq(self) -> int:
        return int(self.meta("seq") or 0)
