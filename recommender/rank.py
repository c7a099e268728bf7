"""The rules that turn nearest neighbours into a "Similar news" list: filters, scoring, dedupe, diversity."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from recommender.article import Article
from recommender.calibration import calibration_of
from recommender.candidates import (
    Candidate,
    Candidates,
    Facts,
    Reordered,
    epoch_us,
    prefetched,
    text_hash,
    title_hash,
)
from recommender.copies import Copies, word_set
from recommender.embed import model_name
from recommender.specs import GroupPick, Strategy

if TYPE_CHECKING:
    from recommender.settings import Settings

Fallback = Literal["section", "none"]  # what fills a box whose similar items end at the relevance floor
# Why an item is in the list: similar to the article, or (below the relevance floor) a fallback: a fresh article
# of the same section, or a popular one of it when the click signal is on.
Reason = Literal["similar", "section", "popular"]


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
    copy_overlap: float = 0.0  # words two items above either threshold must share (Jaccard) to count; 0 = any
    novelty: float = 0.0  # share of an item's score lost per item above it of its story (cosine > novelty_threshold)
    novelty_threshold: float = 0.7
    relevance_floor: float = 0.0  # a cosine below it is not "similar": a labelled fallback fills the item's place
    fallback: Fallback = "section"
    window_days: float | None = None
    same_language_only: bool = True
    popularity_weight: float = 0.0  # share of the click-popularity signal (recommender.popularity); 0 = off

    @classmethod
    def from_settings(cls, settings: Settings) -> Ranking:
        """The settings' values; the thresholds left unset are the configured model's (``calibration``)."""
        calibrated = calibration_of(model_name(settings.model))
        return cls(**{f.name: getattr(calibrated, f.name) if getattr(settings, f.name) is None
                      else getattr(settings, f.name) for f in fields(cls)})

    def for_query(self, query: SimilarQuery) -> Ranking:
        """This ranking with the query's per-request overrides applied."""
        changes: dict[str, Any] = {name: getattr(query, name) for name in PER_REQUEST
                                   if getattr(query, name) is not None}
        if "window_days" in changes:
            changes["window_days"] = changes["window_days"] or None  # 0 = no window
        return replace(self, **changes) if changes else self



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
    reason: Reason = "similar"


@dataclass(slots=True)
class _Ranked:
    """The candidates that passed the hard rules, best relevance first: position p is candidate ``rows[p]``."""

    rows: np.ndarray
    relevance: np.ndarray
    recency: np.ndarray
    title_hashes: np.ndarray  # the same normalised title (``normalized_title``), the same hash
    vectors: np.ndarray
    penalty: np.ndarray  # what MMR and novelty took from each pick's relevance (0 elsewhere)
    kept: np.ndarray  # the share of each pick's relevance that novelty left: its score (1 elsewhere)



def days_between(a: datetime | None, b: datetime | None) -> float | None:
    """Days between two times (None when one is unknown), as ``_days_from`` computes them for many."""
    if a is None or b is None:
        return None
    return abs(epoch_us(a) - epoch_us(b)) / 1e6 / 86400.0


def _days_from(source: Article, candidates: Candidates) -> np.ndarray:
    """Days between the source's publication and each candidate's (NaN where either is unknown): the same
    float as ``days_between`` (an exact count of microseconds, divided alike)."""
    if source.published_at is None:
        return np.full(len(candidates.facts), np.nan)
    days = np.abs(candidates.facts.published_us - epoch_us(source.published_at)) / 1e6 / 86400.0
    days[~candidates.facts.dated] = np.nan
    return days


def admitted(source: Article, facts: Facts, days: np.ndarray, query: SimilarQuery, ranking: Ranking) -> np.ndarray:
    """The hard rules, one flag per candidate of ``facts``: never the source itself, never unpublished, never
    excluded, the caller's filters, the language rule and the freshness window (``ranking`` already holds the
    query's overrides; ``days``: the gap between the two publication dates, NaN where one is unknown)."""
    ok = facts.published & (facts.id_hashes != text_hash(source.id))
    if query.exclude:
        ok &= ~np.isin(facts.id_hashes, [text_hash(i) for i in query.exclude])
    if query.section is not None:
        ok &= facts.section_hashes == text_hash(query.section)
    if query.language is not None:
        ok &= facts.language_hashes == text_hash(query.language)
    if ranking.same_language_only and source.language:  # an article without a language is not excluded
        ok &= np.isin(facts.language_hashes, [text_hash(None), text_hash(""), text_hash(source.language)])
    if ranking.window_days and source.published_at is not None:
        ok &= days <= ranking.window_days  # an old article's box shows what was related then, not today's news
    return ok


