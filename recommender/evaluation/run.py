"""Run strategies over a labelled dataset through the service's own engine and collect the metrics.

    dataset = load_dataset("../shared/data/mind-sample")
    result = evaluate(dataset, queries=300)
    result.table()

The lists come from ``Recommender.similar`` (the code the HTTP service runs) over a temporary data dir holding
the dataset's articles; nothing here re-implements ranking. To try several weightings without re-embedding,
keep an :class:`Evaluator` and call ``run(ranking=...)`` on it.

Metric keys (``metric_names``): ``alpha_ndcg@k`` (α-nDCG with stories as nuggets: the headline, see
``metrics``), ``ndcg@k``, ``p@k``, ``r@k`` for each k, ``mrr`` (over the longest list asked for),
``story_hit@1`` (the first item is the query's story), ``story_repeats`` (share of shown items whose story is
already shown above them, by the labels), ``fold_prec`` (share of folded reports that are the story of the item
they are folded behind), ``fold_recall`` (share of a query's story's other reports that the box shows or folds
under an item of that story), ``folded`` (reports folded behind a list's items, mean per list), ``coverage``
(share of the catalogue shown in at least one list), ``diversity`` (mean pairwise cosine distance inside a
list), ``dup_share`` (share of listed items that repeat the source or an item above them: same normalised title
or cosine above ``NEAR_DUPLICATE_COSINE``), ``ms_per_query`` (mean time of one list). Only shown items count:
folded reports (``also``) are not displayed, so they earn no gain.
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
from recommender.rank import Ranking, Recommendation, SimilarQuery
from recommender.settings import Settings
from recommender.specs import STRATEGIES, Strategy

DEFAULT_KS = (1, 5, 10)
# Fixed, not the engine's duplicate_threshold: the yardstick must not move when the engine is tuned.
NEAR_DUPLICATE_COSINE = 0.92
BASELINES = ("tfidf", "bm25", "embedding")  # ``embedding`` is the plain cosine search (FAISS top-k)
ALPHA = 0.5  # α of α-nDCG: a second report of a story earns half, a third a quarter
HEADLINE = "alpha_ndcg@10"


HALVES = ("tuning", "reporting")


def ranking_metric_names(ks: Sequence[int]) -> list[str]:
    """The per-query ranking metrics: novelty-aware first, then the plain ones."""
    return ([f"alpha_ndcg@{k}" for k in ks] + [f"{m}@{k}" for k in ks for m in ("ndcg", "p", "r")]
            + ["story_hit@1", "mrr"])


def metric_names(ks: Sequence[int]) -> list[str]:
    return ranking_metric_names(ks) + ["story_repeats", "fold_prec", "fold_recall", "folded", "coverage",
                                       "diversity", "dup_share", "ms_per_query"]


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
    alpha: float = ALPHA

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
            "alpha": self.alpha,
            "ranking": self.ranking,
            "strategies": self.summary,
        }

    def to_json(self, path: Path | str | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            Path(path).write_text(text + "\n", encoding="utf-8")
        return text

    def best_baseline(self, metric: str = HEADLINE) -> tuple[str, float] | None:
        baselines = [(s, self.summary[s][metric]) for s in self.strategies if s in BASELINES]
        return max(baselines, key=lambda x: x[1]) if baselines else None

    def comparisons(self, metric: str = HEADLINE, against: str = "default", resamples: int = 2000,
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
            self.settings, embedder=embedder or load_embedder(base.model, base.batch_size, bfloat16=base.embed_bfloat16))
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
            split_seed: int = 0, alpha: float = ALPHA) -> EvaluationResult:
        """Every strategy's list for every query (or ``queries`` of them, seeded; of one ``half``), scored
        against the qrels.

        ``ranking`` overrides configured ranking values (fields of ``recommender.rank.Ranking``);
        ``query_options`` are per-request options (fields of ``recommender.rank.SimilarQuery``); ``alpha``: the
        α of α-nDCG."""
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
                strategy_rows.append({"strategy": strategy, "query": qid, **self._query_metrics(qid, items, ks, alpha)})
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
            ranking=asdict(engine.ranking), rule=self.dataset.rule, half=half, alpha=alpha,
        )

    def _query_metrics(self, qid: str, items: Sequence[Recommendation], ks: Sequence[int],
                       alpha: float) -> dict[str, Any]:
        """One list's figures: novelty-aware and plain ranking metrics, folding, diversity, copies."""
        shown = [r.id for r in items]
        groups = [[r.id, *(a.id for a in r.also)] for r in items]
        relevant, stories = self.dataset.relevant(qid), self.dataset.stories
        row: dict[str, Any] = {}
        for k in ks:
            row[f"alpha_ndcg@{k}"] = metrics.alpha_ndcg_at_k(shown, relevant, stories, k, alpha)
            row[f"ndcg@{k}"] = metrics.ndcg_at_k(shown, relevant, k)
            row[f"p@{k}"] = metrics.precision_at_k(shown, relevant, k)
            row[f"r@{k}"] = metrics.recall_at_k(shown, relevant, k)
        row["story_hit@1"] = metrics.hit_at_1(shown, relevant, SAME_STORY)
        row["mrr"] = metrics.reciprocal_rank(shown, relevant)
        row["repeats"] = metrics.story_repeats(shown, stories) if stories else np.nan
        row["folded"], row["folded_right"] = metrics.folded_by_story(groups, self.dataset.same_story)
        reports = self.dataset.story_reports(qid)
        row["fold_recall"] = (metrics.fold_reach(groups, reports, self.dataset.same_story) / len(reports)
                              if reports else np.nan)
        vectors = np.stack([self.vectors[d] for d in shown]) if shown else np.zeros((0, 1))
        row["diversity"] = metrics.intra_list_diversity(vectors)
        source, titles = self.dataset_articles[qid], [self.dataset_articles[d].title for d in shown]
        row["dup_share"] = metrics.near_duplicate_share(source.title, self.vectors[qid], titles, vectors,
                                                        NEAR_DUPLICATE_COSINE)
        row["length"] = len(shown)
        return row

    def _summary(self, frame: pd.DataFrame, lists: list[list[str]], ks: Sequence[int],
                 seconds_per_query: float) -> dict[str, float]:
        """One strategy's figures over its queries (list-level shares weighted by list length)."""
        summary = {name: float(frame[name].mean()) for name in ranking_metric_names(ks)}
        listed = int(frame["length"].sum())
        summary["story_repeats"] = float(frame["repeats"].sum() / listed) \
            if listed and frame["repeats"].notna().all() else float("nan")
        folded = int(frame["folded"].sum())
        summary["fold_prec"] = float(frame["folded_right"].sum()) / folded if folded else float("nan")
        summary["fold_recall"] = float(frame["fold_recall"].mean())  # NaN rows (no story reports) skipped
        summary["folded"] = float(frame["folded"].mean())
        summary["coverage"] = metrics.catalogue_coverage(lists, self.catalogue)
        summary["diversity"] = float(frame["diversity"].dropna().mean()) if frame["diversity"].notna().any() else 0.0
        summary["dup_share"] = float((frame["dup_share"].fillna(0) * frame["length"]).sum() / listed) \
            if listed else 0.0
        summary["ms_per_query"] = 1000 * seconds_per_query
        return summary


