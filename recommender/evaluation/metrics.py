"""Ranking and list-quality metrics as pure functions of a ranked list of ids and graded judgements.

Conventions (the usual IR ones, as in trec_eval):

- ``ranked`` is the list shown, best first; ``relevant`` maps id -> grade, grade >= 1 relevant.
- precision@k divides by k even when the list is shorter (an empty slot is a miss).
- recall@k divides by the number of relevant articles (all of them, not just the k best).
- nDCG@k uses linear gain (the grade) and a log2(rank + 1) discount, normalised by the best possible top k
  from all judged articles; it agrees with ``sklearn.metrics.ndcg_score`` (checked in the tests).
- reciprocal rank is 1 / rank of the first relevant item in the list, 0 when none is; MRR is its mean.

Story-aware variants (``story_*``) take the list as it is shown with same-story folding: one entry per shown
item, the item's id followed by the ids of the reports folded behind it (``Recommendation.also``). A relevant
article folded behind the item at position i is credited at position i (each article once). Story-aware nDCG
is normalised by the usual ideal top k and capped at 1: one item with every relevant report folded behind it
answers a one-story query perfectly. For a list with nothing folded they equal the plain metrics.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from recommender.rank import normalized_title


def _hits(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> int:
    return sum(1 for doc in ranked[:k] if relevant.get(doc, 0) >= 1)


def precision_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    if k <= 0:
        raise ValueError("k must be positive")
    return _hits(ranked, relevant, k) / k


def recall_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    total = sum(1 for g in relevant.values() if g >= 1)
    return _hits(ranked, relevant, k) / total if total else 0.0


def dcg(gains: Iterable[float]) -> float:
    gains = np.asarray(list(gains), dtype=np.float64)
    return float((gains / np.log2(np.arange(2, len(gains) + 2))).sum())


def ndcg_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    ideal = dcg(sorted((g for g in relevant.values() if g >= 1), reverse=True)[:k])
    if ideal == 0:
        return 0.0
    return dcg(max(relevant.get(doc, 0), 0) for doc in ranked[:k]) / ideal


def _credited(groups: Sequence[Sequence[str]], relevant: Mapping[str, int], k: int) -> list[list[int]]:
    """Per shown position (up to k), the grades of the relevant articles first reached there."""
    seen: set[str] = set()
    out = []
    for group in groups[:k]:
        gains = [relevant.get(d, 0) for d in group if d not in seen and relevant.get(d, 0) >= 1]
        seen.update(group)
        out.append(gains)
    return out


def story_recall_at_k(groups: Sequence[Sequence[str]], relevant: Mapping[str, int], k: int) -> float:
    total = sum(1 for g in relevant.values() if g >= 1)
    return sum(len(g) for g in _credited(groups, relevant, k)) / total if total else 0.0


def story_ndcg_at_k(groups: Sequence[Sequence[str]], relevant: Mapping[str, int], k: int) -> float:
    ideal = dcg(sorted((g for g in relevant.values() if g >= 1), reverse=True)[:k])
    if ideal == 0:
        return 0.0
    return min(1.0, dcg(sum(g) for g in _credited(groups, relevant, k)) / ideal)


def story_reciprocal_rank(groups: Sequence[Sequence[str]], relevant: Mapping[str, int]) -> float:
    for rank, gains in enumerate(_credited(groups, relevant, len(groups)), 1):
        if gains:
            return 1.0 / rank
    return 0.0


def folded_same_story(groups: Sequence[Sequence[str]], judgements: Mapping[str, Mapping[str, int]],
                      grade: int) -> tuple[int, int]:
    """(reports folded behind items whose own judgements are known, how many of them are judged the item's
    story, i.e. relevant to it with at least ``grade``): how right the folding is."""
    folded = correct = 0
    for item, *behind in groups:
        judged = judgements.get(item)
        if judged is None:
            continue
        folded += len(behind)
        correct += sum(1 for d in behind if judged.get(d, 0) >= grade)
    return folded, correct


def paired_bootstrap(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, resamples: int = 2000, seed: int = 0,
                     level: float = 0.95) -> tuple[float, float, float]:
    """Mean of the per-query differences ``a - b`` and its ``level`` confidence interval (percentile paired
    bootstrap over queries, fixed seed)."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if len(diff) == 0:
        raise ValueError("no paired values to compare")
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for start in range(0, resamples, 500):  # in chunks: 500 x n indices at a time keeps memory small
        stop = min(start + 500, resamples)
        means[start:stop] = diff[rng.integers(0, len(diff), size=(stop - start, len(diff)))].mean(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(diff.mean()), float(low), float(high)


def reciprocal_rank(ranked: Sequence[str], relevant: Mapping[str, int]) -> float:
    for rank, doc in enumerate(ranked, 1):
        if relevant.get(doc, 0) >= 1:
            return 1.0 / rank
    return 0.0


def catalogue_coverage(lists: Iterable[Sequence[str]], catalogue_size: int) -> float:
    """Share of the catalogue that appears in at least one list."""
    shown = {doc for items in lists for doc in items}
    return len(shown) / catalogue_size if catalogue_size else 0.0


def intra_list_diversity(vectors: np.ndarray) -> float | None:
    """Mean pairwise cosine distance (1 - cosine) between a list's L2-normalised vectors; None under 2 items."""
    vectors = np.asarray(vectors, dtype=np.float64)
    n = len(vectors)
    if n < 2:
        return None
    sims = vectors @ vectors.T
    upper = sims[np.triu_indices(n, k=1)]
    return float((1.0 - upper).mean())


def near_duplicate_share(source_title: str, source_vector: np.ndarray, titles: Sequence[str],
                         vectors: np.ndarray, threshold: float, include_source: bool = True) -> float | None:
    """Share of a list's items that repeat the source (unless ``include_source`` is off) or an item above them:
    same normalised title, or cosine above ``threshold``. None for an empty list."""
    n = len(titles)
    if n == 0:
        return None
    vectors = np.asarray(vectors, dtype=np.float64)
    seen = [normalized_title(source_title)] if include_source else []
    above = [np.asarray(source_vector, dtype=np.float64)] if include_source else []
    duplicates = 0
    for title, vector in zip(titles, vectors, strict=True):
        norm = normalized_title(title)
        if norm in seen or max((float(vector @ v) for v in above), default=-1.0) > threshold:
            duplicates += 1
        seen.append(norm)
        above.append(vector)
    return duplicates / n
