"""Whether the lexical scorer could skip postings: for lists ranked on demand on a built data dir, the query terms'
postings and the share of them an exact top-k pruning (MaxScore, as Lucene's BM25 queries use) would never read,
beside the wall time of the scorer's stages.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/lexical_pruning.py --data-dir DIR [--lists 200]

DIR is a built data dir (``benchmarks/serve.py``'s cache, e.g. /tmp/similar-news-bench/serve-1000000), only read.
For ``--lists`` random published articles' texts (BM25, the default list's lexical method) it prints the postings of
the query terms (a row once per term it holds), and the share of them in the terms MaxScore may skip: ordered by
their best weight in any row, the longest run of terms whose best weights sum to less than the k-th best row's
score (a row holding only those terms cannot enter the top k; the k is a list's candidate count). MaxScore reads
every other term's postings and looks the skipped terms up for the rows found there, so that share bounds what it
could save. Then the scorer's stages per list: the query's terms, the rows' scores (the query terms' columns read
and added up: ``Scorer``), the search of the top k (``Scorer.search``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def skippable_share(column_starts: np.ndarray, weights: np.ndarray, columns: np.ndarray, kth_score: float) -> float:
    """The share of ``columns``' postings in the terms MaxScore may skip for a top k whose k-th score is
    ``kth_score`` (BM25's query weights are all 1: a term's best contribution is its column's largest weight)."""
    lengths = column_starts[columns + 1] - column_starts[columns]
    best = np.array([weights[column_starts[c]:column_starts[c + 1]].max(initial=0.0) for c in columns])
    order = np.argsort(best)
    skipped = np.cumsum(best[order]) < kth_score
    return float(lengths[order][skipped].sum() / max(1, lengths.sum()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--lists", type=int, default=200)
    args = ap.parse_args()
    from recommender.engine import Recommender
    from recommender.settings import Settings

    engine = Recommender(Settings(data_dir=args.data_dir), saves=False)
    following, k = engine.following, engine.lists.candidate_count(0)
    lexical = following.lexical
    keys = np.random.default_rng(0).choice(engine.store.published_keys(), args.lists, replace=False).tolist()
    texts = [following.text(article) for article, _ in engine.store.by_keys(keys).values()]
    idf, df, _, (matrix, _), _, row_by_key = lexical._snapshot()
    spent = {"query terms": 0.0, "rows' scores": 0.0, "search": 0.0}
    postings, shares = [], []
    for text in texts[:20]:  # warm: the pages of the mapped weights these read, numpy's first calls
        lexical.scorer(text, "bm25").search(k)
    for text in texts:
        start = time.perf_counter()
        columns, _, _ = lexical._query_terms(idf, df, text, "bm25")
        middle = time.perf_counter()
        scorer = lexical.scorer(text, "bm25")  # counts the text again: its own time less the query terms'
        after = time.perf_counter()
        _, found = scorer.search(k)
        end = time.perf_counter()
        spent["query terms"] += middle - start
        spent["rows' scores"] += (after - middle) - (middle - start)
        spent["search"] += end - after
        scores = scorer._scores  # not normalised, as the weights are
        if len(found) and scores is not None:
            kth = float(scores[row_by_key[found[-1]]])
            shares.append(skippable_share(matrix.indptr, matrix.data, columns[columns < matrix.shape[1]], kth))
            postings.append(len(scorer._postings))
    print(f"{len(texts)} lists, {matrix.shape[0]:,} rows, top {k}: postings a list mean {np.mean(postings):,.0f}, "
          f"p50 {np.median(postings):,.0f}, p90 {np.percentile(postings, 90):,.0f}")
    print(f"postings MaxScore may skip: mean {np.mean(shares):.1%}, p50 {np.median(shares):.1%}, "
          f"p90 {np.percentile(shares, 90):.1%}, max {np.max(shares):.1%}")
    print("the scorer's stages a list (wall): "
          + ", ".join(f"{stage} {1000 * s / len(texts):.3f} ms" for stage, s in spent.items()))


if __name__ == "__main__":
    main()
