"""Measure a model's thresholds on labelled sets (``recommender.calibration`` holds the results per model).

- **Story threshold** (folding): over the pairs of items in each query's plain cosine top 20 whose stories the
  labels tell, the lowest cosine above which pairs are the same story with at least ``FOLD_PRECISION``.
- **Relevance floor**: over the items of the default's lists (floor off), the lowest cosine to the source above
  which items are the same topic or better (grade >= 1) with at least ``FLOOR_PRECISION``.

Both use the tuning halves only (``--half``), so the reporting halves stay unseen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from recommender.evaluation.run import Evaluator
from recommender.rank import SimilarQuery

FOLD_PRECISION, FLOOR_PRECISION = 0.95, 0.90
PAIR_DEPTH = 20


@dataclass(frozen=True)
class Measured:
    value: float | None  # None: no threshold reaches the precision
    precision: float  # above the value
    support: int  # judged pairs or items above the value
    judged: int  # judged pairs or items in all


def lowest_precise_threshold(scores: np.ndarray, right: np.ndarray, precision: float) -> Measured:
    """The lowest score ``t`` such that the items scoring ``>= t`` are ``right`` with at least ``precision``."""
    order = np.argsort(-scores, kind="stable")
    ordered = scores[order]
    shares = np.cumsum(right[order]) / np.arange(1, len(order) + 1)
    cuts = np.append(ordered[1:] != ordered[:-1], True) if len(order) else np.zeros(0, dtype=bool)  # no tie split
    ok = np.flatnonzero(cuts & (shares >= precision))
    if not len(ok):
        return Measured(None, float(shares.max()) if len(shares) else 0.0, 0, len(scores))
    last = int(ok[-1])
    return Measured(float(ordered[last]), float(shares[last]), last + 1, len(scores))


def story_pairs(evaluator: Evaluator, queries: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(cosine, same story) of the judged pairs among each query's plain cosine top ``PAIR_DEPTH``."""
    assert evaluator.engine is not None
    dataset, vectors = evaluator.dataset, evaluator.vectors
    cosines: list[float] = []
    same: list[bool] = []
    seen: set[tuple[str, str]] = set()
    query = SimilarQuery(limit=PAIR_DEPTH, strategy="embedding")
    for qid in queries:
        ids = [r.id for r in evaluator.engine.similar(qid, query)]
        for i, a in enumerate(ids):
            for b in ids[i + 1:]:
                verdict = dataset.same_story(a, b)
                if verdict is None or (min(a, b), max(a, b)) in seen:
                    continue
                seen.add((min(a, b), max(a, b)))
                cosines.append(float(vectors[a] @ vectors[b]))
                same.append(verdict)
    return np.array(cosines), np.array(same, dtype=bool)


def default_scores(evaluator: Evaluator, queries: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(cosine to the source, grade >= 1) of every item of the default's lists with the floor off."""
    assert evaluator.engine is not None
    engine = evaluator.engine.with_ranking(relevance_floor=0.0)
    scores: list[float] = []
    right: list[bool] = []
    for qid in queries:
        relevant = evaluator.dataset.relevant(qid)
        for item in engine.similar(qid, SimilarQuery(limit=10, explain=True)):
            assert item.explanation is not None
            scores.append(item.explanation.semantic)
            right.append(relevant.get(item.id, 0) >= 1)
    return np.array(scores), np.array(right, dtype=bool)