def passes_filters(source: Article, candidate: Facts, query: SimilarQuery, ranking: Ranking,
                   days: float | None) -> bool:
    """``admitted`` for one candidate, of facts ``candidate`` (``days``: None when a date is unknown)."""
    return bool(admitted(source, candidate, np.array([np.nan if days is None else days]), query, ranking)[0])


def recency_factors(days: np.ndarray, ranking: Ranking) -> np.ndarray:
    """1.0 for a same-day item, falling to 1 - recency_weight as the gap of ``days`` grows (half-life decay);
    1.0 where the gap is unknown (NaN)."""
    weight, half_life = ranking.recency_weight, ranking.recency_half_life_days
    if not half_life or not weight:
        return np.ones(len(days))
    return np.where(np.isnan(days), 1.0, 1.0 - weight + weight * 0.5 ** (days / half_life))


def rank(
    source: Article,
    source_vector: np.ndarray,
    candidates: Candidates | Sequence[Candidate],
    query: SimilarQuery,
    ranking: Ranking,
    vectors: np.ndarray | None = None,
) -> list[Recommendation]:
    """The list, best first. ``default`` mixes semantic and lexical relevance, weighs recency, dedupes, folds
    same-story reports into one item and diversifies with MMR. The single-signal strategies are the plain
    searches their users know (a FAISS top-k, a More-Like-This query): their own signal's top-k under the hard
    rules only, nothing deduped or folded. ``vectors``: the candidates' vectors stacked in their order, when
    ``candidates`` is a list and the caller has them."""
    if not isinstance(candidates, Candidates):
        candidates = Candidates.of(candidates, vectors)
    elif vectors is not None:
        raise TypeError("vectors go with a list of Candidate; Candidates hold their own")
    ranking = ranking.for_query(query)
    days = _days_from(source, candidates)
    found = np.flatnonzero(admitted(source, candidates.facts, days, query, ranking))
    if not len(found):
        return []
    if query.strategy != "default":
        return _plain_top(candidates, found, query)
    ranked = _by_relevance(candidates, found, days, ranking)
    articles = Reordered(candidates.articles, ranked.rows)  # parsed only where words are compared
    # A copy of the source is never listed (same title, or closer than the duplicate threshold); a follow-up of
    # the source's story is welcome (below the threshold).
    source_copies = Copies(articles, ranking.duplicate_threshold, ranking.copy_overlap)
    blocked = source_copies.of(ranked.vectors @ source_vector,
                               word_set(source) if ranking.copy_overlap else frozenset(),
                               ranked.title_hashes == title_hash(source.title))
    copies_of_source = blocked.copy()
    # On the cosine, not the score: the lexical half's scale depends on the language (no word forms for German or
    # Turkish), so a floor on the score cut true same-story reports in some languages and not in others. Applied
    # where a fallback takes the places it frees, or where the site asked for a shorter box: an article without a
    # section keeps its nearest items rather than show fewer.
    section = query.section or source.section  # what a fallback is drawn from
    floor = ranking.relevance_floor if ranking.fallback == "none" or section is not None else 0.0
    below_floor = candidates.semantic[ranked.rows] < floor
    # Items closer than this to an item above belong to its story (grouping) or are a copy of it (always).
    threshold = min(ranking.story_threshold, ranking.duplicate_threshold) if query.group_stories \
        else ranking.duplicate_threshold
    copies = source_copies.at(threshold)
    unpicked = blocked | below_floor  # the picks add their namesakes
    if ranking.mmr_lambda == 1.0 and not ranking.novelty:
        chosen = _picks_by_relevance(ranked, unpicked, copies, query.limit)
    else:
        chosen = _picks_by_mmr(ranked, unpicked, copies, query.limit, ranking)
    groups = _story_groups(ranked, chosen, copies_of_source, copies)
    if query.group_pick == "freshest":
        chosen = [_freshest(candidates, ranked, members) for members in groups]
    prefetched(candidates.articles, (int(ranked.rows[m]) for members in groups for m in members))
    similar = [_recommendation(candidates, ranked, p, members, query.explain)
               for p, members in zip(chosen, groups, strict=True)]
    if len(similar) >= query.limit or ranking.fallback == "none" or section is None:
        return similar
    # Not for the fallback: copies of the source, namesakes of a pick, the picks and what they fold.
    taken = copies_of_source | np.isin(ranked.title_hashes, ranked.title_hashes[chosen])
    for members in groups:
        taken[members] = True
    return similar + _fallback(section, candidates, ranked, taken, query, ranking, query.limit - len(similar))


