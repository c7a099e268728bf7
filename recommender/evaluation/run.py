"""Run strategies over a labelled dataset through the service's own engine and collect the metrics.

    dataset = load_dataset("../shared/data/mind-sample")
    result = evaluate(dataset, queries=300)
    result.table()

The lists come from ``Recommender.similar`` (the code the HTTP service runs) over a temporary data dir holding
the dataset's articles; nothing here re-implements ranking. To try several weightings without re-embedding,
keep an :class:`Evaluator` and call ``run(ranking=...)`` on it.

Metric keys: ``p@k``, ``r@k``, ``ndcg@k`` for each k, ``mrr`` (over the longest list asked for); their
story-aware variants ``s_r@k``, ``s_ndcg@k``, ``s_mrr`` (a relevant report folded behind a shown item is credited
at that item's position, see ``metrics``); ``folded`` (reports folded behind the items of a list, mean per list),
``fold_prec`` (share of folded reports judged the same story as the item they are folded behind), ``coverage``
(share of the catalogue shown in at least one list), ``diversity`` (mean pairwise cosine distance inside a
list, averaged over lists), ``dup_share`` (share of listed items that repeat the source or an item above them:
same normalised title or cosine above ``NEAR_DUPLICATE_COSINE``), ``ms_per_query`` (mean time of one list).
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from recommender.embed import TextEmbedder, load_embedder
from recommender.engine import Recommender
from recommender.evaluation import metrics
from recommender.evaluation.dataset import SAME_STORY, LabelledDataset
from recommender.rank import STRATEGIES, Ranking, Recommendation, SimilarQuery, Strategy
from recommender.settings import Settings

DEFAULT_KS = (1, 5, 10)
# Fixed, not the engine's duplicate_threshold: the yardstick must not move when the engine is tuned.
NEAR_DUPLICATE_COSINE = 0.92
# "The same story twice in one box" (what grouping prevents): items vs items above them, at a fixed cosine.
SAME_STORY_COSINE = 0.8
BASELINES = ("tfidf", "bm25", "embedding")


HALVES = ("tuning", "reporting")


def ranking_metric_names(ks: Sequence[int]) -> list[str]:
    """The per-query ranking metrics, plain then story-aware."""
    plain = [f"{m}@{k}" for k in ks for m in ("p", "r", "ndcg")] + ["mrr"]
    return plain + [f"s_{m}@{k}" for k in ks for m in ("r", "ndcg")] + ["s_mrr"]


def metric_names(ks: Sequence[int]) -> list[str]:
    return ranking_metric_names(ks) + ["folded", "fold_prec", "coverage", "diversity", "dup_share",
                                       "story_share", "ms_per_query"]


# The newsroom controls as changes to the shipped default: (Ranking changes, per-request query options).
CONTROLS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "default": ({}, {}),
    "no story grouping": ({}, {"group_stories": False}),
    "freshest of each story": ({}, {"group_pick": "freshest"}),
    "no diversity (λ=1)": ({}, {"mmr_lambda": 1.0}),
    "more diversity (λ=0.8)": ({}, {"mmr_lambda": 0.8}),
    "no lexical (semantic only)": ({"lexical_weight": 0.0}, {}),
    "no recency": ({"recency_weight": 0.0}, {}),
    "no freshness window": ({}, {"window_days": 0}),
    "cross-lingual": ({}, {"same_language_only": False}),
}


def select_queries(dataset: LabelledDataset, n: int | None = None, seed: int = 0, half: str | None = None,
                   split_seed: int = 0) -> list[str]:
    """The dataset's queries (or those of one ``half``, see ``LabelledDataset.halves``), or ``n`` of them drawn
    with a fixed seed (same n and seed = same queries)."""
    if half is not None and half not in HALVES:
        raise ValueError(f"unknown half {half!r}; choose one of {', '.join(HALVES)}")
    queries = dataset.halves(split_seed)[half] if half else dataset.queries
    if n is None or n >= len(queries):
        return queries
    if n <= 0:
        raise ValueError("the number of queries must be positive")
    chosen = set(random.Random(seed).sample(queries, n))
    return [q for q in queries if q in chosen]


@dataclass
class EvaluationResult:
    dataset: str
    strategies: list[str]
    ks: list[int]
    queries: int
    articles: int
    summary: dict[str, dict[str, float]]
    per_query: pd.DataFrame = field(repr=False)  # one row per (strategy, query)
    scores: pd.DataFrame = field(repr=False)  # one row per listed item: strategy, query, rank, score, grade
    ranking: dict[str, Any] = field(default_factory=dict)
    rule: str = ""
    half: str | None = None  # the half of the dataset's queries (see LabelledDataset.halves), None = all

    def table(self) -> pd.DataFrame:
        """One row per strategy, one column per metric."""
        frame = pd.DataFrame.from_dict(self.summary, orient="index")
        frame.index.name = "strategy"
        return frame[[c for c in metric_names(self.ks) if c in frame.columns]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "half": self.half,
            "rule": self.rule,
            "queries": self.queries,
            "articles": self.articles,
            "k": self.ks,
            "ranking": self.ranking,
            "strategies": self.summary,
        }

    def to_json(self, path: Path | str | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            Path(path).write_text(text + "\n", encoding="utf-8")
        return text

    def best_baseline(self, metric: str = "ndcg@10") -> tuple[str, float] | None:
        baselines = [(s, self.summary[s][metric]) for s in self.strategies if s in BASELINES]
        return max(baselines, key=lambda x: x[1]) if baselines else None

    def comparisons(self, metric: str = "s_ndcg@10", against: str = "default", resamples: int = 2000,
                    seed: int = 0) -> pd.DataFrame:
        """``against`` minus each other strategy on ``metric``, query by query: the mean difference, its 95 %
        confidence interval (paired bootstrap, fixed seed) and whether the interval excludes 0."""
        wide = self.per_query.pivot(index="query", columns="strategy", values=metric)
        rows = {}
        for other in [s for s in self.strategies if s != against]:
            diff, low, high = metrics.paired_bootstrap(wide[against], wide[other], resamples, seed)
            rows[other] = {against: float(wide[against].mean()), "other": float(wide[other].mean()),
                           "diff": diff, "ci_low": low, "ci_high": high, "significant": low > 0 or high < 0}
        frame = pd.DataFrame.from_dict(rows, orient="index")
        frame.index.name = f"{against} vs"
        return frame

    def format(self) -> str:
        return self.table().to_string(float_format=lambda v: f"{v:.3f}")


class Evaluator:
    """A recommender holding one dataset's articles (embedded once), ready to run strategies on it.

    ``data_dir`` keeps the engine's data there and reuses it next time: only articles whose text (or the
    model) changed are embedded again. Without it a temporary dir is used and removed on ``close``."""

    def __init__(self, dataset: LabelledDataset, settings: Settings | None = None, embedder: TextEmbedder | None = None,
                 progress: bool = False, data_dir: Path | None = None):
        self.dataset = dataset
        self._tmp = None if data_dir else Path(tempfile.mkdtemp(prefix="recommender-eval-"))
        base = settings or Settings()
        self.settings = base.model_copy(update={"data_dir": Path(data_dir) if data_dir else self._tmp})
        self.engine: Recommender | None = Recommender(
            self.settings, embedder=embedder or load_embedder(base.model, base.batch_size))
        ids = [a.id for a in dataset.articles]
        if data_dir:  # a kept data dir may hold articles of an earlier version of the dataset
            for stale in {a.id for _, a in self.engine.store.articles()} - set(ids):
                self.engine.delete(stale)
        self.engine.upsert(dataset.articles, progress=progress, total=len(dataset.articles))
        self.vectors = self.engine.store.vectors_for(ids)
        self.catalogue = sum(1 for a in dataset.articles if a.is_published)
        self.dataset_articles = {a.id: a for a in dataset.articles}

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> Evaluator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # an Evaluator a notebook forgot to close leaves no temp dir behind
        tmp = getattr(self, "_tmp", None)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)

    def run(self, strategies: Sequence[str] = STRATEGIES, ks: Sequence[int] = DEFAULT_KS,
            queries: int | None = None, seed: int = 0, ranking: Mapping[str, Any] | Ranking | None = None,
            progress: bool = False, query_options: Mapping[str, Any] | None = None, half: str | None = None,
            split_seed: int = 0) -> EvaluationResult:
        """Every strategy's list for every query (or ``queries`` of them, seeded; of one ``half``), scored
        against the qrels.

        ``ranking`` overrides configured ranking values (fields of ``recommender.rank.Ranking``);
        ``query_options`` are per-request options (fields of ``recommender.rank.SimilarQuery``)."""
        if self.engine is None:
            raise RuntimeError("this Evaluator is closed")
        unknown = [s for s in strategies if s not in STRATEGIES]
        if unknown:
            raise ValueError(f"unknown strategies {unknown}; choose from {', '.join(STRATEGIES)}")
        ks = sorted({int(k) for k in ks})
        if not ks or ks[0] < 1:
            raise ValueError("k values must be positive")
        engine = self.engine
        if ranking:
            engine = engine.with_ranking(**(asdict(ranking) if isinstance(ranking, Ranking) else dict(ranking)))
        chosen = select_queries(self.dataset, queries, seed, half, split_seed)
        if not chosen:
            raise ValueError(f"{self.dataset.name} has no query with a relevant article")
        rows, score_rows, summary = [], [], {}
        bar = tqdm(total=len(strategies) * len(chosen), desc="evaluate", unit="query", disable=not progress)
        for strategy in strategies:
            query = SimilarQuery(limit=max(ks), strategy=cast(Strategy, strategy),  # checked above
                                 **(query_options or {}))
            engine.similar(chosen[0], query)  # warm-up: lazily derived weights are not timed as a query
            lists, elapsed, strategy_rows = [], 0.0, []
            for qid in chosen:
                started = time.perf_counter()
                items = engine.similar(qid, query)
                elapsed += time.perf_counter() - started
                lists.append([r.id for r in items])
                strategy_rows.append({"strategy": strategy, "query": qid, **self._query_metrics(qid, items, ks)})
                score_rows += [(strategy, qid, rank, r.score, self.dataset.relevant(qid).get(r.id, 0))
                               for rank, r in enumerate(items, 1)]
                bar.update(1)
            summary[strategy] = self._summary(pd.DataFrame(strategy_rows), lists, ks, elapsed / len(chosen))
            rows += strategy_rows
        bar.close()
        return EvaluationResult(
            dataset=self.dataset.name, strategies=list(strategies), ks=ks, queries=len(chosen),
            articles=len(self.dataset.articles), summary=summary, per_query=pd.DataFrame(rows),
            scores=pd.DataFrame(score_rows, columns=["strategy", "query", "rank", "score", "grade"]),
            ranking=asdict(engine.ranking), rule=self.dataset.rule, half=half,
        )

    def _query_metrics(self, qid: str, items: Sequence[Recommendation], ks: Sequence[int]) -> dict[str, Any]:
        """One list's figures: plain and story-aware ranking metrics, folding, diversity, repeats."""
        ranked = [r.id for r in items]
        groups = [[r.id, *(a.id for a in r.also)] for r in items]
        relevant = self.dataset.relevant(qid)
        row: dict[str, Any] = {}
        for k in ks:
            row[f"p@{k}"] = metrics.precision_at_k(ranked, relevant, k)
            row[f"r@{k}"] = metrics.recall_at_k(ranked, relevant, k)
            row[f"ndcg@{k}"] = metrics.ndcg_at_k(ranked, relevant, k)
            row[f"s_r@{k}"] = metrics.story_recall_at_k(groups, relevant, k)
            row[f"s_ndcg@{k}"] = metrics.story_ndcg_at_k(groups, relevant, k)
        row["mrr"] = metrics.reciprocal_rank(ranked, relevant)
        row["s_mrr"] = metrics.story_reciprocal_rank(groups, relevant)
        row["folded"], row["folded_right"] = metrics.folded_same_story(groups, self.dataset.qrels, SAME_STORY)
        vectors = np.stack([self.vectors[d] for d in ranked]) if ranked else np.zeros((0, 1))
        row["diversity"] = metrics.intra_list_diversity(vectors)
        source, titles = self.dataset_articles[qid], [self.dataset_articles[d].title for d in ranked]
        row["dup_share"] = metrics.near_duplicate_share(source.title, self.vectors[qid], titles, vectors,
                                                        NEAR_DUPLICATE_COSINE)
        row["story_share"] = metrics.near_duplicate_share(  # a follow-up of the source's story is wanted
            source.title, self.vectors[qid], titles, vectors, SAME_STORY_COSINE, include_source=False)
        row["length"] = len(ranked)
        return row

    def _summary(self, frame: pd.DataFrame, lists: list[list[str]], ks: Sequence[int],
                 seconds_per_query: float) -> dict[str, float]:
        """One strategy's figures over its queries (list-level shares weighted by list length)."""
        summary = {name: float(frame[name].mean()) for name in ranking_metric_names(ks)}
        listed = int(frame["length"].sum())
        summary["folded"] = float(frame["folded"].mean())
        folded = int(frame["folded"].sum())
        summary["fold_prec"] = float(frame["folded_right"].sum()) / folded if folded else float("nan")
        summary["coverage"] = metrics.catalogue_coverage(lists, self.catalogue)
        summary["diversity"] = float(frame["diversity"].dropna().mean()) if frame["diversity"].notna().any() else 0.0
        for share in ("dup_share", "story_share"):
            summary[share] = float((frame[share].fillna(0) * frame["length"]).sum() / listed) if listed else 0.0
        summary["ms_per_query"] = 1000 * seconds_per_query
        return summary