# The goal of the default on every same-story set: remove at least this share of the best baseline's shortfall
# on the headline, miss the story at position 1 no more often than the best baseline, fold only what is one story.
GOAL_REMOVED, GOAL_FOLD_PREC = 0.3, 0.95


def summary_table(results: Sequence[EvaluationResult], metric: str = HEADLINE) -> pd.DataFrame:
    """Across datasets, one row per result: the default and the best baseline on ``metric``, the share of the
    baseline's shortfall from a perfect list that the default removes (``(default - best) / (1 - best)``), the
    interval of the difference, same-story hit@1 against the best baseline's, fold precision, whether the goal
    (``GOAL_REMOVED``, hit@1, ``GOAL_FOLD_PREC``) is met, and each one's ms per query."""
    rows = []
    for r in results:
        best = r.best_baseline(metric)
        best_hit = r.best_baseline("story_hit@1")
        if best is None or best_hit is None or "default" not in r.summary:
            continue
        ours = r.summary["default"]
        removed = (ours[metric] - best[1]) / (1 - best[1]) if best[1] < 1 else 0.0
        ci = r.comparisons(metric).loc[best[0]]
        fold_prec = ours["fold_prec"]
        met = removed >= GOAL_REMOVED and ours["story_hit@1"] >= best_hit[1] and not fold_prec < GOAL_FOLD_PREC
        rows.append({"dataset": r.dataset, "half": r.half or "all", "queries": r.queries, "default": ours[metric],
                     "best_baseline": best[0], "baseline": best[1], "removed": removed,
                     "ci_low": ci["ci_low"], "ci_high": ci["ci_high"], "significant": bool(ci["significant"]),
                     "hit@1": ours["story_hit@1"], "best_hit@1": best_hit[1], "fold_prec": fold_prec,
                     "goal": "met" if met else "missed",
                     "ms_default": ours["ms_per_query"], "ms_baseline": r.summary[best[0]]["ms_per_query"]})
    return pd.DataFrame(rows)


def compare_controls(evaluator: Evaluator, controls: Mapping[str, tuple[Mapping[str, Any], Mapping[str, Any]]]
                     = CONTROLS, ks: Sequence[int] = DEFAULT_KS, queries: int | None = None, seed: int = 0,
                     progress: bool = False, half: str | None = None, alpha: float = ALPHA) -> EvaluationResult:
    """The default strategy with each newsroom control changed, one row per control, on the same queries."""
    results = {name: evaluator.run(["default"], ks, queries, seed, ranking=dict(r) or None, progress=progress,
                                   query_options=q, half=half, alpha=alpha)
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