def _fallback(section: str, candidates: Candidates, ranked: _Ranked, taken: np.ndarray, query: SimilarQuery,
              ranking: Ranking, room: int) -> list[Recommendation]:
    """Up to ``room`` items of ``section`` that the list did not take (none a copy of a shown item):
    the most popular when the click signal is on, else the freshest (undated ones last, by relevance), each
    labelled with its reason."""
    rows = ranked.rows
    free = np.flatnonzero(~taken & (candidates.facts.section_hashes[rows] == text_hash(section)))
    popular = ranking.popularity_weight > 0
    if popular:
        order = np.argsort(-candidates.popularity[rows[free]], kind="stable")
    else:
        facts = candidates.facts
        order = np.lexsort((np.arange(len(free)), -facts.published_us[rows[free]], ~facts.dated[rows[free]]))
    picks: list[int] = []
    shown = np.empty((0, ranked.vectors.shape[1]), dtype=ranked.vectors.dtype)  # a fallback never repeats another
    for p in free[order].tolist():
        if len(picks) == room:
            break
        if len(shown) and float((shown @ ranked.vectors[p]).max()) > ranking.duplicate_threshold:
            continue
        picks.append(p)
        shown = np.vstack([shown, ranked.vectors[p]])
    reason: Reason = "popular" if popular else "section"
    prefetched(candidates.articles, (int(rows[p]) for p in picks))
    return [replace(_recommendation(candidates, ranked, p, [p], query.explain), reason=reason) for p in picks]


def _plain_top(candidates: Candidates, found: np.ndarray, query: SimilarQuery) -> list[Recommendation]:
    """A single-signal strategy's list: the ``found`` candidates' top ``query.limit`` by that signal."""
    signal = candidates.semantic if query.strategy == "embedding" else candidates.lexical
    top = found[np.argsort(-signal[found], kind="stable")][:query.limit]
    plain = _Ranked(top, signal[top], np.ones(len(top)), candidates.facts.title_hashes[top], candidates.vectors[top],
                    np.zeros(len(top)), np.ones(len(top)))
    prefetched(candidates.articles, top.tolist())
    return [_recommendation(candidates, plain, p, [p], query.explain) for p in range(len(top))]


def _by_relevance(candidates: Candidates, found: np.ndarray, days: np.ndarray, ranking: Ranking) -> _Ranked:
    """The ``found`` candidates scored by the default strategy's relevance, best first (ties: as found)."""
    share, popularity = ranking.lexical_weight, ranking.popularity_weight
    recency = recency_factors(days[found], ranking)
    relevance = ((1 - share) * candidates.semantic[found] + share * np.minimum(candidates.lexical[found], 1.0)) \
        * recency
    if popularity:
        relevance = (1 - popularity) * relevance + popularity * candidates.popularity[found]
    order = np.argsort(-relevance, kind="stable")
    rows = found[order]
    return _Ranked(rows, relevance[order], recency[order], candidates.facts.title_hashes[rows],
                   candidates.vectors[rows], np.zeros(len(rows)), np.ones(len(rows)))


def _picks_by_mmr(ranked: _Ranked, blocked: np.ndarray, copies: Copies, limit: int, ranking: Ranking) -> list[int]:
    """Up to ``limit`` positions by MMR and novelty: each pick the best of relevance less resemblance to the picks
    above (``mmr_lambda``), times ``1 - novelty`` for each pick above of the same story (cosine over
    ``novelty_threshold``), among the candidates not ``blocked`` and not ``copies`` of a pick (``blocked`` is
    updated). What the two took away is each pick's ``penalty``; its ``kept`` share of the relevance is what
    novelty left of it (so the picks' scores fall as the list goes down)."""
    chosen: list[int] = []
    mmr, novelty = ranking.mmr_lambda, ranking.novelty
    vectors, relevance = ranked.vectors, ranked.relevance
    scaled = mmr * relevance
    # Each candidate's highest cosine to an item chosen so far, and how many chosen items tell its story: one
    # product with each pick's vector, not all candidates against all picks again on every pick. Whole columns
    # with the blocked ones masked, not the open ones gathered: a box's ~20 picks each cost a dozen array calls
    # fewer (a tie still goes to the best-ranked position: argmax takes the first).
    closest = np.zeros(len(relevance))
    repeats = np.zeros(len(relevance), dtype=np.int64)
    while len(chosen) < limit:
        # Dedupe first: a same-title or same-story candidate (to the source or an item above) never shows.
        resemblance = (1 - mmr) * np.maximum(0.0, closest)
        kept = (1 - novelty) ** repeats
        values = np.where(blocked, -np.inf, (scaled - resemblance) * kept)
        winner = int(np.argmax(values))
        if blocked[winner]:  # every candidate is blocked
            break
        ranked.kept[winner] = kept[winner]
        ranked.penalty[winner] = resemblance[winner] + (scaled[winner] - resemblance[winner]) * (1 - kept[winner])
        chosen.append(winner)
        similarity = vectors @ vectors[winner]
        blocked |= copies.of(similarity, winner, ranked.title_hashes == ranked.title_hashes[winner])
        closest = np.maximum(closest, similarity)
        repeats += similarity > ranking.novelty_threshold
    return chosen


