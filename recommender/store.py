"""The store: article metadata and vectors, stored boxes, overrides, the write sequence and the refresh queue;
the source of truth the FAISS index is rebuilt from.

``ArticleStore`` holds every query, written once in SQL that SQLite and PostgreSQL both run (``?`` placeholders,
``INSERT ... ON CONFLICT``); a backend is a small subclass that says how to connect, its schema (one ``SCHEMA``
string per backend: a new column goes into each) and how a write transaction begins. ``SQLiteStore`` (a file in
the data dir, WAL) is the default; ``recommender.postgres.PostgresStore`` serves ``RECOMMENDER_DATABASE_URL``.
``open_store`` picks one from the settings."""

from __future__ import annotations

import errno
import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from recommender import fulltext
from recommender.article import Article
from recommender.fulltext import query_words

if TYPE_CHECKING:
    from recommender.settings import Settings

# Values per ``IN (...)`` (``in_chunks``): under every database's limit on a statement's variables.
IN_CHUNK = 500

# SQLite's schema (PostgreSQL's: recommender.postgres.SCHEMA; keep the two in step).
SCHEMA = """
CREATE TABLE IF NOT EXISTS articles (
    key          INTEGER PRIMARY KEY AUTOINCREMENT,  -- the FAISS id; never reused
    id           TEXT NOT NULL UNIQUE,               -- the site's id
    title        TEXT NOT NULL,
    lead         TEXT NOT NULL DEFAULT '',
    body         TEXT NOT NULL DEFAULT '',
    url          TEXT,
    published_at TEXT,                               -- ISO 8601, UTC
    section      TEXT,
    tags         TEXT NOT NULL DEFAULT '[]',
    language     TEXT,
    image_url    TEXT,
    image_credit TEXT,
    status       TEXT NOT NULL,
    content_hash TEXT NOT NULL,                      -- sha256 of the embedded text
    vector       BLOB NOT NULL,                      -- float32, L2-normalised
    seq          INTEGER NOT NULL                    -- store sequence number of the last write
);
CREATE INDEX IF NOT EXISTS articles_seq ON articles(seq);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
-- A deleted article's key and the write that deleted it: followers (other processes, the index checkpoint)
-- learn about a deletion from here, as they learn about upserts from articles.seq.
CREATE TABLE IF NOT EXISTS tombstones (key INTEGER PRIMARY KEY, id TEXT NOT NULL, seq INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS tombstones_seq ON tombstones(seq);
-- The stored default box of each published article: its items (JSON, up to the stored depth), as computed
-- at store sequence number seq.
CREATE TABLE IF NOT EXISTS boxes (
    key        INTEGER PRIMARY KEY,              -- the article's key
    article_id TEXT NOT NULL UNIQUE,
    items      TEXT NOT NULL,                    -- best first: box_text (a JSON line of [item key, item id,
                                                 -- [also keys]], then each item's JSON on a line of its own)
    floor      REAL,                             -- lowest ranked score when the box is full, else NULL
    seq        INTEGER NOT NULL
);
-- Which boxes hold an item: the boxes an update, unpublish, delete or block of that item can change.
CREATE TABLE IF NOT EXISTS box_members (
    item_key INTEGER NOT NULL,
    box_key  INTEGER NOT NULL,
    PRIMARY KEY (item_key, box_key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS box_members_box ON box_members(box_key);
-- Boxes to recompute, written in the transaction of the write that made them stale (a crash loses none).
-- seq: the latest write that queued the box (a refresh done at an older sequence leaves it queued);
-- since: the first one (how long the box has been waiting).
CREATE TABLE IF NOT EXISTS refresh_queue (
    key   INTEGER PRIMARY KEY,
    seq   INTEGER NOT NULL,
    since INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS refresh_queue_since ON refresh_queue(since);
-- Articles whose cached lists a CDN must drop (recommender.purges), written in the transaction of the write that
-- changed or removed them (a crash loses none); only while purges are on (RECOMMENDER_PURGE_URL).
-- seq: the latest write that queued it (a purge sent for an older one leaves it queued); attempts and due
-- (epoch ms): when it may be sent (the write's time, then the retries' backoff).
CREATE TABLE IF NOT EXISTS purge_queue (
    article_id TEXT PRIMARY KEY,
    seq        INTEGER NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    due        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS purge_queue_due ON purge_queue(due);
-- Editorial overrides (recommender.overrides): here because box writes check blocks in their transaction.
CREATE TABLE IF NOT EXISTS box_overrides (
    article_id TEXT NOT NULL,             -- whose box
    item_id    TEXT NOT NULL,             -- the item pinned or blocked
    position   INTEGER,                   -- 1-based slot for a pin; NULL for a block
    PRIMARY KEY (article_id, item_id)
);
CREATE TABLE IF NOT EXISTS blocked_everywhere (
    item_id TEXT PRIMARY KEY,
    reason  TEXT NOT NULL DEFAULT ''
);
-- Every change of a pin or block: who (the name the editor gave), when, why; written in the change's
-- transaction, never updated. box '' = every box (blocked everywhere).
CREATE TABLE IF NOT EXISTS override_log (
    seq      INTEGER NOT NULL,            -- the change's store sequence number
    at       INTEGER NOT NULL,            -- epoch milliseconds
    box      TEXT NOT NULL,               -- whose box; '' = every box
    item_id  TEXT NOT NULL,
    action   TEXT NOT NULL,               -- pin, unpin, block, unblock
    position INTEGER,                     -- a pin's slot
    editor   TEXT NOT NULL DEFAULT '',
    reason   TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (box, seq, item_id)
);
-- == Events and experiments (recommender.events, recommender.experiments; README "Events and experiments") ==
-- Plain SQL (INTEGER epoch milliseconds, TEXT, no SQLite-only types): a PostgreSQL backend ports it as it is.
-- What readers saw and clicked, as the site reported it; never read by the list's rules except through the
-- popularity signal (off by default). Older than RECOMMENDER_EVENTS_RETENTION_DAYS: folded into events_daily.
CREATE TABLE IF NOT EXISTS events (
    id         INTEGER PRIMARY KEY,
    ts         INTEGER NOT NULL,          -- when it happened (the site's clock), epoch ms
    received   INTEGER NOT NULL,          -- when it was stored, epoch ms
    kind       TEXT NOT NULL,             -- 'impression' or 'click'
    article_id TEXT NOT NULL,             -- the page (the box's article)
    item_id    TEXT NOT NULL,             -- the item shown or clicked
    position   INTEGER NOT NULL,          -- 1-based
    list_id    TEXT NOT NULL,             -- the list's id as the API returned it
    variant    TEXT NOT NULL              -- 'experiment/variant', or default, custom, preview
);
CREATE INDEX IF NOT EXISTS events_variant_ts ON events(variant, ts);
CREATE INDEX IF NOT EXISTS events_ts ON events(ts);
-- Pruned events, counted per UTC day: what reports and the popularity signal read beyond the retention.
CREATE TABLE IF NOT EXISTS events_daily (
    day         TEXT NOT NULL,            -- YYYY-MM-DD (UTC) of ts
    variant     TEXT NOT NULL,
    article_id  TEXT NOT NULL,
    item_id     TEXT NOT NULL,
    position    INTEGER NOT NULL,
    impressions INTEGER NOT NULL,
    clicks      INTEGER NOT NULL,
    PRIMARY KEY (day, variant, article_id, item_id, position)
);
-- Experiments defined over the API (one in settings is not stored); at most one has active = 1.
CREATE TABLE IF NOT EXISTS experiments (
    name       TEXT PRIMARY KEY,
    definition TEXT NOT NULL,             -- JSON: recommender.experiments.ExperimentSpec
    active     INTEGER NOT NULL,          -- 1 = splits traffic now
    started_at INTEGER NOT NULL,          -- epoch ms: defined, or last redefined (its report starts here)
    stopped_at INTEGER                    -- epoch ms, NULL while active
);
-- == end of events and experiments ==
"""

