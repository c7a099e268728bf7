"""Ranking and list-quality metrics as pure functions of a ranked list of ids and graded judgements.

Conventions (the usual IR ones, as in trec_eval):

- ``ranked`` is the list shown, best first; ``relevant`` maps id -> grade, grade >= 1 relevant.
- precision@k divides by k even when the list is shorter (an empty slot is a miss).
- recall@k divides by the number of relevant articles (all of them, not just the k best).
- nDCG@k uses linear gain (the grade) and a log2(rank + 1) discount, normalised by the best possible top k
  from all judged articles; it agrees with ``sklearn.metrics.ndcg_score`` (checked in the tests).
- reciprocal rank is 1 / rank of the first relevant item in the list, 0 when none is; MRR is its mean.

Novelty-aware metrics take the list as readers see it (shown items only: reports folded behind an item, its
``also``, are not displayed) and each article's story (``stories``: id -> story label; an article without a label
is a story of its own):

- α-nDCG@k (Clarke et al., SIGIR 2008, with stories as the nuggets): an item's gain is its grade times
  (1 - α) to the power of the number of items of its story shown above it, so a second report of a story earns
  half (α = 0.5), a third a quarter; the ideal list is built greedily (at each position the largest gain left).
- story repeats: shown items whose story is already shown above them.
- fold precision and recall (``folded_by_story``, ``fold_reach``): how many folded reports are the shown item's
  story, and how many of the query's own story's reports the box shows or folds under an item of that story.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence

import numpy as np

from recommender.candidates import normalized_title


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


def _story(article: str, stories: Mapping[str, str]) -> str:
    return stories.get(article, article)


def _discounted_gains(shown: Sequence[str], relevant: Mapping[str, int], stories: Mapping[str, str],
                      alpha: float) -> list[float]:
    seen: dict[str, int] = {}
    gains = []
    for doc in shown:
        story = _story(doc, stories)
        gains.append(max(relevant.get(doc, 0), 0) * (1 - alpha) ** seen.get(story, 0))
        seen[story] = seen.get(story, 0) + 1
    return gains


def ideal_novelty_gains(relevant: Mapping[str, int], stories: Mapping[str, str], k: int, alpha: float) -> list[float]:
    """The greedy ideal of α-nDCG: at each of ``k`` positions the largest discounted gain any judged article
    still offers (each story's articles best grade first, each pick halving what its story offers next)."""
    by_story: dict[str, list[int]] = {}
    for doc, grade in relevant.items():
        if grade >= 1:
            by_story.setdefault(_story(doc, stories), []).append(grade)
    queues = {story: sorted(grades, reverse=True) for story, grades in by_story.items()}
    taken = dict.fromkeys(queues, 0)
    gains: list[float] = []
    while len(gains) < k:
        offers = {s: q[taken[s]] * (1 - alpha) ** taken[s] for s, q in queues.items() if taken[s] < len(q)}
        if not offers:
            break
        best = max(offers, key=offers.__getitem__)
        gains.append(offers[best])
        taken[best] += 1
    return gains


def alpha_ndcg_at_k(shown: Sequence[str], relevant: Mapping[str, int], stories: Mapping[str, str], k: int,
                    alpha: float = 0.5) -> float:
    """α-nDCG@k of the shown items (see the module's docstring); with every article a story of its own, nDCG@k."""
    if not 0 <= alpha < 1:
        raise ValueError("alpha must be in [0, 1)")
    ideal = dcg(ideal_novelty_gains(relevant, stories, k, alpha))
    if ideal == 0:
        return 0.0
    return dcg(_discounted_gains(shown[:k], relevant, stories, alpha)) / ideal


def story_repeats(shown: Sequence[str], stories: Mapping[str, str]) -> int:
    """Shown items whose story is already shown above them."""
    labels = [_story(doc, stories) for doc in shown]
    return len(labels) - len(set(labels))


def hit_at_1(shown: Sequence[str], relevant: Mapping[str, int], grade: int) -> float:
    """1.0 when the first shown item is judged at least ``grade`` (the query's story), else 0.0."""
    return float(bool(shown) and relevant.get(shown[0], 0) >= grade)


def folded_by_story(groups: Sequence[Sequence[str]], same_story: Callable[[str, str], bool | None]) -> tuple[int, int]:
    """(reports folded behind shown items whose story is known, how many of them are that item's story):
    ``groups`` holds each shown item's id followed by the ids folded behind it; ``same_story(item, report)`` is
    None where the labels cannot tell."""
    folded = correct = 0
    for item, *behind in groups:
        for report in behind:
            verdict = same_story(item, report)
            if verdict is not None:
                folded += 1
                correct += verdict
    return folded, correct


def fold_reach(groups: Sequence[Sequence[str]], story_reports: Collection[str],
               same_story: Callable[[str, str], bool | None]) -> int:
    """How many of ``story_reports`` (the query's story's other reports) the box shows, or folds behind an item
    of that story (the report's own story: ``same_story(item, report)``)."""
    reached = set()
    for item, *behind in groups:
        if item in story_reports:
            reached.add(item)
        reached.update(r for r in behind if r in story_reports and same_story(item, r))
    return len(reached)


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
                         vectors: np.ndarray, threshold: float) -> float | None:
    """Share of a list's items that repeat the source or an item above them:
    same normalised title, or cosine above ``threshold``. None for an empty list."""
    n = len(titles)
    if n == 0:
        return None
    vectors = np.asarray(vectors, dtype=np.float64)
    seen = [normalized_title(source_title)]
    above = [np.asarray(source_vector, dtype=np.float64)]
    duplicates = 0
    for title, vector in zip(titles, vectors, strict=True):
        norm = normalized_title(title)
        if norm in seen or max((float(vector @ v) for v in above), default=-1.0) > threshold:
            duplicates += 1
        seen.append(norm)
        above.append(vector)
    return duplicates / n
