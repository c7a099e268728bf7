"""The rules that turn nearest neighbours into a "Similar news" list: filters, scoring, dedupe, diversity."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, fields, replace
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np

from recommender.article import Article

if TYPE_CHECKING:
    from recommender.settings import Settings

Strategy = Literal["default", "embedding", "tfidf", "bm25"]
STRATEGIES: tuple[Strategy, ...] = get_args(Strategy)
GroupPick = Literal["best", "freshest"]  # which member of a same-story group represents it
_NON_WORD = re.compile(r"[\W_]+")


@dataclass(frozen=True, slots=True)
class SimilarQuery:
    """What a caller asks for; the same for the HTTP API (same parameter names), the CLI and notebooks."""

    limit: int = 8
    section: str | None = None
    language: str | None = None
    exclude: frozenset[str] = frozenset()
    strategy: Strategy = "default"
    explain: bool = False
    group_stories: bool = True  # one item per same-story group
    group_pick: GroupPick = "best"
    # Per-request overrides of the Ranking fields (and settings) of the same names; None = as configured.
    window_days: float | None = None  # 0 = no window
    recency_half_life_days: float | None = None
    mmr_lambda: float | None = None
    same_language_only: bool | None = None
    popularity_weight: float | None = None


# The Ranking fields a query may override (SimilarQuery's fields of the same names).
PER_REQUEST = ("window_days", "recency_half_life_days", "mmr_lambda", "same_language_only", "popularity_weight")


@dataclass(frozen=True, slots=True)
class Ranking:
    """The configured ranking, named as in Settings: the default strategy's weights, the dedupe and same-story
    thresholds, and the hard rules' defaults (freshness window, language)."""

    lexical_weight: float = 0.5
    recency_weight: float = 0.15
    recency_half_life_days: float | None = 7.0
    mmr_lambda: float = 1.0
    duplicate_threshold: float = 0.92
    story_threshold: float = 0.8
    window_days: float | None = None
    same_language_only: bool = True
    popularity_weight: float = 0.0  # share of the click-popularity signal (recommender.popularity); 0 = off

    @classmethod
    def from_settings(cls, settings: Settings) -> Ranking:
        return cls(**{f.name: getattr(settings, f.name) for f in fields(cls)})

    def for_query(self, query: SimilarQuery) -> Ranking:
        """This ranking with the query's per-request overrides applied."""
        changes: dict[str, Any] = {name: getattr(query, name) for name in PER_REQUEST
                                   if getattr(query, name) is not None}
        if "window_days" in changes:
            changes["window_days"] = changes["window_days"] or None  # 0 = no window
        return replace(self, **changes) if changes else self


@dataclass(slots=True)
class Candidate:
    key: int
    article: Article
    vector: np.ndarray
    semantic: float
    lexical: float = 0.0
    popularity: float = 0.0  # in [0, 1]; read only when popularity_weight is set


@dataclass(frozen=True, slots=True)
class Explanation:
    semantic: float
    lexical: float
    recency: float  # multiplier applied to the relevance, 1.0 = no effect
    diversity_penalty: float  # what MMR subtracted for resemblance to items above it
    popularity: float = 0.0  # the popularity signal's value (it weighs popularity_weight of the score)


@dataclass(frozen=True, slots=True)
class Recommendation:
    article: Article
    score: float
    explanation: Explanation | None = None

    @property
    def id(self) -> str:
        return self.article.id

    group_size: int = 1  # items of the same story folded into this one (itself included)
    pinned: bool = False  # placed by an editor, not by the ranking
    also: tuple[Article, ...] = ()  # the other reports of this item's story folded into it, best first


@dataclass(slots=True)
class _Scored:
    candidate: Candidate
    relevance: float
    title: str = ""
    at: int = 0  # the candidate's position in the list given to ``rank``
    recency: float = 1.0
    penalty: float = 0.0


@lru_cache(maxsize=262_144)  # a bulk refresh of every box meets each title many times
def normalized_title(title: str) -> str:
    """The title as compared for exact duplicates: case, accents, punctuation and spacing ignored."""
    if title.isascii():  # the same result without the per-character pass (ASCII has no accents to drop)
        return _NON_WORD.sub(" ", title.lower()).strip()
    text = unicodedata.normalize("NFKD", title).casefold()
    return _NON_WORD.sub(" ", "".join(c for c in text if not unicodedata.combining(c))).strip()


def days_between(a: datetime | None, b: datetime | None) -> float | None:
    if a is None or b is None:
        return None
    return abs((a - b).total_seconds()) / 86400.0