_COLUMNS = ("key, id, title, lead, body, url, published_at, section, tags, language, image_url, image_credit, "
            "status")


@dataclass(frozen=True, slots=True)
class StoredArticle:
    key: int
    article: Article
    content_hash: str
    vector: np.ndarray


@dataclass(frozen=True, slots=True)
class Change:
    """One article written or deleted since a given sequence number: what the indexes must mirror."""

    key: int
    published: bool
    vector: np.ndarray | None  # None for a deletion
    article: Article | None = None  # None for a deletion

    @property
    def live_vector(self) -> np.ndarray:
        """The vector of a written article (a deletion has none)."""
        assert self.vector is not None, f"change {self.key} is a deletion"
        return self.vector

    @property
    def live_article(self) -> Article:
        assert self.article is not None, f"change {self.key} is a deletion"
        return self.article


@dataclass(frozen=True, slots=True)
class StoredBox:
    """An article's stored default box: (item key, item id, item JSON, keys of the reports folded into the item)
    best first, and whether a refresh is pending."""

    items: list[tuple[int, str, str, list[int]]]
    pending: bool


def box_text(items: Sequence[tuple[int, str, str, list[int]]]) -> str:
    """A box's items as stored: a JSON line of (key, id, folded keys) per item, then each item's JSON on its own
    line (compact JSON never holds a raw newline). Reading it back parses the small first line only: the items'
    JSON is cut out, not parsed (a box read is the default request's whole cost)."""
    head = json.dumps([[key, item_id, also] for key, item_id, _, also in items], ensure_ascii=False)
    return head + "".join("\n" + item for _, _, item, _ in items)


