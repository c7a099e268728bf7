"""A list's candidates as ranking reads them: column by column (``Candidates``), with the facts of their articles
(``Facts``: publication times, normalised titles, status, ids, sections, languages) that the rules and the dedupe
compare."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import overload

import numpy as np

from recommender.article import Article

_NON_WORD = re.compile(r"[\W_]+")


@dataclass(slots=True)
class Candidate:
    """One candidate, for callers that hand-make a few (tests, notebooks); ``Candidates.of`` turns them into
    the columns ``rank`` works on."""

    key: int
    article: Article
    vector: np.ndarray
    semantic: float
    lexical: float = 0.0
    popularity: float = 0.0  # in [0, 1]; read only when popularity_weight is set


@dataclass(frozen=True, slots=True)
class Facts:
    """What ranking reads of candidates' articles besides their scores and vectors, as columns (``facts_of``):
    strings as their ``text_hash``, so the facts of every article can be written once to a file that every
    process reads (``recommender.rowfile``) and ranking parses only the articles it shows."""

    published_us: np.ndarray  # (n,) int64: microseconds since the epoch (0 where ``dated`` is false)
    dated: np.ndarray  # (n,) bool: the publication time is known
    title_hashes: np.ndarray  # (n,) int64: ``title_hash``, equal for the same normalised title
    published: np.ndarray  # (n,) bool: the article's status is published
    id_hashes: np.ndarray  # (n,) int64: ``text_hash`` of the article's id
    section_hashes: np.ndarray  # (n,) int64: ``text_hash`` of its section (0: none)
    language_hashes: np.ndarray  # (n,) int64: ``text_hash`` of its language (0: none)

    def __len__(self) -> int:
        return len(self.published_us)

    def take(self, rows: np.ndarray) -> Facts:
        """The facts of ``rows`` (positions), in their order."""
        return Facts(*(getattr(self, name)[rows] for name in FACT_COLUMNS))

    @staticmethod
    def joined(parts: Sequence[Facts]) -> Facts:
        return Facts(*(np.concatenate([getattr(p, name) for p in parts]) for name in FACT_COLUMNS))

    def stacked(self) -> np.ndarray:
        """The facts as one (n, 7) int64 matrix, a row per article (``unstacked`` reads it back)."""
        return np.column_stack([getattr(self, name).astype(np.int64) for name in FACT_COLUMNS])

    @staticmethod
    def unstacked(rows: np.ndarray) -> Facts:
        return Facts(*(rows[:, i].astype(kind) for i, kind in enumerate(FACT_COLUMNS.values())))


# Facts' columns, in order, with their types: what a rows file and a row table hold beside vectors.
FACT_COLUMNS = {"published_us": np.int64, "dated": np.bool_, "title_hashes": np.int64, "published": np.bool_,
                "id_hashes": np.int64, "section_hashes": np.int64, "language_hashes": np.int64}


def facts_of(articles: Sequence[Article]) -> Facts:
    """The facts of ``articles``."""
    return fact_columns([a.id for a in articles], [a.title for a in articles], [a.published_at for a in articles],
                        [a.section for a in articles], [a.language for a in articles],
                        [a.is_published for a in articles])


def fact_columns(ids: Sequence[str], titles: Sequence[str], published_at: Sequence[datetime | None],
                 sections: Sequence[str | None], languages: Sequence[str | None],
                 published: Sequence[bool]) -> Facts:
    """The facts of articles given field by field (``facts_of``; the rows file reads the fields from the store)."""
    n = len(ids)
    return Facts(np.fromiter((0 if p is None else epoch_us(p) for p in published_at), dtype=np.int64, count=n),
                 np.fromiter((p is not None for p in published_at), dtype=bool, count=n),
                 np.fromiter((title_hash(t) for t in titles), dtype=np.int64, count=n),
                 np.fromiter(published, dtype=bool, count=n),
                 np.fromiter((text_hash(i) for i in ids), dtype=np.int64, count=n),
                 np.fromiter((text_hash(s) for s in sections), dtype=np.int64, count=n),
                 np.fromiter((text_hash(x) for x in languages), dtype=np.int64, count=n))


@lru_cache(maxsize=262_144)  # sections, languages and a box's blocks recur on every list
def text_hash(text: str | None) -> int:
    """A 64-bit hash of ``text``, the same in every process (Python's ``hash`` of a string is not); 0 for none
    (an empty text is a text: ``?section=`` matches no article without a section). Two distinct texts share one
    with a chance of ~2^-64: ranking compares these, not the texts."""
    if text is None:
        return 0
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little",
                          signed=True) or 1


def title_hash(title: str) -> int:
    """``text_hash`` of the title as compared for exact duplicates (``normalized_title``)."""
    return text_hash(normalized_title(title))


@dataclass(frozen=True, slots=True)
class Candidates:
    """The candidates of one list, column by column (row i: the i-th one found). Ranking works on whole columns,
    not on an object per candidate: a box ranks about 200 of them, and the refresher hundreds of boxes a second."""

    articles: Sequence[Article]  # read only for what is shown or compared word by word: parsed on demand
    vectors: np.ndarray  # (n, dim) float32, unit length
    semantic: np.ndarray  # (n,) float64: cosine to the source
    lexical: np.ndarray  # (n,) float64: the normalised lexical score, 0..~1
    popularity: np.ndarray  # (n,) float64 in [0, 1]; read only when popularity_weight is set
    facts: Facts

    @classmethod
    def of(cls, candidates: Sequence[Candidate], vectors: np.ndarray | None = None) -> Candidates:
        """``candidates`` as columns (``vectors``: theirs stacked in order, when the caller has them)."""
        if vectors is None:
            vectors = np.stack([c.vector for c in candidates]) if candidates else np.zeros((0, 0), np.float32)
        articles = [c.article for c in candidates]
        return cls(articles, vectors, np.array([c.semantic for c in candidates], dtype=np.float64),
                   np.array([c.lexical for c in candidates], dtype=np.float64),
                   np.array([c.popularity for c in candidates], dtype=np.float64), facts_of(articles))


class _OnDemand(Sequence[Article]):
    """A sequence of articles, one per entry of ``_entries``, each read only when indexed (``_article``)."""

    _entries: np.ndarray

    def __len__(self) -> int:
        return len(self._entries)

    @overload
    def __getitem__(self, at: int) -> Article: ...

    @overload
    def __getitem__(self, at: slice) -> Sequence[Article]: ...

    def __getitem__(self, at: int | slice) -> Article | Sequence[Article]:
        if isinstance(at, slice):
            return [self._article(i) for i in range(len(self))[at]]
        return self._article(at)

    def _article(self, at: int) -> Article:
        raise NotImplementedError


class ArticlesByKey(_OnDemand):
    """The articles of ``keys`` (row i: that of ``keys[i]``), each parsed only when read: ranking reads few of its
    candidates' articles (those it shows, those whose words it compares), the facts of all. ``load`` reads the
    articles of the keys given, all of them (a key the store lost since its facts were read is ``RowGone``)."""

    def __init__(self, keys: np.ndarray, known: dict[int, Article], load: Callable[[list[int]], dict[int, Article]]):
        self._entries, self._known, self._load = keys, known, load

    def _article(self, at: int) -> Article:
        key = int(self._entries[at])
        if key not in self._known:
            self.prefetch([at])
        return self._known[key]

    def __iter__(self) -> Iterator[Article]:
        self.prefetch(range(len(self)))
        return (self._known[int(k)] for k in self._entries)

    def prefetch(self, rows: Iterable[int]) -> None:
        """Parse the articles of ``rows`` (positions) in one read."""
        missing = [key for key in (int(self._entries[r]) for r in rows) if key not in self._known]
        if missing:
            loaded = self._load(missing)
            if gone := [key for key in missing if key not in loaded]:
                raise RowGone(gone)
            self._known.update(loaded)


class RowGone(LookupError):
    """Articles whose facts a list read were deleted before their text was: the list is ranked again after a
    follow (which stops them being candidates)."""


class Reordered(_OnDemand):
    """``articles`` at positions ``rows`` (``[articles[r] for r in rows]``, each read only when indexed)."""

    def __init__(self, articles: Sequence[Article], rows: np.ndarray):
        self._articles, self._entries = articles, rows

    def _article(self, at: int) -> Article:
        return self._articles[int(self._entries[at])]


def prefetched(articles: Sequence[Article], rows: Iterable[int]) -> None:
    """Parse the articles of ``rows`` in one read where ``articles`` are parsed on demand."""
    if isinstance(articles, ArticlesByKey):
        articles.prefetch(rows)


@lru_cache(maxsize=262_144)  # a bulk refresh of every box meets each title many times
def normalized_title(title: str) -> str:
    """The title as compared for exact duplicates: case, accents, punctuation and spacing ignored."""
    if title.isascii():  # the same result without the per-character pass (ASCII has no accents to drop)
        return _NON_WORD.sub(" ", title.lower()).strip()
    text = unicodedata.normalize("NFKD", title).casefold()
    return _NON_WORD.sub(" ", "".join(c for c in text if not unicodedata.combining(c))).strip()


_EPOCH, _MICROSECOND = datetime(1970, 1, 1, tzinfo=UTC), timedelta(microseconds=1)


@lru_cache(maxsize=262_144)  # a datetime keeps its hash: a look-up costs a fifth of the arithmetic
def epoch_us(when: datetime) -> int:
    """Microseconds since the epoch, exactly (a time without a zone is taken as UTC)."""
    return ((when if when.tzinfo is not None else when.replace(tzinfo=UTC)) - _EPOCH) // _MICROSECOND
