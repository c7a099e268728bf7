"""A list's candidates as ranking reads them: column by column (``Candidates``), with the facts of their articles
(``Facts``: publication times, normalised titles, status) that the rules and the dedupe compare."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

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
    """What ranking reads of candidates' articles besides their scores, as columns (``facts_of``)."""

    published_us: np.ndarray  # (n,) int64: microseconds since the epoch (0 where ``dated`` is false)
    dated: np.ndarray  # (n,) bool: the publication time is known
    title_ids: np.ndarray  # (n,) int64: the same normalised title (``normalized_title``), the same id
    titles: dict[str, int]  # normalised title -> its id
    published: np.ndarray  # (n,) bool: the article's status is published


def facts_of(articles: Sequence[Article], titles: dict[str, int]) -> Facts:
    """The facts of ``articles``; titles not in ``titles`` are added to it."""
    n = len(articles)
    published = [a.published_at for a in articles]
    normalized = [normalized_title(a.title) for a in articles]
    return Facts(np.fromiter((0 if p is None else epoch_us(p) for p in published), dtype=np.int64, count=n),
                 np.fromiter((p is not None for p in published), dtype=bool, count=n),
                 np.fromiter((titles.setdefault(t, len(titles)) for t in normalized), dtype=np.int64, count=n),
                 titles, np.fromiter((a.is_published for a in articles), dtype=bool, count=n))


@dataclass(frozen=True, slots=True)
class Candidates:
    """The candidates of one list, column by column (row i: the i-th one found). Ranking works on whole columns,
    not on an object per candidate: a box ranks about 200 of them, and the refresher hundreds of boxes a second."""

    articles: list[Article]
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
                   np.array([c.popularity for c in candidates], dtype=np.float64), facts_of(articles, {}))


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