def box_items(text: str) -> list[tuple[int, str, str, list[int]]]:
    head, _, rest = text.partition("\n")
    if not rest:  # no items; or a box stored before this layout, [[key, id, JSON, also], ...] (queued on open)
        return [tuple(item) for item in json.loads(head)]
    return [(key, item_id, item, also) for (key, item_id, also), item in
            zip(json.loads(head), rest.split("\n"), strict=True)]


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
    """What the store calls on a connection: ``sqlite3.Connection``, or ``recommender.postgres.PgConnection``."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Any: ...

    def executemany(self, sql: str, parameters: Any, /) -> Any: ...

    def close(self) -> None: ...


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL journal, durable commits."""
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL: a write the API acknowledged survives power loss, not only a process crash.
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def set_meta(conn: Connection, name: str, value: str) -> None:
    conn.execute("INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value=excluded.value",
                 (name, value))


def next_seq(conn: Connection) -> int:
    """Advance the store's write sequence inside the caller's transaction; returns the new value."""
    seq = int((conn.execute("SELECT value FROM meta WHERE name='seq'").fetchone() or [0])[0]) + 1
    set_meta(conn, "seq", str(seq))
    return seq


def enqueue_boxes(conn: Connection, keys: Iterable[int], seq: int) -> None:
    """Queue boxes for a refresh, inside the caller's transaction (the write that made them stale)."""
    conn.executemany(
        "INSERT INTO refresh_queue (key, seq, since) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET seq=excluded.seq",
        [(int(k), seq, seq) for k in keys])


def enqueue_purges(conn: Connection, article_ids: Iterable[str], seq: int) -> None:
    """Queue purges of the cached lists that show ``article_ids`` (or are their boxes), inside the caller's
    transaction (the write that changed them), due now; a purge already waiting is due again now, retries reset."""
    due = now_ms()
    conn.executemany("INSERT INTO purge_queue (article_id, seq, attempts, due) VALUES (?, ?, 0, ?) "
                     "ON CONFLICT(article_id) DO UPDATE SET seq=excluded.seq, attempts=0, due=excluded.due",
                     [(article_id, seq, due) for article_id in article_ids])


def in_chunks(values: Iterable[Any]) -> Iterator[tuple[list[Any], str]]:
    """The distinct ``values`` in runs of at most ``IN_CHUNK``, each with its ``?,?,...`` placeholders: every query
    with a caller-sized ``IN (...)`` reads or writes through this, so no batch runs into the database's limit on
    variables in one statement (999 in SQLite before 3.32, 32,766 since, lower where a build sets it; 65,535 in
    PostgreSQL)."""
    distinct = list(dict.fromkeys(values))
    for start in range(0, len(distinct), IN_CHUNK):
        chunk = distinct[start:start + IN_CHUNK]
        yield chunk, ",".join("?" * len(chunk))


def enqueue_holders(conn: Connection, item_keys: Iterable[int], seq: int) -> None:
    """Queue the boxes that hold any of ``item_keys``."""
    for chunk, marks in in_chunks(int(k) for k in item_keys):
        conn.execute(
            f"""INSERT INTO refresh_queue (key, seq, since)
                SELECT DISTINCT box_key, ?, ? FROM box_members WHERE item_key IN ({marks})
                ON CONFLICT(key) DO UPDATE SET seq=excluded.seq""", [seq, seq, *chunk])