def _picks_by_relevance(ranked: _Ranked, blocked: np.ndarray, copies: Copies, limit: int) -> list[int]:
    """``_picks_by_mmr`` with lambda 1, the default: its argmax is then the first candidate still eligible (they
    come best first, the penalty is 0), so each pick is found by one forward scan, with no scoring per pick."""
    chosen: list[int] = []
    start = 0
    while len(chosen) < limit:
        eligible = np.flatnonzero(~blocked[start:])
        if not len(eligible):
            break
        start += int(eligible[0])
        chosen.append(start)
        blocked |= copies.of(ranked.vectors @ ranked.vectors[start], start,
                             ranked.title_hashes == ranked.title_hashes[start])
        start += 1
    return chosen


def _recommendation(candidates: Candidates, ranked: _Ranked, shown: int, members: list[int],
                    explain: bool) -> Recommendation:
    """The item at position ``shown``, standing for its story's ``members`` (itself among them)."""
    row = int(ranked.rows[shown])
    explanation = Explanation(round(float(candidates.semantic[row]), 6), round(float(candidates.lexical[row]), 6),
                              round(float(ranked.recency[shown]), 6), round(float(ranked.penalty[shown]), 6),
                              round(float(candidates.popularity[row]), 6)) if explain else None
    return Recommendation(candidates.articles[row], round(float(ranked.relevance[shown] * ranked.kept[shown]), 6),
                          explanation,
                          group_size=len(members),
                          also=tuple(candidates.articles[int(ranked.rows[m])] for m in members if m != shown))


def _story_groups(ranked: _Ranked, chosen: list[int], copies_of_source: np.ndarray,
                  copies: Copies) -> list[list[int]]:
    """For each chosen position, itself and the positions folded into it: same normalised title, or one of its
    ``copies`` (each candidate joins the best-ranked chosen item it is a copy of, so the groups of a list's first
    items do not depend on how long the list is: a stored box cut short equals a shorter list)."""
    groups = [[p] for p in chosen]
    if not chosen:
        return groups
    sims = ranked.vectors @ ranked.vectors[chosen].T
    same_title = ranked.title_hashes[:, None] == ranked.title_hashes[chosen][None, :]
    close = copies.of_each(sims, chosen, same_title)
    # Once for all candidates, not per candidate: the first (best-ranked) chosen item each is a copy of, unless
    # one has its title (each chosen item has a title of its own: picking one blocks its namesakes).
    named = same_title & close
    group = np.where(named.any(axis=1), named.argmax(axis=1), np.where(close.any(axis=1), close.argmax(axis=1), -1))
    joins = ~copies_of_source & (group >= 0)
    joins[chosen] = False
    for p in np.flatnonzero(joins).tolist():
        groups[int(group[p])].append(p)
    return groups


def _freshest(candidates: Candidates, ranked: _Ranked, members: list[int]) -> int:
    """The latest-published member (the first, best-scored one when none or all are undated)."""
    facts = candidates.facts
    dated = [m for m in members if facts.dated[ranked.rows[m]]]
    return max(dated, key=lambda m: int(facts.published_us[ranked.rows[m]])) if dated else members[0]


def with_pins(items: list[Recommendation], pins: list[tuple[int, Recommendation]], limit: int) -> list[Recommendation]:
    """The list with editors' pins at their 1-based positions (a pinned item is not listed twice), cut to ``limit``."""
    pinned_ids = {rec.id for _, rec in pins}
    out = [r for r in items if r.id not in pinned_ids]
    for position, rec in sorted(pins, key=lambda p: p[0]):
        out.insert(min(position - 1, len(out)), rec)
    return out[:limit]
