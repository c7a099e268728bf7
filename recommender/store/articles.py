"""The articles: metadata and vectors, tombstones of deleted ones, and their writes, which queue the boxes they
make stale in the same transaction. ``ArticleStore`` is the whole portable store (articles, boxes and queues, the
sequence); a backend subclasses it: ``recommender.store.sqlite``, ``recommender.store.postgres``."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

import numpy as np

from recommender.article import Article
from recommender.fulltext import query_words
from recommender.store.boxes import BoxTables, drop_boxes, enqueue_boxes, enqueue_holders, enqueue_purges
from recommender.store.sql import in_chunks, next_seq

_COLUMNS = ("key, id, title, lead, body, url, published_at, section, tags, language, image_url, image_credit, "
            "status")

# What ranking reads of an article besides its scores (``recommender.candidates.fact_columns``), and its vector.
RANKED_COLUMNS = "key, id, title, published_at, section, language, status, vector"

# Rows per read of ``changes_since`` and ``articles``: what a reader holds at once (bodies and vectors included).
CHANGES_CHUNK = 1000
# Up to this many pages of changes, each page's keys are found in the seq index and sorted (each page scans the
# index entries of every change after it again: cheap); beyond, the table is walked in key order once, reading
# every row, changed or not. SQLite, 50k articles: 20k changes in 0.23 s sorted a page at a time, 0.25 s walked;
# one change 0.2 ms found in the index, 67 ms walked.
FEW_PAGES = 50


def changes_query(table: str, few: bool, columns: str = "key") -> str:
    """The read of one page of ``table``'s rows written after a sequence number (``seq > ?``), keyset-paged on
    key (``key > ?``: the last key read; ``LIMIT ?``), in either plan; a ``+`` keeps a column's index out of
    the plan, in SQLite and PostgreSQL alike.

    ``few``: the page's keys alone, from the seq index, sorted (a plain ``ORDER BY key`` would walk the whole
    table in key order instead: 30-120 ms at 100k articles for a follow that reads one change); their rows are
    read by key after. Otherwise (everything, on a rebuild): ``columns`` of the rows, walking the table in key
    order from the last key, so each page reads only its own rows and sorts nothing."""
    if few:
        return f"SELECT key FROM {table} WHERE seq > ? AND +key > ? ORDER BY +key LIMIT ?"
    return f"SELECT {columns} FROM {table} WHERE +seq > ? AND key > ? ORDER BY key LIMIT ?"


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
        tags=() if row["tags"] == "[]" else tuple(json.loads(row["tags"])),  # most rows: ~170 parsed a list at 1M
        language=row["language"],
        image_url=row["image_url"],
        image_credit=row["image_credit"],
        status=row["status"],
    )


def _stored_article(row: Any) -> StoredArticle:
    return StoredArticle(row["key"], _row_article(row), row["content_hash"], _vector(row["vector"]))


def _vector(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.float32)


class ArticleStore(BoxTables):
    """Thread-safe, as ``SQLStore`` is; a backend gives how to connect, its schema and how a write begins."""

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
            drop_boxes(conn, gone)
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
            drop_boxes(conn, [key])
            return key

    def keys_of(self, article_ids: Sequence[str]) -> dict[str, int]:
        """The keys of those ``article_ids`` that are stored (one read per 500 ids)."""
        out: dict[str, int] = {}
        for chunk, marks in in_chunks(article_ids):
            out.update(self._reader.execute(f"SELECT id, key FROM articles WHERE id IN ({marks})", chunk))
        return out

    # -- reads ----------------------------------------------------------------------------------
    # The backend's full-text condition (one parameter) and the query it takes (``recommender.fulltext``).
    MATCHES: ClassVar[str]
    # The backend's aggregate that joins a column of keys into one text, comma-separated.
    KEYS_JOINED: ClassVar[str]

    @staticmethod
    def _match_query(words: list[str]) -> str:
        raise NotImplementedError

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

    def articles_by_keys(self, keys: Sequence[int]) -> dict[int, Article]:
        """Only the articles of FAISS keys (those still in the store): what a list shows of a row whose vector and
        facts it read elsewhere (``recommender.rowfile``)."""
        out: dict[int, Article] = {}
        for chunk, marks in in_chunks(int(k) for k in keys):
            for row in self._reader.execute(f"SELECT {_COLUMNS} FROM articles WHERE key IN ({marks})", chunk):
                out[row["key"]] = _row_article(row)
        return out

    def vectors_by_keys(self, keys: Sequence[int]) -> dict[int, np.ndarray]:
        """Only the vectors of FAISS keys: what exact re-scoring of index candidates reads (no row parsing)."""
        out: dict[int, np.ndarray] = {}
        for chunk, marks in in_chunks(int(k) for k in keys):
            out.update((row[0], _vector(row[1])) for row in
                       self._reader.execute(f"SELECT key, vector FROM articles WHERE key IN ({marks})", chunk))
        return out

    def changes_since(self, seq: int, chunk: int = CHANGES_CHUNK) -> Iterator[Change]:
        """Articles written and deleted after ``seq`` (their latest state), in key order: the written ones, then the
        deleted ones, read ``chunk`` rows at a time (``change_pages``)."""
        for page in self.change_pages(seq, chunk):
            yield from page

    def change_pages(self, seq: int, chunk: int = CHANGES_CHUNK) -> Iterator[list[Change]]:
        """``changes_since`` a page at a time: at most ``chunk`` changes each, all that a reader holds at once.

        Each page is a read of its own, after the last key of the one before: an article written meanwhile is
        read in its newer state if its key is still ahead, else at the next follow (its sequence number is
        beyond the head the caller read first); none is lost."""
        for rows in self._pages("articles", f"{_COLUMNS}, vector", seq, chunk):
            yield [Change(row["key"], row["status"] == "published", _vector(row["vector"]), _row_article(row))
                   for row in rows]
        for rows in self._pages("tombstones", "key", seq, chunk):
            yield [Change(row[0], False, None) for row in rows]

    def _pages(self, table: str, columns: str, seq: int, chunk: int) -> Iterator[list[Any]]:
        """``columns`` (key first) of the rows of ``table`` written after ``seq``, in key order, ``chunk`` rows a
        page, each page a read of its own (in the plan ``changes_query`` gives)."""
        few = self._few_changes(table, seq, chunk)
        sql, last = changes_query(table, few, columns), -1
        while True:
            rows = self._reader.execute(sql, (seq, last, chunk)).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            if few and columns != "key":
                # Read by key: a row deleted since its key was read is gone (its tombstone is read after).
                yield [row for keys, marks in in_chunks(row[0] for row in rows) for row in self._reader.execute(
                    f"SELECT {columns} FROM {table} WHERE key IN ({marks}) ORDER BY key", keys)]
            else:
                yield rows
            if len(rows) < chunk:
                return

    def _few_changes(self, table: str, seq: int, chunk: int) -> bool:
        """Whether ``table``'s rows written after ``seq`` fill ``FEW_PAGES`` pages at most (counted in the seq
        index, up to one more than that)."""
        most = FEW_PAGES * chunk
        return self._reader.execute(f"SELECT count(*) FROM (SELECT 1 FROM {table} WHERE seq > ? LIMIT ?) AS changed",
                                    (seq, most + 1)).fetchone()[0] <= most

    def ranked_pages(self, seq: int, chunk: int = CHANGES_CHUNK) -> Iterator[list[Any]]:
        """``change_pages`` of the articles written after ``seq`` as rows of ``RANKED_COLUMNS``, unparsed."""
        yield from self._pages("articles", RANKED_COLUMNS, seq, chunk)

    def deleted_since(self, seq: int) -> np.ndarray:
        """The keys of the articles deleted after ``seq``."""
        return np.fromiter((row[0] for page in self._pages("tombstones", "key", seq, CHANGES_CHUNK) for row in page),
                           dtype=np.int64)

    def changed_since(self, seq: int) -> np.ndarray:
        """The keys of the articles written or deleted after ``seq`` (from the sequence indexes)."""
        rows = self._reader.execute("SELECT key FROM articles WHERE seq > ? UNION ALL "
                                    "SELECT key FROM tombstones WHERE seq > ?", (seq, seq)).fetchall()
        return np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))

    def max_key(self) -> int:
        """The largest key an article was given (-1: none yet); keys are never reused."""
        (last,) = self._reader.execute("SELECT max(key) FROM (SELECT max(key) AS key FROM articles UNION ALL "
                                       "SELECT max(key) FROM tombstones) AS keys").fetchone()
        return -1 if last is None else int(last)

    def published_keys(self, limit: int | None = None) -> np.ndarray:
        """The published articles' keys (the first ``limit`` of them)."""
        # One row, the keys joined by the database and parsed by numpy: every process reads them at its start,
        # and a row per key took 1.0 s of it at 1M articles (0.2-0.3 s so; a list of rows first, ~100 MB more).
        keys = "SELECT key FROM articles WHERE status = 'published'" + ("" if limit is None else f" LIMIT {int(limit)}")
        (joined,) = self._reader.execute(f"SELECT {self.KEYS_JOINED} FROM ({keys}) AS published").fetchone()
        return np.fromstring(joined, dtype=np.int64, sep=",") if joined else np.zeros(0, dtype=np.int64)

    def read_rows_through(self, chunk: int = 50_000) -> Iterator[int]:
        """Read every article row once, body and vector included, and parse none: the database's pages are then
        cached (the OS's page cache, PostgreSQL's buffers), where lists read their candidates' rows from. A read
        of ``chunk`` keys a step; yields the rows of each: the caller may stop between two."""
        (last,) = self._reader.execute("SELECT max(key) FROM articles").fetchone()
        for low in range(0, (last or 0) + 1, chunk):
            # length() of text reads all of it; that of the vector (after the body) reads as far as the row goes.
            (rows,) = self._reader.execute("SELECT count(length(body) + length(vector)) FROM articles "
                                           "WHERE key >= ? AND key < ?", (low, low + chunk)).fetchone()
            yield int(rows)

    def articles(self, chunk: int = CHANGES_CHUNK) -> Iterator[tuple[int, Article]]:
        """Every stored article with its key, in key order, read ``chunk`` rows at a time (no read is held open
        while the caller works on what it got)."""
        for rows in self._pages("articles", _COLUMNS, -1, chunk):  # every row was written after -1
            for row in rows:
                yield row["key"], _row_article(row)
