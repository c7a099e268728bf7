"""The rules that turn nearest neighbours into a "Similar news" list: filters, scoring, dedupe, diversity."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

import numpy as np

from recommender.article import Article

STRATEGIES = ("default", "embedding", "tfidf", "bm25")
_NON_WORD = re.compile(r"[\W_]+")


@dataclass(frozen=True, slots=True)
class SimilarQuery:
    """What a caller asks for; the same for the HTTP API, the CLI and notebooks."""

    limit: int = 8
    section: str | None = None
    language: str | None = None
    max_age_days: float | None = None  # window around the source article's published_at
    exclude: frozenset[str] = frozenset()
    strategy: str = "default"
    explain: bool = False


@dataclass(frozen=True, slots=True)
class Weights:
    """How the default strategy mixes its signals (from Settings)."""

    lexical: float = 0.3
    recency: float = 0.15
    half_life_days: float | None = 7.0
    mmr_lambda: float = 0.85
    duplicate_threshold: float = 0.92


@dataclass(slots=True)
class Candidate:
    key: int
    article: Article
    vector: np.ndarray
    semantic: float
    lexical: float = 0.0


@dataclass(frozen=True, slots=True)
class Explanation:
    semantic: float
    lexical: float
    recency: float  # multiplier applied to the relevance, 1.0 = no effect
    diversity_penalty: float  # what MMR subtracted for resemblance to items above it


@dataclass(frozen=True, slots=True)
class Recommendation:
    article: Article
    score: float
    explanation: Explanation | None = None

    @property
    def id(self) -> str:
        return self.article.id


@dataclass(slots=True)
class _Scored:
    candidate: Candidate
    relevance: float
    title: str = ""
    recency: float = 1.0
    penalty: float = 0.0


@lru_cache(maxsize=65536)
def normalized_title(title: str) -> str:
    """The title as compared for exact duplicates: case, accents, punctuation and spacing ignored."""
    if title.isascii():  # the same result without the per-character pass (ASCII has no accents to drop)
        return _NON_WORD.sub(" ", title.lower()).strip()
    text = unicodedata.normalize("NFKD", title).casefold()
    return _NON_WORD.sub(" ", "".join(c for c in text if not unicodedata.combining(c))).strip()


def _days_between(a: datetime | None, b: datetime | None) -> float | None:
    if a is None or b is None:
        return None
    return abs((a - b).total_seconds()) / 86400.0


def passes_filters(source: Article, candidate: Article, query: SimilarQuery) -> bool:
    """The hard rules: never the source itself, never unpublished, never excluded, and the caller's filters."""
    if candidate.id == source.id or candidate.id in query.exclude or not candidate.is_published:
        return False
    if query.section is not None and candidate.section != query.section:
        return False
    if query.language is not None and candidate.language != query.language:
        return False
    if query.max_age_days is not None and source.published_at is not None:
        days = _days_between(source.published_at, candidate.published_at)
        if days is None or days > query.max_age_days:
            return False
    return True


def recency_factor(source: Article, candidate: Article, weights: Weights) -> float:
    """1.0 for a same-day item, falling to 1 - weights.recency as the gap grows (half-life decay)."""
    days = _days_between(source.published_at, candidate.published_at)
    if days is None or not weights.half_life_days or not weights.recency:
        return 1.0
    return 1.0 - weights.recency + weights.recency * 0.5 ** (days / weights.half_life_days)


def rank(
    source: Article,
    source_vector: np.ndarray,
    candidates: list[Candidate],
    query: SimilarQuery,
    weights: Weights,
) -> list[Recommendation]:
    """The list, best first. ``default`` mixes semantic and lexical relevance, weighs recency and diversifies
    with MMR; the single-signal strategies rank by their own signal. All share the hard rules and the dedupe."""
    source_title = normalized_title(source.title)
    scored: list[_Scored] = []
    for c in candidates:
        if not passes_filters(source, c.article, query):
            continue
        if query.strategy == "default":
            item = _Scored(c, (1 - weights.lexical) * c.semantic + weights.lexical * min(c.lexical, 1.0))
            item.recency = recency_factor(source, c.article, weights)
            item.relevance *= item.recency
        elif query.strategy == "embedding":
            item = _Scored(c, c.semantic)
        else:
            item = _Scored(c, c.lexical)
        item.title = normalized_title(c.article.title)
        scored.append(item)
    scored.sort(key=lambda s: -s.relevance)

    mmr = weights.mmr_lambda if query.strategy == "default" else 1.0
    chosen: list[_Scored] = []
    seen_titles = {source_title}
    chosen_vectors = np.zeros((0, len(source_vector)), dtype=np.float32)
    # Computed once, not once per pick: the candidates' vectors, their cosine to the source, their relevance
    # and which of them share a title (so that picking one blocks the others in one step).
    vectors = np.stack([s.candidate.vector for s in scored]) if scored else chosen_vectors
    sims_source = np.array([float(s.candidate.vector @ source_vector) for s in scored], dtype=np.float64)
    relevance = np.array([s.relevance for s in scored], dtype=np.float64)
    same_title: dict[str, list[int]] = {}
    for i, s in enumerate(scored):
        same_title.setdefault(s.title, []).append(i)
    blocked = np.zeros(len(scored), dtype=bool)
    blocked[same_title.get(source_title, [])] = True
    blocked |= ~(sims_source <= weights.duplicate_threshold)
    pool = np.arange(len(scored))  # positions in ``scored``, best relevance first
    while len(pool) and len(chosen) < query.limit:
        # Dedupe first: a same-title or near-identical candidate (to the source or an item above) never shows.
        max_chosen = (
            (vectors[pool] @ chosen_vectors.T).max(axis=1)
            if len(chosen) else np.zeros(len(pool), dtype=np.float32)
        )
        keep = np.flatnonzero(~blocked[pool] & (max_chosen <= weights.duplicate_threshold))
        if not len(keep):
            break
        values = mmr * relevance[pool[keep]] - (1 - mmr) * np.maximum(0.0, max_chosen[keep].astype(np.float64))
        best = int(keep[int(np.argmax(values))])
        winner = scored[pool[best]]
        winner.penalty = (1 - mmr) * max(0.0, float(max_chosen[best]))
        chosen.append(winner)
        seen_titles.add(winner.title)
        blocked[same_title[winner.title]] = True
        chosen_vectors = np.vstack([chosen_vectors, winner.candidate.vector[None, :]])
        pool = pool[keep[keep != best]]

    return [
        Recommendation(
            s.candidate.article,
            round(float(s.relevance), 6),
            Explanation(round(s.candidate.semantic, 6), round(float(s.candidate.lexical), 6),
                        round(s.recency, 6), round(s.penalty, 6)) if query.explain else None,
        )
        for s in chosen
    ]