def passes_filters(source: Article, candidate: Article, query: SimilarQuery, ranking: Ranking,
                   days: float | None) -> bool:
    """The hard rules: never the source itself, never unpublished, never excluded, the caller's filters, the
    language rule and the freshness window (``ranking`` already holds the query's overrides; ``days`` is the
    gap between the two publication dates, None when one is unknown)."""
    if candidate.id == source.id or candidate.id in query.exclude or not candidate.is_published:
        return False
    if query.section is not None and candidate.section != query.section:
        return False
    if query.language is not None and candidate.language != query.language:
        return False
    if (ranking.same_language_only and source.language and candidate.language
            and candidate.language != source.language):  # an article without a language is not excluded
        return False
    if ranking.window_days and source.published_at is not None:
        # An old article's box shows what was related then, not today's news.
        if days is None or days > ranking.window_days:
            return False
    return True


def recency_factor(days: float | None, ranking: Ranking) -> float:
    """1.0 for a same-day item, falling to 1 - recency_weight as the gap of ``days`` grows (half-life decay)."""
    if days is None or not ranking.recency_half_life_days or not ranking.recency_weight:
        return 1.0
    return 1.0 - ranking.recency_weight + ranking.recency_weight * 0.5 ** (days / ranking.recency_half_life_days)


def rank(
    source: Article,
    source_vector: np.ndarray,
    candidates: list[Candidate],
    query: SimilarQuery,
    ranking: Ranking,
    vectors: np.ndarray | None = None,
) -> list[Recommendation]:
    """The list, best first. ``default`` mixes semantic and lexical relevance, weighs recency, dedupes, folds
    same-story reports into one item and diversifies with MMR. The single-signal strategies are the plain
    searches their users know (a FAISS top-k, a More-Like-This query): their own signal's top-k under the hard
    rules only, nothing deduped or folded. ``vectors``: the candidates' vectors stacked in their order, when the
    caller has them (else they are stacked here)."""
    ranking = ranking.for_query(query)
    source_title = normalized_title(source.title)
    scored: list[_Scored] = []
    strategy, share, popularity = query.strategy, ranking.lexical_weight, ranking.popularity_weight
    for at, c in enumerate(candidates):
        article = c.article
        days = days_between(source.published_at, article.published_at)  # once: filters and recency need it
        if not passes_filters(source, article, query, ranking, days):
            continue
        if strategy == "default":
            recency = recency_factor(days, ranking)
            relevance = ((1 - share) * c.semantic + share * min(c.lexical, 1.0)) * recency
            if popularity:
                relevance = (1 - popularity) * relevance + popularity * c.popularity
            scored.append(_Scored(c, relevance, normalized_title(article.title), at, recency))
        else:
            scored.append(_Scored(c, c.semantic if strategy == "embedding" else c.lexical,
                                  normalized_title(article.title), at))
    scored.sort(key=lambda s: -s.relevance)
    if query.strategy != "default":
        return [_recommendation(s, [s], query.explain) for s in scored[:query.limit]]

    # Computed once, not once per pick: the candidates' vectors, their cosine to the source and which of them
    # share a title (so that picking one blocks the others in one step).
    if vectors is not None:
        vectors = vectors[[s.at for s in scored]]
    else:
        vectors = np.stack([s.candidate.vector for s in scored]) if scored else np.zeros((0, len(source_vector)),
                                                                                        dtype=np.float32)
    # One product per candidate (``dot``: the same product as ``@``, at a third of its call overhead).
    sims_source = np.array([float(s.candidate.vector.dot(source_vector)) for s in scored], dtype=np.float64)
    same_title: dict[str, list[int]] = {}
    for i, s in enumerate(scored):
        same_title.setdefault(s.title, []).append(i)
    blocked = np.zeros(len(scored), dtype=bool)
    blocked[same_title.get(source_title, [])] = True
    # A copy of the source is never listed; a follow-up of the source's story is welcome (below the threshold).
    blocked |= ~(sims_source <= ranking.duplicate_threshold)
    copies_of_source = blocked.copy()
    # Items closer than this to an item above belong to its story (grouping) or are a copy of it (always).
    threshold = min(ranking.story_threshold, ranking.duplicate_threshold) if query.group_stories \
        else ranking.duplicate_threshold
    if ranking.mmr_lambda == 1.0 and threshold >= 0:
        chosen = _picks_by_relevance(scored, vectors, blocked, same_title, threshold, query.limit)
    else:
        chosen = _picks_by_mmr(scored, vectors, blocked, same_title, threshold, query.limit, ranking.mmr_lambda)
    groups = _story_groups(scored, chosen, vectors, copies_of_source, threshold)
    if query.group_pick == "freshest":
        chosen = [_freshest(members) for members in groups]
    return [_recommendation(s, members, query.explain) for s, members in zip(chosen, groups, strict=True)]