def summary_table(results: Sequence[EvaluationResult], metric: str = "s_ndcg@10") -> pd.DataFrame:
    """Across datasets, one row per result: the default and the best baseline on ``metric``, the share of the
    baseline's shortfall from a perfect list that the default removes (``(default - best) / (1 - best)``),
    whether the difference is significant, and each one's ms per query."""
    rows = []
    for r in results:
        best = r.best_baseline(metric)
        if best is None or "default" not in r.summary:
            continue
        ours = r.summary["default"][metric]
        ci = r.comparisons(metric).loc[best[0]]
        rows.append({"dataset": r.dataset, "half": r.half or "all", "queries": r.queries, "default": ours,
                     "best_baseline": best[0], "baseline": best[1],
                     "removed": (ours - best[1]) / (1 - best[1]) if best[1] < 1 else 0.0,
                     "ci_low": ci["ci_low"], "ci_high": ci["ci_high"], "significant": bool(ci["significant"]),
                     "ms_default": r.summary["default"]["ms_per_query"],
                     "ms_baseline": r.summary[best[0]]["ms_per_query"]})
    return pd.DataFrame(rows)


def compare_controls(evaluator: Evaluator, controls: Mapping[str, tuple[Mapping[str, Any], Mapping[str, Any]]]
                     = CONTROLS, ks: Sequence[int] = DEFAULT_KS, queries: int | None = None, seed: int = 0,
                     progress: bool = False, half: str | None = None) -> EvaluationResult:
    """The default strategy with each newsroom control changed, one row per control, on the same queries."""
    results = {name: evaluator.run(["default"], ks, queries, seed, ranking=dict(r) or None, progress=progress,
                                   query_options=q, half=half)
               for name, (r, q) in controls.items()}
    first = next(iter(results.values()))
    per_query = pd.concat([r.per_query.assign(strategy=name) for name, r in results.items()], ignore_index=True)
    scores = pd.concat([r.scores.assign(strategy=name) for name, r in results.items()], ignore_index=True)
    return replace(first, strategies=list(results), summary={n: r.summary["default"] for n, r in results.items()},
                   per_query=per_query, scores=scores)


def evaluate(dataset: LabelledDataset, strategies: Sequence[str] = STRATEGIES, ks: Sequence[int] = DEFAULT_KS,
             queries: int | None = None, seed: int = 0, ranking: Mapping[str, Any] | Ranking | None = None,
             settings: Settings | None = None, embedder: TextEmbedder | None = None,
             progress: bool = False, half: str | None = None) -> EvaluationResult:
    """Build a recommender over the dataset's articles, run the strategies, return the metrics."""
    with Evaluator(dataset, settings, embedder, progress=progress) as evaluator:
        return evaluator.run(strategies, ks, queries, seed, ranking, progress=progress, half=half)
