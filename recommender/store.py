"""Article metadata and vectors in SQLite (WAL): the source of truth the FAISS index is rebuilt from."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from recommender.article import Article

_SCHEMA = """
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
    status       TEXT NOT NULL,
    content_hash TEXT NOT NULL,                      -- sha256 of the embedded text
    vector       BLOB NOT NULL,                      -- float32, L2-normalised
    seq          INTEGER NOT NULL                    -- store sequence number of the last write
);
CREATE INDEX IF NOT EXISTS articles_seq ON articles(seq);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_COLUMNS = "key, id, title, lead, body, url, published_at, section, tags, language, image_url, status"


@dataclass(frozen=True, slots=True)
class StoredArticle:
    key: int
    article: Article
    content_hash: str
    vector: np.ndarray


@dataclass(frozen=True, slots=True)
class Change:
    """One row written since a given sequence number: what the index must mirror."""

    key: int
    published: bool
    vector: np.ndarray


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL journal, durable commits."""
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL: a write the API acknowledged survives power loss, not only a process crash.
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def _row_article(row: sqlite3.Row) -> Article:
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
        status=row["status"],
    )


def _vector(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.float32)


class ArticleStore:
    """Thread-safe: one writer connection behind a lock, one reader connection per thread (WAL readers never block)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._writer = self._connect()
        self._writer.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return connect(self.path)

    @property
    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    def close(self) -> None:
        self._writer.close()

    # -- meta -----------------------------------------------------------------------------------
    def meta(self, name: str) -> str | None:
        row = self._reader.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def set_meta(self, name: str, value: str) -> None:
        with self._write_lock:
            self._writer.execute("INSERT OR REPLACE INTO meta(name, value) VALUES (?, ?)", (name, value))

    @property
    def seq(self) -> int:
        return int(self.meta("seq") or 0)

    # -- writes ---------------------------------------------------------------------------------
    def upsert(self, rows: Sequence[tuple[Article, str, np.ndarray]]) -> list[int]:
        """Insert or replace articles with their content hash and vector, in one transaction; returns their keys."""
        if not rows:
            return []
        with self._write_lock:
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                seq = int((conn.execute("SELECT value FROM meta WHERE name='seq'").fetchone() or [0])[0]) + 1
                keys = []
                for article, digest, vector in rows:
                    cur = conn.execute(
                        """INSERT INTO articles (id, title, lead, body, url, published_at, section, tags, language,
                                                 image_url, status, content_hash, vector, seq)
                           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                           ON CONFLICT(id) DO UPDATE SET
                             title=excluded.title, lead=excluded.lead, body=excluded.body, url=excluded.url,
                             published_at=excluded.published_at, section=excluded.section, tags=excluded.tags,
                             language=excluded.language, image_url=excluded.image_url, status=excluded.status,
                             content_hash=excluded.content_hash, vector=excluded.vector, seq=excluded.seq
                           RETURNING key""",
                        (
                            article.id, article.title, article.lead, article.body, article.url,
                            article.published_at.isoformat() if article.published_at else None,
                            article.section, json.dumps(list(article.tags), ensure_ascii=False), article.language,
                            article.image_url, article.status, digest,
                            np.ascontiguousarray(vector, dtype=np.float32).tobytes(), seq,
                        ),
                    )
                    keys.append(cur.fetchone()[0])
                conn.execute("INSERT OR REPLACE INTO meta(name, value) VALUES ('seq', ?)", (str(seq),))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return keys

    def delete(self, article_id: str) -> int | None:
        """Remove an article; returns the key it had, or None if it was not there."""
        with self._write_lock:
            row = self._writer.execute("DELETE FROM articles WHERE id = ? RETURNING key", (article_id,)).fetchone()
            return row[0] if row else None

    # -- reads ----------------------------------------------------------------------------------
    def count(self) -> int:
        return self._reader.execute("SELECT count(*) FROM articles").fetchone()[0]

    def get(self, article_id: str) -> StoredArticle | None:
        row = self._reader.execute(
            f"SELECT {_COLUMNS}, content_hash, vector FROM articles WHERE id = ?", (article_id,)
        ).fetchone()
        if row is None:
            return None
        return StoredArticle(row["key"], _row_article(row), row["content_hash"], _vector(row["vector"]))

    def content_hashes(self, article_ids: Iterable[str]) -> dict[str, str]:
        ids = list(article_ids)
        out: dict[str, str] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self._reader.execute(f"SELECT id, content_hash FROM articles WHERE id IN ({marks})", chunk):
                out[row[0]] = row[1]
        return out

    def vectors_for(self, article_ids: Iterable[str]) -> dict[str, np.ndarray]:
        ids = list(article_ids)
        out: dict[str, np.ndarray] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self._reader.execute(f"SELECT id, vector FROM articles WHERE id IN ({marks})", chunk):
                out[row[0]] = _vector(row[1])
        return out

    def by_keys(self, keys: Sequence[int]) -> dict[int, tuple[Article, np.ndarray]]:
        """Articles and their vectors for FAISS keys (those still in the store)."""
        if not keys:
            return {}
        marks = ",".join("?" * len(keys))
        rows = self._reader.execute(
            f"SELECT {_COLUMNS}, vector FROM articles WHERE key IN ({marks})", [int(k) for k in keys]
        )
        return {row["key"]: (_row_article(row), _vector(row["vector"])) for row in rows}

    def vectors_by_keys(self, keys: Sequence[int]) -> dict[int, np.ndarray]:
        """Only the vectors of FAISS keys: what exact re-scoring of index candidates reads (no row parsing)."""
        if not keys:
            return {}
        marks = ",".join("?" * len(keys))
        rows = self._reader.execute(f"SELECT key, vector FROM articles WHERE key IN ({marks})", [int(k) for k in keys])
        return {row[0]: _vector(row[1]) for row in rows}

    def changes_since(self, seq: int) -> Iterator[Change]:
        rows = self._reader.execute("SELECT key, status, vector FROM articles WHERE seq > ? ORDER BY key", (seq,))
        for row in rows:
            yield Change(row["key"], row["status"] == "published", _vector(row["vector"]))

    def published_keys(self) -> np.ndarray:
        rows = self._reader.execute("SELECT key FROM articles WHERE status = 'published'").fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def articles(self) -> Iterator[tuple[int, Article]]:
        for row in self._reader.execute(f"SELECT {_COLUMNS} FROM articles ORDER BY key"):
            yield row["key"], _row_article(row)
