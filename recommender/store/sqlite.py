"""The SQLite backend, the embedded default: one file in the data dir (WAL: readers never block, one writer at a
time), its schema (PostgreSQL's: ``recommender.store.postgres.SCHEMA``; keep the two in step) and the columns added
to a data dir made by older code."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from recommender import fulltext
from recommender.store.articles import ArticleStore
from recommender.store.sql import Connection, Transaction

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
-- published_keys (every start, every rebuild) reads this alone: a walk of the rows, bodies included, took 0.18 s at
-- 100k articles, this index 0.03 s.
CREATE INDEX IF NOT EXISTS articles_published ON articles(status, key);
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
    items      TEXT NOT NULL,                    -- best first: stored_box (a JSON line of [item key, item id,
                                                 -- [also keys]], then each item's JSON on a line of its own),
                                                 -- a Zstandard-compressed BLOB (TEXT: stored before compression)
    floor      REAL,                             -- lowest ranked score when the box is full, else NULL
    seq        INTEGER NOT NULL,
    computed_at INTEGER                          -- epoch ms of the refresh that stored it (NULL: stored before)
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
    definition TEXT NOT NULL,             -- JSON: recommender.specs.ExperimentSpec
    active     INTEGER NOT NULL,          -- 1 = splits traffic now
    started_at INTEGER NOT NULL,          -- epoch ms: defined, or last redefined (its report starts here)
    stopped_at INTEGER                    -- epoch ms, NULL while active
);
-- == end of events and experiments ==
"""


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL journal, durable commits."""
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL: a write the API acknowledged survives power loss, not only a process crash.
    conn.execute("PRAGMA synchronous=FULL")
    return conn


# Columns added after a data dir may have been created: (table, column, declaration).
ADDED_COLUMNS = (("articles", "image_credit", "TEXT"), ("boxes", "computed_at", "INTEGER"))


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    """Bring a store made by older code to this schema (SQLite adds a nullable column without a rewrite)."""
    with Transaction(conn):  # two processes starting at once: one adds, the other then sees the column
        for table, column, declaration in ADDED_COLUMNS:
            present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
            if column not in present:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")


class SQLiteStore(ArticleStore):
    """The embedded default: one SQLite file in the data dir (WAL: readers never block, one writer at a time)."""

    MATCHES = fulltext.SQLITE_MATCHES
    KEYS_JOINED = "group_concat(key, ',')"

    @staticmethod
    def _match_query(words: list[str]) -> str:
        return fulltext.sqlite_query(words)

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