def _still_shown(conn: Connection, keys: Iterable[int]) -> set[int]:
    """Those of ``keys`` that are stored, published and not blocked everywhere (one read per 500 keys)."""
    out: set[int] = set()
    for chunk, marks in in_chunks(keys):
        out.update(r[0] for r in conn.execute(f"""SELECT key FROM articles WHERE key IN ({marks})
                                                 AND status = 'published'
                                                 AND id NOT IN (SELECT item_id FROM blocked_everywhere)""", chunk))
    return out


def _published(conn: Connection, keys: Sequence[int]) -> set[int]:
    """Those of ``keys`` that are stored and published (one read per 500 keys)."""
    out: set[int] = set()
    for chunk, marks in in_chunks(keys):
        out.update(r[0] for r in conn.execute(
            f"SELECT key FROM articles WHERE key IN ({marks}) AND status = 'published'", chunk))
    return out


def _members(conn: Connection, box_keys: Sequence[int]) -> set[tuple[int, int]]:
    """The (item key, box key) member rows of ``box_keys`` (one read per 500 boxes)."""
    out: set[tuple[int, int]] = set()
    for chunk, marks in in_chunks(box_keys):
        out.update((r[0], r[1]) for r in conn.execute(
            f"SELECT item_key, box_key FROM box_members WHERE box_key IN ({marks})", chunk))
    return out


# Columns added after a data dir may have been created: (table, column, declaration).
ADDED_COLUMNS = (("articles", "image_credit", "TEXT"),)


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    """Bring a store made by older code to this schema (SQLite adds a nullable column without a rewrite)."""
    with Transaction(conn):  # two processes starting at once: one adds, the other then sees the column
        for table, column, declaration in ADDED_COLUMNS:
            present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
            if column not in present:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")


def now_ms() -> int:
    """The time as the store keeps it: epoch milliseconds."""
    return int(time.time() * 1000)


class SideStore:
    """Tables kept beside the articles (overrides, experiments, events), in the article store's database: its
    reader connections (``store.read``) and its write transactions (``with store.write_lock,
    store.transaction()``), so they move to PostgreSQL with it."""

    def __init__(self, store: ArticleStore):
        self._store = store


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


def _row_article(row: Any) -> Article:
    published = row["published_at"]
    return Article(
        id=row["id"],
        title=row["title"],
        lead=row["lead"],
        body=row["body"],
        url=row["url"],
        published_at=datetime.fromisoformat(published) if published else None,
        section=row["section"],
        tags=tuple(json.loads(row["tags"])),
        language=row["language"],
        image_url=row["image_url"],
        image_credit=row["image_credit"],
        status=row["status"],
    )


def _stored_article(row: Any) -> StoredArticle:
    return StoredArticle(row["key"], _row_article(row), row["content_hash"], _vector(row["vector"]))


def _vector(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.float32)