def _picks_by_mmr(scored: list[_Scored], vectors: np.ndarray, blocked: np.ndarray, same_title: dict[str, list[int]],
                  threshold: float, limit: int, mmr: float) -> list[_Scored]:
    """Up to ``limit`` items by MMR: each pick the best of relevance less resemblance to the picks above, among
    the candidates not ``blocked`` and not closer than ``threshold`` to a pick (``blocked`` is updated)."""
    chosen: list[_Scored] = []
    relevance = np.array([s.relevance for s in scored], dtype=np.float64)
    pool = np.arange(len(scored))  # positions in ``scored``, best relevance first
    # Each candidate's highest cosine to an item chosen so far: one product with each pick's vector, not
    # all candidates against all picks again on every pick.
    closest = np.full(len(scored), -np.inf, dtype=np.float32)
    while len(pool) and len(chosen) < limit:
        # Dedupe first: a same-title or same-story candidate (to the source or an item above) never shows.
        max_chosen = closest[pool] if len(chosen) else np.zeros(len(pool), dtype=np.float32)
        keep = np.flatnonzero(~blocked[pool] & (max_chosen <= threshold))
        if not len(keep):
            break
        values = mmr * relevance[pool[keep]] - (1 - mmr) * np.maximum(0.0, max_chosen[keep].astype(np.float64))
        best = int(keep[int(np.argmax(values))])
        winner = scored[pool[best]]
        winner.penalty = (1 - mmr) * max(0.0, float(max_chosen[best]))
        chosen.append(winner)
        blocked[same_title[winner.title]] = True
        closest = np.maximum(closest, vectors @ winner.candidate.vector)
        pool = pool[keep[keep != best]]
    return chosen


def _picks_by_relevance(scored: list[_Scored], vectors: np.ndarray, blocked: np.ndarray,
                        same_title: dict[str, list[int]], threshold: float, limit: int) -> list[_Scored]:
    """``_picks_by_mmr`` with lambda 1, the default: its argmax is then the first candidate still eligible (they
    come best first, the penalty is 0), so each pick is found by one forward scan, with no scoring per pick."""
    chosen: list[_Scored] = []
    closest = np.full(len(scored), -np.inf, dtype=np.float32)
    start = 0
    while len(chosen) < limit:
        eligible = np.flatnonzero(~blocked[start:] & (closest[start:] <= threshold))
        if not len(eligible):
            break
        start += int(eligible[0])
        winner = scored[start]
        chosen.append(winner)
        blocked[same_title[winner.title]] = True
        closest = np.maximum(closest, vectors @ winner.candidate.vector)
        start += 1
    return chosen


def _recommendation(shown: _Scored, members: list[_Scored], explain: bool) -> Recommendation:
    """The item for ``shown``, standing for its story's ``members`` (itself among them)."""
    explanation = Explanation(round(shown.candidate.semantic, 6), round(float(shown.candidate.lexical), 6),
                              round(shown.recency, 6), round(shown.penalty, 6),
                              round(shown.candidate.popularity, 6)) if explain else None
    return Recommendation(shown.candidate.article, round(float(shown.relevance), 6), explanation,
                          group_size=len(members),
                          also=tuple(m.candidate.article for m in members if m is not shown))


def _story_groups(scored: list[_Scored], chosen: list[_Scored], vectors: np.ndarray, copies_of_source: np.ndarray,
                  threshold: float) -> list[list[_Scored]]:
    """For each chosen item, itself and the candidates folded into it: same normalised title, or cosine above
    ``threshold`` (each candidate joins the best-ranked chosen item it is that close to, so the groups of a
    list's first items do not depend on how long the list is: a stored box cut short equals a shorter list)."""
    groups = [[s] for s in chosen]
    if not chosen:
        return groups
    chosen_ids = {id(s) for s in chosen}
    by_title = {s.title: g for s, g in zip(chosen, groups, strict=True)}
    sims = vectors @ np.stack([s.candidate.vector for s in chosen]).T
    # Once for all candidates, not per candidate: the first (best-ranked) chosen item each is close enough to.
    first, best = (sims > threshold).argmax(axis=1), sims.max(axis=1)
    for i in np.flatnonzero(~copies_of_source):
        s = scored[i]
        if id(s) in chosen_ids:
            continue
        if s.title in by_title:
            by_title[s.title].append(s)
        elif best[i] > threshold:
            groups[int(first[i])].append(s)
    return groups


def _freshest(members: list[_Scored]) -> _Scored:
    """The latest-published member (the first, best-scored one when none or all are undated)."""
    dated = [(m.candidate.article.published_at, n) for n, m in enumerate(members)
             if m.candidate.article.published_at is not None]
    return members[max(dated, key=lambda d: d[0])[1]] if dated else members[0]


def with_pins(items: list[Recommendation], pins: list[tuple[int, Recommendation]], limit: int) -> list[Recommendation]:
    """The list with editors' pins at their 1-based positions (a pinned item is not listed twice), cut to ``limit``."""
    pinned_ids = {rec.id for _, rec in pins}
    out = [r for r in items if r.id not in pinned_ids]
    for position, rec in sorted(pins, key=lambda p: p[0]):
        out.insert(min(position - 1, len(out)), rec)
    return out[:limit]
