"""The stored boxes and their queues: each published article's default box, which boxes hold an item, the
boxes to recompute (``refresh_queue``) and the articles whose cached lists a CDN must drop (``purge_queue``).

A write queues what it made stale inside its own transaction (``enqueue_*``, called by the articles' writes and the
overrides'); the refresher reads the queue and stores the boxes it computed (``BoxTables.write_boxes``)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import zstandard
from tqdm.auto import tqdm

from recommender.store.sql import Connection, SQLStore, in_chunks, next_seq, now_ms, set_meta


@dataclass(frozen=True, slots=True)
class BoxState:
    """When an article's stored box was computed (None: before the time was kept), whether a refresh of it is
    queued, and how many items it holds."""

    computed_at: datetime | None
    queued: bool
    items: int


@dataclass(frozen=True, slots=True)
class StoredBox:
    """An article's stored default box, as stored (``stored_box``), and whether a refresh is pending."""

    stored: str | bytes
    pending: bool

    def items(self) -> Iterator[tuple[int, str, str, list[int]]]:
        """(item key, item id, item JSON, keys of the reports folded into the item) best first, each item decoded
        only when the caller reaches it."""
        lines = _lines(self.stored)
        head = json.loads(next(lines))
        if not head or len(head[0]) == 4:  # no items; or a box stored before this layout (queued on open)
            yield from (tuple(item) for item in head)
            return
        for (key, item_id, also), item in zip(head, lines, strict=True):
            yield key, item_id, item, also


def stored_box(items: Sequence[tuple[int, str, str, list[int]]], compress: bool) -> str | bytes:
    """A box's items as stored: a JSON line of (key, id, folded keys) per item, then each item's JSON on its own
    line (compact JSON never holds a raw newline). Reading it back parses the small first line only: the items'
    JSON is cut out, not parsed (a box read is the default request's whole cost). ``compress``: Zstandard-compressed
    UTF-8, for a database that does not compress its values itself (SQLite): a box of 20 items is ~11 KB of JSON,
    ~4 KB compressed, which a read from a cold disk fetches in one page instead of three or four chained ones."""
    head = json.dumps([[key, item_id, also] for key, item_id, _, also in items], ensure_ascii=False)
    text = head + "".join("\n" + item for _, _, item, _ in items)
    return compressed(text) if compress else text


def compressed(text: str) -> bytes:
    """A box's text as SQLite stores it (``stored_box``)."""
    return _CODEC.compressor.compress(text.encode())


def box_text(stored: str | bytes) -> str:
    """A stored box as text, decompressed if it was stored compressed."""
    return "\n".join(_lines(stored))


def _lines(stored: str | bytes) -> Iterator[str]:
    """A stored box's lines, each decoded only when read: a default list shows the first few."""
    if isinstance(stored, str):
        yield from stored.split("\n")
        return
    try:
        text = _CODEC.decompressor.decompress(stored)
    except zstandard.ZstdError as exc:
        raise ValueError(f"a stored box cannot be read ({exc}): queue it for a refresh (store.enqueue)") from exc
    # A newline byte is never part of a multi-byte UTF-8 character: splitting bytes is safe.
    yield from (line.decode() for line in text.split(b"\n"))


class _Codec(threading.local):
    """Zstandard's contexts, one per thread: a context is not safe to share between threads, and making one costs
    more than decompressing a box. Level 3, Zstandard's default: a box decompresses ~2.5× faster than with zlib,
    to the same size."""

    def __init__(self) -> None:
        self.compressor = zstandard.ZstdCompressor(level=3)
        self.decompressor = zstandard.ZstdDecompressor()


_CODEC = _Codec()  # a thread's first use makes its own contexts


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


def _stored(conn: Connection, rows: Sequence[tuple[int, str, str | bytes, float | None, int, int]]) -> set[int]:
    """Store the boxes of ``rows`` (key, article id, items, floor, sequence, computed at), each unless the box
    stored was computed at a later sequence: a refresher that lost its lock while it ranked (on PostgreSQL, its
    session dropped) stores after the one that took over, and an older box must not replace a newer one, nor its
    member rows. The keys stored (a row at a time: ``RETURNING`` says which)."""
    stored = set()
    for row in rows:
        if conn.execute(
                """INSERT INTO boxes (key, article_id, items, floor, seq, computed_at) VALUES (?, ?, ?, ?, ?, ?)
                   ON CONFLICT(key) DO UPDATE SET article_id=excluded.article_id, items=excluded.items,
                     floor=excluded.floor, seq=excluded.seq, computed_at=excluded.computed_at
                   WHERE boxes.seq <= excluded.seq
                   RETURNING key""", row).fetchone() is not None:
            stored.add(row[0])
    return stored


def _members(conn: Connection, box_keys: Sequence[int]) -> set[tuple[int, int]]:
    """The (item key, box key) member rows of ``box_keys`` (one read per 500 boxes)."""
    out: set[tuple[int, int]] = set()
    for chunk, marks in in_chunks(box_keys):
        out.update((r[0], r[1]) for r in conn.execute(
            f"SELECT item_key, box_key FROM box_members WHERE box_key IN ({marks})", chunk))
    return out


def drop_boxes(conn: Connection, keys: Sequence[int]) -> None:
    """An unpublished or deleted article has no box of its own (its holders keep their member rows)."""
    for key in keys:
        conn.execute("DELETE FROM boxes WHERE key = ?", (key,))
        conn.execute("DELETE FROM box_members WHERE box_key = ?", (key,))
        conn.execute("DELETE FROM refresh_queue WHERE key = ?", (key,))