class ArticleStore:
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

    def _connect(self) -> Connection:
        raise NotImplementedError

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

    # -- meta -----------------------------------------------------------------------------------
    def meta(self, name: str) -> str | None:
        row = self._reader.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def keys_of(self, article_ids: Sequence[str]) -> dict[str, int]:
        """The keys of those ``article_ids`` that are stored (one read per 500 ids)."""
        out: dict[str, int] = {}
        for chunk, marks in in_chunks(article_ids):
            out.update(self._reader.execute(f"SELECT id, key FROM articles WHERE id IN ({marks})", chunk))
        return out

    def set_meta(self, name: str, value: str) -> None:
        with self._write_lock:
            set_meta(self._writer, name, value)

    @property
    def seq(self) -> int:
        return int(self.meta("seq") or 0)

    # -- writes ---------------------------------------------------------------------------------
    def upsert(self, rows: Sequence[tuple[Article, str, np.ndarray]], stale_boxes: Iterable[int] = ()) -> list[int]:
        """Insert or replace articles with their content hash and vector, in one transaction; returns their keys.

        The same transaction queues for a refresh the written articles' own boxes, the boxes that hold them
        and ``stale_boxes`` (those the caller found the new texts may enter)."""
        if not rows:
            return []
        with self._write_lock, self.transaction() as conn:
            seq = next_seq(conn)
            keys = []
            for article, digest, vector in rows:
                cur = conn.execute(
                    """INSERT INTO articles (id, title, lead, body, url, published_at, section, tags, language,
                                             image_url, image_credit, status, content_hash, vector, seq)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                       ON CONFLICT(id) DO UPDATE SET
                         title=excluded.title, lead=excluded.lead, body=excluded.body, url=excluded.url,
                         published_at=excluded.published_at, section=excluded.section, tags=excluded.tags,
                         language=excluded.language, image_url=excluded.image_url,
                         image_credit=excluded.image_credit, status=excluded.status,
                         content_hash=excluded.content_hash, vector=excluded.vector, seq=excluded.seq
                       RETURNING key""",
                    (
                        article.id, article.title, article.lead, article.body, article.url,
                        article.published_at.isoformat() if article.published_at else None,
                        article.section, json.dumps(list(article.tags), ensure_ascii=False), article.language,
                        article.image_url, article.image_credit, article.status, digest,
                        np.ascontiguousarray(vector, dtype=np.float32).tobytes(), seq,
                    ),
                )
                keys.append(cur.fetchone()[0])
            enqueue_holders(conn, keys, seq)
            if self.purges:
                enqueue_purges(conn, [article.id for article, _, _ in rows], seq)
            own = [k for k, (article, _, _) in zip(keys, rows, strict=True) if article.is_published]
            gone = [k for k, (article, _, _) in zip(keys, rows, strict=True) if not article.is_published]
            enqueue_boxes(conn, [*own, *stale_boxes], seq)
            self._drop_boxes(conn, gone)
        return keys

    def delete(self, article_id: str) -> int | None:
        """Remove an article (a new sequence number, a tombstone, its holders queued); returns the key it had,
        or None if it was not there."""
        with self._write_lock, self.transaction() as conn:
            row = conn.execute("SELECT key FROM articles WHERE id = ?", (article_id,)).fetchone()
            if row is None:
                return None
            key, seq = row[0], next_seq(conn)
            conn.execute("DELETE FROM articles WHERE key = ?", (key,))
            conn.execute("INSERT INTO tombstones (key, id, seq) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
                         "id=excluded.id, seq=excluded.seq", (key, article_id, seq))
            enqueue_holders(conn, [key], seq)
            if self.purges:
                enqueue_purges(conn, [article_id], seq)
            self._drop_boxes(conn, [key])
            return key

    @staticmethod
    def _drop_boxes(conn: Connection, keys: Sequence[int]) -> None:
        """An unpublished or deleted article has no box of its own (its holders keep their member rows)."""
        for key in keys:
            conn.execute("DELETE FROM boxes WHERE key = ?", (key,))
            conn.execute("DELETE FROM box_members WHERE box_key = ?", (key,))
            conn.execute("DELETE FROM refresh_queue WHERE key = ?", (key,))

    # -- stored boxes ---------------------------------------------------------------------------
    def write_boxes(self, boxes: Sequence[tuple[int, str, list[tuple[int, str, str, list[int]]], float | None]],
                    seq: int) -> None:
        """Store boxes computed at sequence ``seq`` as (key, article id, [(item key, item id, item JSON, keys of
        its folded reports)], floor), and take them off the queue unless a later write queued them again; one
        transaction. A folded report is a member of the box like the item it is listed under."""
        with self._write_lock, self.transaction() as conn:
            # Read once for the whole batch: which boxes are still published, which items still shown.
            published = _published(conn, [key for key, article_id, _, _ in boxes if article_id])
            shown = _still_shown(conn, {k for _, _, items, _ in boxes for item in items for k in (item[0], *item[3])})
            stored, members, done = [], [], []
            for key, article_id, items, floor in boxes:
                if key not in published:  # gone when read, or unpublished or deleted since
                    done.append((key, seq))
                    continue
                # Items taken down by a write the computation did not see (and which could not queue this box:
                # it did not hold them yet) are dropped here, in the transaction that publishes the box, and
                # the box stays queued: a stored box never shows what is gone, whoever reads it.
                kept = [item for item in items if shown.issuperset((item[0], *item[3]))]
                stored.append((key, article_id, box_text(kept), floor, seq))
                members += [(k, key) for item in kept for k in (item[0], *item[3])]
                if len(kept) == len(items):
                    done.append((key, seq))
            conn.executemany(
                """INSERT INTO boxes (key, article_id, items, floor, seq) VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT(key) DO UPDATE SET article_id=excluded.article_id, items=excluded.items,
                     floor=excluded.floor, seq=excluded.seq""", stored)
            # Only the member rows that changed: a refresh mostly moves one or two items in or out of a box.
            before = _members(conn, [row[0] for row in stored])
            after = set(members)
            conn.executemany("DELETE FROM box_members WHERE item_key = ? AND box_key = ?", sorted(before - after))
            conn.executemany("INSERT INTO box_members (item_key, box_key) VALUES (?, ?) ON CONFLICT DO NOTHING",
                             sorted(after - before))
            conn.executemany("DELETE FROM refresh_queue WHERE key = ? AND seq <= ?", done)

    def enqueue(self, keys: Iterable[int]) -> None:
        """Queue boxes for a refresh (their own write already committed, or none: a full recompute)."""
        with self._write_lock, self.transaction() as conn:
            enqueue_boxes(conn, keys, next_seq(conn))  # a write: followers drop the boxes they keep

    def requeue_boxes_of_other_format(self, box_format: str) -> int:
        """Queue every stored box unless the boxes were written in ``box_format`` (the item JSON's shape), and
        record it; one transaction, a write (followers drop the boxes they keep). A queued box is never served,
        so no item of an older shape is ever answered; returns how many were queued."""
        with self._write_lock, self.transaction() as conn:
            if (conn.execute("SELECT value FROM meta WHERE name='box_format'").fetchone() or [None])[0] == box_format:
                return 0
            keys = [r[0] for r in conn.execute("SELECT key FROM boxes").fetchall()]
            enqueue_boxes(conn, keys, next_seq(conn))
            set_meta(conn, "box_format", box_format)
            return len(keys)

    def queued(self, limit: int) -> list[int]:
        """Up to ``limit`` queued box keys, the longest waiting first."""
        rows = self._reader.execute("SELECT key FROM refresh_queue ORDER BY since, key LIMIT ?", (limit,))
        return [r[0] for r in rows]

    def queue_length(self) -> int:
        return self._reader.execute("SELECT count(*) FROM refresh_queue").fetchone()[0]

    def refresh_lag(self) -> int:
        """Writes since the oldest queued box was first queued, that one included; 0 when nothing is queued."""
        # meta's value is TEXT: PostgreSQL subtracts only once it is cast (SQLite casts by itself).
        row = self._reader.execute("SELECT CAST((SELECT value FROM meta WHERE name='seq') AS BIGINT) - min(since) + 1 "
                                   "FROM refresh_queue").fetchone()
        return int(row[0] or 0)

    def box(self, article_id: str) -> StoredBox | None:
        row = self._reader.execute(
            "SELECT items, EXISTS(SELECT 1 FROM refresh_queue q WHERE q.key = b.key) FROM boxes b "
            "WHERE article_id = ?", (article_id,)).fetchone()
        if row is None:
            return None
        return StoredBox(box_items(row[0]), bool(row[1]))

    def floors(self, keys: Sequence[int]) -> dict[int, float | None]:
        """The lowest ranked score of each stored box (None: not full); boxes not stored are left out."""
        out: dict[int, float | None] = {}
        for chunk, marks in in_chunks(int(k) for k in keys):
            out.update(self._reader.execute(f"SELECT key, floor FROM boxes WHERE key IN ({marks})", chunk).fetchall())
        return out

    def holders(self, item_key: int) -> list[int]:
        """Keys of the boxes that hold an item."""
        return [r[0] for r in self._reader.execute("SELECT box_key FROM box_members WHERE item_key = ?",
                                                   (item_key,))]

    # -- reads ----------------------------------------------------------------------------------
    def find(self, text: str, limit: int, include_unpublished: bool = True) -> list[Article]:
        """The article whose id is ``text``, then those with every word of it in their id, title, lead or URL
        (``recommender.fulltext``; a query of no word: those whose title holds it), the one whose id it is in
        another case first, then newest first; published ones only unless ``include_unpublished``."""
        words = query_words(text)
        if words:
            matches, argument = self.MATCHES, self._match_query(words)
        else:
            matches = "title LIKE ? ESCAPE '\\'"
            argument = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        shown = "(? OR status = 'published')"
        rows = self._reader.execute(
            f"""SELECT {_COLUMNS} FROM articles WHERE id = ? AND {shown}
                UNION ALL SELECT * FROM (SELECT {_COLUMNS} FROM articles WHERE {matches} AND id != ? AND {shown}
                                         ORDER BY lower(id) = lower(?) DESC, published_at DESC, key DESC
                                         LIMIT ?) AS found
                LIMIT ?""", (text, include_unpublished, argument, text, include_unpublished, text, limit, limit))
        return [_row_article(row) for row in rows]

    MATCHES: ClassVar[str] = fulltext.SQLITE_MATCHES  # the backend's full-text condition, one parameter

    @staticmethod
    def _match_query(words: list[str]) -> str:
        return fulltext.sqlite_query(words)

    def count(self) -> int:
        return self._reader.execute("SELECT count(*) FROM articles").fetchone()[0]

    def get(self, article_id: str) -> StoredArticle | None:
        row = self._reader.execute(
            f"SELECT {_COLUMNS}, content_hash, vector FROM articles WHERE id = ?", (article_id,)
        ).fetchone()
        return _stored_article(row) if row is not None else None

    def stored(self, article_ids: Iterable[str]) -> dict[str, StoredArticle]:
        """Those of ``article_ids`` that are stored, as stored (one read per 500 ids)."""
        out: dict[str, StoredArticle] = {}
        for chunk, marks in in_chunks(article_ids):
            for row in self._reader.execute(
                    f"SELECT {_COLUMNS}, content_hash, vector FROM articles WHERE id IN ({marks})", chunk):
                out[row["id"]] = _stored_article(row)
        return out

    def vectors_for(self, article_ids: Iterable[str]) -> dict[str, np.ndarray]:
        return {article_id: stored.vector for article_id, stored in self.stored(article_ids).items()}

    def by_keys(self, keys: Sequence[int]) -> dict[int, tuple[Article, np.ndarray]]:
        """Articles and their vectors for FAISS keys (those still in the store)."""
        out: dict[int, tuple[Article, np.ndarray]] = {}
        for chunk, marks in in_chunks(int(k) for k in keys):
            for row in self._reader.execute(f"SELECT {_COLUMNS}, vector FROM articles WHERE key IN ({marks})", chunk):
                out[row["key"]] = (_row_article(row), _vector(row["vector"]))
        return out

    def vectors_by_keys(self, keys: Sequence[int]) -> dict[int, np.ndarray]:
        """Only the vectors of FAISS keys: what exact re-scoring of index candidates reads (no row parsing)."""
        out: dict[int, np.ndarray] = {}
        for chunk, marks in in_chunks(int(k) for k in keys):
            out.update((row[0], _vector(row[1])) for row in
                       self._reader.execute(f"SELECT key, vector FROM articles WHERE key IN ({marks})", chunk))
        return out

    def changes_since(self, seq: int) -> Iterator[Change]:
        """Articles written and deleted after ``seq`` (their latest state), in key order."""
        # "+key": sort what the seq index finds; with a plain ORDER BY key SQLite walks the whole table in key
        # order instead (30-120 ms at 100k articles for a follow that reads one change).
        rows = self._reader.execute(
            f"SELECT {_COLUMNS}, vector FROM articles WHERE seq > ? ORDER BY +key", (seq,)).fetchall()
        deleted = self._reader.execute("SELECT key FROM tombstones WHERE seq > ? ORDER BY key", (seq,)).fetchall()
        for row in rows:
            yield Change(row["key"], row["status"] == "published", _vector(row["vector"]), _row_article(row))
        for row in deleted:
            yield Change(row[0], False, None)

    def published_keys(self) -> np.ndarray:
        rows = self._reader.execute("SELECT key FROM articles WHERE status = 'published'").fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def articles(self) -> Iterator[tuple[int, Article]]:
        for row in self._reader.execute(f"SELECT {_COLUMNS} FROM articles ORDER BY key"):
            yield row["key"], _row_article(row)


class SQLiteStore(ArticleStore):
    """The embedded default: one SQLite file in the data dir (WAL: readers never block, one writer at a time)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.where = str(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        super().__init__()

    def _connect(self) -> sqlite3.Connection:
        return connect(self.path)

    def _create_schema(self, conn: Connection) -> None:
        assert isinstance(conn, sqlite3.Connection)
        conn.executescript(SCHEMA)
        _add_missing_columns(conn)
        fulltext.create_sqlite_index(conn)


def open_store(settings: Settings) -> ArticleStore:
    """The store the settings name: PostgreSQL at ``database_url`` when set, else SQLite in the data dir."""
    if settings.database_url is not None:
        from recommender.postgres import PostgresStore  # psycopg is imported only when it is used

        store: ArticleStore = PostgresStore(settings.database_url.get_secret_value(), settings.box_cache)
    else:
        store = SQLiteStore(settings.db_path)
    store.purges = settings.purge_url is not None
    return store
