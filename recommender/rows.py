"""The candidate rows a list ranks, column by column: vectors and the facts ranking reads, and the articles, parsed
only where read.

A list ranks about 200 candidates and the refresher hundreds of lists a second: gathering a list's rows is one
index per column, not a dict look-up, a vector stack and a date conversion per candidate. Where there is a rows
file (``recommender.rowfile``) the rows written before its sequence are read there, and of those only the articles a
list shows are read from the store and kept parsed, alone; the other rows are read from the store and kept whole.
Kept rows stay until a followed write drops its own (a row changes only with a write of its article); a full table is
compacted, and starts over when even the rows it still holds fill it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from recommender.article import Article
from recommender.candidates import FACT_COLUMNS, ArticlesByKey, Facts, facts_of
from recommender.rowfile import RowsFile

Fetch = Callable[[list[int]], dict[int, tuple[Article, np.ndarray]]]
FetchArticles = Callable[[list[int]], dict[int, Article]]
_Row = TypeVar("_Row")


@dataclass(frozen=True, slots=True)
class Rows:
    """The rows of the keys asked for that the store holds, in the order asked."""

    keys: np.ndarray
    articles: Sequence[Article]
    vectors: np.ndarray  # (n, dim) float32
    facts: Facts


@dataclass(slots=True)
class _Columns:
    """One table's columns. Slots are filled in order and ``slot_of`` (by key, -1 = not held) is written last, so
    a reader holding this object sees a slot only once its row is complete; growing makes a new object."""

    slot_of: np.ndarray  # int32 by key
    articles: list[Article]
    vectors: np.ndarray
    facts: dict[str, np.ndarray]  # ``FACT_COLUMNS``

    @classmethod
    def empty(cls, capacity: int, dim: int, keys: int) -> _Columns:
        return cls(np.full(keys, -1, dtype=np.int32), [], np.zeros((capacity, dim), np.float32),
                   {name: np.zeros(capacity, kind) for name, kind in FACT_COLUMNS.items()})

    def slots(self, keys: np.ndarray) -> np.ndarray:
        inside = (keys >= 0) & (keys < len(self.slot_of))
        return np.where(inside, self.slot_of[np.where(inside, keys, 0)], -1)

    def rows(self, keys: np.ndarray, slots: np.ndarray) -> Rows:
        return Rows(keys, [self.articles[s] for s in slots.tolist()], self.vectors[slots],
                    Facts(*(self.facts[name][slots] for name in FACT_COLUMNS)))

    def put(self, start: int, articles: list[Article], vectors: np.ndarray, facts: Facts) -> None:
        """Rows written into the slots from ``start`` on (``slot_of`` is the caller's, and last)."""
        end = start + len(articles)
        self.vectors[start:end] = vectors
        for name, column in self.facts.items():
            column[start:end] = getattr(facts, name)
        self.articles[start:] = articles

    def rebuilt(self, capacity: int, keys: int) -> _Columns:
        """A copy with room for ``capacity`` rows and keys below ``keys``, holding only the rows still held (a
        dropped row's slot is not reused in place: its re-read takes a new one, reclaimed here)."""
        held = np.flatnonzero(self.slot_of >= 0)
        slots = self.slot_of[held]
        out = _Columns.empty(max(capacity, len(slots)), self.vectors.shape[1], max(keys, len(self.slot_of)))
        kept = self.rows(held, slots)
        out.put(0, list(kept.articles), kept.vectors, kept.facts)
        out.slot_of[held] = np.arange(len(slots), dtype=np.int32)
        return out


def _current_in(file: tuple[RowsFile, np.ndarray], keys: np.ndarray) -> np.ndarray:
    """Which of ``keys`` the rows file (with its keys written since) holds as they are now."""
    rows, stale = file
    current = (keys >= 0) & (keys < rows.size)
    current[current] = ~stale[keys[current]]
    return current


class RowTable:
    """Rows by store key, thread-safe; ``fetch`` reads rows from the store, ``fetch_articles`` only their articles.
    ``drop`` the keys a write changed: a fetch that started before a drop is served but not kept (it may predate
    the write), and a rows file's row of a dropped key is not read again."""

    def __init__(self, fetch: Fetch, limit: int, fetch_articles: FetchArticles | None = None):
        self._fetch, self._limit = fetch, limit
        self._fetch_articles = fetch_articles
        self._lock = threading.Lock()
        self._drops = 0  # bumped by every ``drop`` (under the lock)
        self._columns: _Columns | None = None
        # The rows file read where it is current, and which of its keys were written since its sequence.
        self._file: tuple[RowsFile, np.ndarray] | None = None
        # The articles alone of keys the rows file holds current: their vectors and facts are read there, so a
        # list's shown articles (at 1M, mostly read once) cost no vector read, no facts, no table growth. Counted
        # with the table against ``limit``; a drop discards its keys' here too.
        self._shown: dict[int, Article] = {}
        self._maps_file = False  # ``map_file``

    def __len__(self) -> int:
        """Rows kept whole, and articles kept alone."""
        columns = self._columns
        return (0 if columns is None else len(columns.articles)) + len(self._shown)

    @property
    def reads_file(self) -> bool:
        """Whether rows are read from a rows file."""
        return self._file is not None

    @property
    def maps_file(self) -> bool:
        """Whether the rows file is read through a mapping (``map_file``)."""
        return self._file is not None and self._file[0].records is not None

    def use_file(self, rows: RowsFile, changed: np.ndarray) -> None:
        """Read rows from ``rows`` from now on, but for the keys ``changed`` since its sequence and those
        ``drop`` is given from now on: their rows are read from the store (and kept parsed)."""
        stale = np.zeros(rows.size, dtype=bool)
        stale[changed[(changed >= 0) & (changed < rows.size)]] = True
        with self._lock:
            self._file = (rows.mapped() if self._maps_file else rows, stale)

    def map_file(self) -> None:
        """Read the rows file through a mapping from now on (``RowsFile.mapped``): for an import's box processes,
        which read nearly every record of it, not for a server's (their PSS would grow by the file)."""
        with self._lock:
            self._maps_file = True
            if self._file is not None:
                self._file = (self._file[0].mapped(), self._file[1])

    def gather(self, keys: Sequence[int]) -> Rows:
        """The rows of ``keys`` (distinct) that the store holds, in their order (unpublished ones may be left out)."""
        wanted = np.asarray(keys, dtype=np.int64)
        file = self._file
        if file is None:
            return self._held(wanted)
        rows, current = file[0], _current_in(file, wanted)
        if not current.any():
            return self._held(wanted)
        # What the file holds of a key not written since is the key's row: none (zeros) if unpublished or gone.
        vectors, facts = rows.read(wanted[current])
        found = facts.published
        from_file = wanted[current][found]
        vectors, facts = vectors[found], facts.take(np.flatnonzero(found))
        if current.all():
            return Rows(from_file, ArticlesByKey(from_file, {}, self.articles), vectors, facts)
        held = self._held(wanted[~current])
        # Both parts in the order asked: the file's at their positions, the held ones (those found) at theirs.
        positions = np.concatenate([np.flatnonzero(current)[found],
                                    np.flatnonzero(~current)[np.isin(wanted[~current], held.keys)]])
        order = np.argsort(positions, kind="stable")
        keys_out = np.concatenate([from_file, held.keys])[order]
        known = dict(zip(held.keys.tolist(), held.articles, strict=True))
        return Rows(keys_out, ArticlesByKey(keys_out, known, self.articles),
                    np.concatenate([vectors, held.vectors.reshape(-1, rows.dim)])[order],
                    Facts.joined([facts, held.facts]).take(order))

    def articles(self, keys: Sequence[int]) -> dict[int, Article]:
        """The articles of ``keys`` that the store holds: those kept parsed, the others read and kept."""
        columns, drops = self._columns, self._drops  # before the file is read: a drop since is not kept
        out: dict[int, Article] = {}
        missing = np.asarray(keys, dtype=np.int64)
        if columns is not None:
            slots = columns.slots(missing)
            out = {key: columns.articles[slot] for key, slot in zip(missing.tolist(), slots.tolist(), strict=True)
                   if slot >= 0}
            missing = missing[slots < 0]
        file = self._file
        if file is not None and self._fetch_articles is not None:
            in_file = _current_in(file, missing)
            out.update(self._file_articles(missing[in_file].tolist(), self._fetch_articles, drops))
            missing = missing[~in_file]
        if len(missing):
            out.update((key, article) for key, (article, _) in self._load(missing.tolist()).items())
        return out

    def _file_articles(self, keys: list[int], fetch: FetchArticles, drops: int) -> dict[int, Article]:
        """The articles of ``keys`` (current in the rows file as of ``drops``): those kept, the others read and
        kept alone (``fetch``: ``fetch_articles``, known set)."""
        kept = self._shown
        out = {key: article for key in keys if (article := kept.get(key)) is not None}
        if missing := [key for key in keys if key not in out]:
            out.update(self._fetched_and_kept(fetch, missing, self._keep_shown_locked, drops))
        return out

    def _keep_shown_locked(self, fetched: dict[int, Article]) -> None:
        if len(self) + len(fetched) > self._limit:
            self._shown = {}  # starts over, as the table does
        self._shown.update(fetched)

    def _held(self, wanted: np.ndarray) -> Rows:
        """The rows of ``wanted`` kept parsed here, those not kept read from the store (and kept)."""
        columns = self._columns
        slots = columns.slots(wanted) if columns is not None else np.full(len(wanted), -1)
        if (slots < 0).any():
            fetched = self._load(wanted[slots < 0].tolist())
            now = self._columns
            now_slots = now.slots(wanted) if now is not None else slots
            found = (slots >= 0) | np.isin(wanted, np.fromiter(fetched, dtype=np.int64, count=len(fetched)))
            if (found & (now_slots < 0)).any():  # not kept (raced a write), or the table started over
                return self._detached(wanted, columns, fetched)
            columns, slots = now, now_slots
        if columns is None:
            return self._detached(wanted, None, {})  # nothing held yet: no key asked for is in the store
        held = slots >= 0
        return columns.rows(wanted[held], slots[held])

    def drop(self, keys: Sequence[int]) -> None:
        with self._lock:
            self._drops += 1
            if not len(keys):
                return
            dropped = np.asarray(keys, dtype=np.int64)
            columns = self._columns
            if columns is not None:
                columns.slot_of[dropped[dropped < len(columns.slot_of)]] = -1
            if self._file is not None:
                stale = self._file[1]
                stale[dropped[dropped < len(stale)]] = True
            if self._shown:  # each dropped key, or each kept one: whichever are fewer
                gone = set(dropped.tolist())
                if len(gone) <= len(self._shown):
                    for key in gone:
                        self._shown.pop(key, None)
                else:
                    self._shown = {k: a for k, a in self._shown.items() if k not in gone}

    def _load(self, keys: list[int]) -> dict[int, tuple[Article, np.ndarray]]:
        return self._fetched_and_kept(self._fetch, keys, self._keep_locked, self._drops)

    def _fetched_and_kept(self, fetch: Callable[[list[int]], dict[int, _Row]], keys: list[int],
                          keep_locked: Callable[[dict[int, _Row]], None], drops: int) -> dict[int, _Row]:
        """``fetch(keys)``, kept unless a drop came since ``drops`` was read (the fetch may predate its write)."""
        fetched = fetch(keys)
        if fetched:
            with self._lock:
                if drops == self._drops:
                    keep_locked(fetched)
        return fetched

    def _keep_locked(self, fetched: dict[int, tuple[Article, np.ndarray]]) -> None:
        keys = np.fromiter(fetched, dtype=np.int64, count=len(fetched))
        if self._columns is not None:  # a key another thread kept meanwhile keeps its row (no second slot)
            keys = keys[self._columns.slots(keys) < 0]
        if not len(keys):
            return
        new = {k: fetched[k] for k in keys.tolist()}
        articles = [a for a, _ in new.values()]
        columns = self._room_locked(len(articles), len(next(iter(new.values()))[1]), int(keys.max()) + 1)
        start = len(columns.articles)
        columns.put(start, articles, np.stack([v for _, v in new.values()]), facts_of(articles))
        columns.slot_of[keys] = np.arange(start, start + len(articles), dtype=np.int32)  # last: rows complete

    def _room_locked(self, rows: int, dim: int, keys: int) -> _Columns:
        """Columns with room for ``rows`` more rows and keys below ``keys``: these, a compacted (and if need be
        larger) copy, or a new table when even the rows still held leave no room (they are then fetched again
        as lists need them)."""
        columns = self._columns
        if columns is not None and len(columns.articles) + rows <= len(columns.vectors) \
                and keys <= len(columns.slot_of):
            return columns
        live = 0 if columns is None else int((columns.slot_of >= 0).sum())
        if columns is None or live + rows > self._limit:
            columns = _Columns.empty(max(rows, min(self._limit, 256)), dim, keys)
        else:  # doubling (amortised copies), up to the limit
            capacity = max(live + rows, min(2 * len(columns.vectors), self._limit))
            slots = len(columns.slot_of)
            columns = columns.rebuilt(capacity, max(keys, 2 * slots) if keys > slots else slots)
        self._columns = columns
        return columns

    def _detached(self, keys: np.ndarray, columns: _Columns | None,
                  fetched: dict[int, tuple[Article, np.ndarray]]) -> Rows:
        """The rows of ``keys`` from ``columns`` (the table as it was) where held there, else from ``fetched``."""
        slots = columns.slots(keys) if columns is not None else np.full(len(keys), -1)
        pairs: list[tuple[int, tuple[Article, np.ndarray]]] = []
        for key, slot in zip(keys.tolist(), slots.tolist(), strict=True):
            if slot >= 0 and columns is not None:
                pairs.append((key, (columns.articles[slot], columns.vectors[slot])))
            elif key in fetched:
                pairs.append((key, fetched[key]))
        articles = [a for _, (a, _) in pairs]
        vectors = np.stack([v for _, (_, v) in pairs]) if pairs else np.zeros((0, 0), np.float32)
        return Rows(np.array([k for k, _ in pairs], dtype=np.int64), articles, vectors, facts_of(articles))