class BoxTables(SQLStore):
    """The box and queue tables' reads and writes (the refresher's, and a stored list's read)."""

    COMPRESSED_BOXES = True  # see stored_box

    def write_boxes(self, boxes: Sequence[tuple[int, str, list[tuple[int, str, str, list[int]]], float | None]],
                    seq: int) -> None:
        """Store boxes computed at sequence ``seq`` as (key, article id, [(item key, item id, item JSON, keys of
        its folded reports)], floor), and take them off the queue unless a later write queued them again; one
        transaction. A folded report is a member of the box like the item it is listed under."""
        # Compressed before the write lock is taken: the writer's acknowledgements wait on that lock.
        values = {key: stored_box(items, self.COMPRESSED_BOXES) for key, article_id, items, _ in boxes if article_id}
        with self._write_lock, self.transaction() as conn:
            # Read once for the whole batch: which boxes are still published, which items still shown.
            published = _published(conn, [key for key, article_id, _, _ in boxes if article_id])
            shown = _still_shown(conn, {k for _, _, items, _ in boxes for item in items for k in (item[0], *item[3])})
            rows, members, done = [], {}, []
            computed_at = now_ms()
            for key, article_id, items, floor in boxes:
                if key not in published:  # gone when read, or unpublished or deleted since
                    done.append((key, seq))
                    continue
                # Items taken down by a write the computation did not see (and which could not queue this box:
                # it did not hold them yet) are dropped here, in the transaction that publishes the box, and
                # the box stays queued: a stored box never shows what is gone, whoever reads it.
                kept = [item for item in items if shown.issuperset((item[0], *item[3]))]
                value = values[key] if len(kept) == len(items) else stored_box(kept, self.COMPRESSED_BOXES)
                rows.append((key, article_id, value, floor, seq, computed_at))
                members[key] = [(k, key) for item in kept for k in (item[0], *item[3])]
                if len(kept) == len(items):
                    done.append((key, seq))
            stored = _stored(conn, rows)
            # Only the member rows that changed: a refresh mostly moves one or two items in or out of a box.
            before = _members(conn, sorted(stored))
            after = {member for key in stored for member in members[key]}
            conn.executemany("DELETE FROM box_members WHERE item_key = ? AND box_key = ?", sorted(before - after))
            conn.executemany("INSERT INTO box_members (item_key, box_key) VALUES (?, ?) ON CONFLICT DO NOTHING",
                             sorted(after - before))
            conn.executemany("DELETE FROM refresh_queue WHERE key = ? AND seq <= ?", done)

    def enqueue(self, keys: Iterable[int]) -> None:
        """Queue boxes for a refresh (their own write already committed, or none: a full recompute)."""
        with self._write_lock, self.transaction() as conn:
            enqueue_boxes(conn, keys, next_seq(conn))  # a write: followers drop the boxes they keep

    def compress_stored_boxes(self, chunk: int = 1000, progress: bool = False) -> int:
        """Compress the boxes stored as text by code before boxes were compressed, ``chunk`` keys a transaction
        (a write waits for one chunk at most; a live service keeps serving); returns how many. Their content is
        the same: nothing is queued, no follower needs to know. Nothing to do where the database compresses."""
        if not self.COMPRESSED_BOXES:
            return 0
        top = self._reader.execute("SELECT max(key) FROM boxes").fetchone()[0] or 0
        done = 0
        for low in tqdm(range(0, top + 1, chunk), unit="chunk", desc="compress boxes", disable=not progress):
            with self._write_lock, self.transaction() as conn:
                texts = conn.execute("SELECT key, items FROM boxes WHERE key >= ? AND key < ? AND typeof(items) = "
                                     "'text'", (low, low + chunk)).fetchall()
                conn.executemany("UPDATE boxes SET items = ? WHERE key = ?", [(compressed(t), k) for k, t in texts])
            done += len(texts)
        return done

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

    def queued(self, limit: int, share: tuple[int, int] = (0, 1)) -> list[int]:
        """Up to ``limit`` queued box keys, the longest waiting first; ``share`` (i, n): only keys equal to i
        modulo n, so that n processes computing the queue at once never take the same box."""
        part, parts = share
        # key modulo n, written without "%" (psycopg's placeholder character) and without mod() (not in every SQLite)
        rows = self._reader.execute("SELECT key FROM refresh_queue WHERE key - key / ? * ? = ? ORDER BY since, key "
                                    "LIMIT ?", (parts, parts, part, limit))
        return [r[0] for r in rows]

    def queue_length(self) -> int:
        return self._reader.execute("SELECT count(*) FROM refresh_queue").fetchone()[0]

    def any_box_stored(self) -> bool:
        """Whether any box is stored: while none is, every published article's box is queued (its own write
        queued it, and only a stored box or its unpublishing takes it off)."""
        return bool(self._reader.execute("SELECT EXISTS (SELECT 1 FROM boxes)").fetchone()[0])

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
        return StoredBox(row[0], bool(row[1]))

    def box_state(self, article_id: str) -> BoxState | None:
        """The state of an article's stored box (None: none stored: not computed yet, or unpublished)."""
        row = self._reader.execute(
            "SELECT computed_at, EXISTS(SELECT 1 FROM refresh_queue q WHERE q.key = b.key), items FROM boxes b "
            "WHERE article_id = ?", (article_id,)).fetchone()
        if row is None:
            return None
        at = None if row[0] is None else datetime.fromtimestamp(row[0] / 1000, UTC)
        return BoxState(at, bool(row[1]), len(json.loads(next(_lines(row[2])))))

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
