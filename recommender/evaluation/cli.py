"""``recommender evaluate DATASET_DIR``: the strategies side by side on a labelled dataset."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from recommender.settings import Settings
from recommender.specs import STRATEGIES

if TYPE_CHECKING:
    import numpy as np

DEFAULT_KS = (1, 5, 10)  # as recommender.evaluation.run, without importing pandas at start-up


def _strategies(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in names if s not in STRATEGIES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown strategy {', '.join(unknown)}; choose from {', '.join(STRATEGIES)}")
    return names


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def _alpha(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not in [0, 1)")
    return value


def add_evaluate_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "evaluate",
        help="compare ranking strategies on labelled datasets (α-nDCG, nDCG, same-story hit@1, folding, ...)",
        description="Rank the query articles of each DATASET_DIR with each strategy through the service's engine "
                    "and score the lists against the dataset's judgements: a table per dataset and half "
                    "(tuning / reporting), the default against each baseline with 95%% confidence intervals, "
                    "and a summary across datasets.",
    )
    parser.add_argument("datasets", type=Path, nargs="+", metavar="DATASET_DIR",
                        help="the MIND sample (holds news.tsv) or a dir with articles.jsonl + qrels.tsv or groups")
    parser.add_argument("--strategies", nargs="+", type=_strategies, default=None,
                        help=f"space- or comma-separated (default: all of {', '.join(STRATEGIES)})")
    parser.add_argument("--k", nargs="+", type=_positive, default=None, metavar="K",
                        help="cut-offs for precision/recall/nDCG (default: 1 5 10)")
    parser.add_argument("--half", choices=("tuning", "reporting", "both", "all"), default="both",
                        help="which queries: a half of each dataset split by story (see --split-seed), both halves "
                             "one after the other (default), or all queries")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the tuning/reporting split (default 0)")
    parser.add_argument("--queries", type=_positive, metavar="N",
                        help="evaluate N queries (of each half) drawn with a fixed seed (default: every query)")
    parser.add_argument("--seed", type=int, default=0, help="seed for --queries (default 0)")
    parser.add_argument("--articles", type=_positive, metavar="N",
                        help="use only each dataset's first N articles (a quick slice)")
    parser.add_argument("--metric", default=None,
                        help="metric of the comparisons and the summary (default: alpha_ndcg@K for the largest K)")
    parser.add_argument("--alpha", type=_alpha, default=0.5,
                        help="α of α-nDCG: the share of a story's gain lost with each report of it shown above "
                             "(default 0.5)")
    parser.add_argument("--cache-dir", type=Path, metavar="DIR",
                        help="keep each dataset's embedded articles under DIR and reuse them on the next run")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the figures as JSON to OUT")
    parser.add_argument("--controls", action="store_true",
                        help="compare the default with each newsroom control changed, instead of the strategies")
    parser.set_defaults(run=_evaluate)
    return parser


def _evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from recommender.evaluation.run import summary_table

    strategies = list(dict.fromkeys(s for group in (args.strategies or [list(STRATEGIES)]) for s in group))
    named: dict[str, list[str | None]] = {"both": ["tuning", "reporting"], "all": [None]}
    halves = named.get(args.half, [args.half])
    results = []
    for path in args.datasets:
        results += _evaluate_dataset(path, strategies, halves, args, settings)
    metric = args.metric or f"alpha_ndcg@{max(args.k or DEFAULT_KS)}"
    summary = summary_table(results, metric) if not args.controls else None
    if summary is not None and len(summary):
        print(f"\n== summary: default against the best baseline on {metric}; removed = share of the baseline's "
              "shortfall from 1 that the default removes; goal: removed >= 0.3, hit@1 >= the best baseline's, "
              "fold_prec >= 0.95 where it folds")
        print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.json:
        data = [{**r.to_dict(), "comparisons": r.comparisons(metric).to_dict(orient="index")}
                if not args.controls else r.to_dict() for r in results]
        args.json.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


def _evaluate_dataset(path: Path, strategies: list[str], halves: list[str | None], args: argparse.Namespace,
                      settings: Settings) -> list:
    """Print one dataset's tables (a table per half, then the default against each baseline); its results."""
    from recommender.evaluation.dataset import load_dataset
    from recommender.evaluation.run import Evaluator, compare_controls

    dataset = load_dataset(path, limit=args.articles)
    print(dataset.summary(), file=sys.stderr)
    if dataset.skipped:
        print(f"skipped {len(dataset.skipped)} invalid rows, e.g. {dataset.skipped[0]}", file=sys.stderr)
    cache = args.cache_dir / f"{path.resolve().name}-{args.articles or 'all'}" if args.cache_dir else None
    metric = args.metric or f"alpha_ndcg@{max(args.k or DEFAULT_KS)}"
    results = []
    with Evaluator(dataset, settings, progress=True, data_dir=cache) as evaluator:
        for half in halves:
            started = time.perf_counter()
            options = dict(ks=args.k or DEFAULT_KS, queries=args.queries, seed=args.seed, progress=True, half=half,
                           alpha=args.alpha)
            result = compare_controls(evaluator, **options) if args.controls \
                else evaluator.run(strategies, split_seed=args.split_seed, **options)
            results.append(result)
            print(f"\n== {result.dataset}, {half or 'all'} queries: {result.queries} queries, {result.articles} "
                  f"articles, {time.perf_counter() - started:.0f}s")
            print(result.format())
            if not args.controls and "default" in result.summary and len(result.strategies) > 1:
                print(f"-- default against each other strategy on {metric}, query by query "
                      "(mean difference, 95% paired-bootstrap CI):")
                print(result.comparisons(metric).to_string(float_format=lambda v: f"{v:+.3f}"))
    return results


def add_calibrate_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "calibrate", help="measure the configured model's story threshold and relevance floor on labelled datasets",
        description="On the tuning half of each DATASET_DIR (through the service's engine, with RECOMMENDER_MODEL): "
                    "the cosine above which pairs of candidates are one story with >= 95%% precision (folding), "
                    "and the default score above which items are same-topic or better with >= 90%% precision "
                    "(the relevance floor); per dataset and pooled. recommender/calibration.py holds the results.")
    parser.add_argument("datasets", type=Path, nargs="+", metavar="DATASET_DIR")
    parser.add_argument("--half", choices=("tuning", "reporting", "all"), default="tuning")
    parser.add_argument("--queries", type=_positive, metavar="N", help="N queries of each set (default: all)")
    parser.add_argument("--cache-dir", type=Path, metavar="DIR", help="as for evaluate")
    parser.set_defaults(run=_calibrate)
    return parser


def _calibrate(args: argparse.Namespace, settings: Settings) -> int:
    import numpy as np

    from recommender.evaluation import calibrate
    from recommender.evaluation.dataset import load_dataset
    from recommender.evaluation.run import Evaluator, select_queries

    pooled: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"story": [], "floor": []}
    print(f"model {settings.model}; {args.half} half")
    for path in args.datasets:
        dataset = load_dataset(path)
        cache = args.cache_dir / f"{path.resolve().name}-all" if args.cache_dir else None
        with Evaluator(dataset, settings, progress=True, data_dir=cache) as evaluator:
            queries = select_queries(dataset, args.queries, half=None if args.half == "all" else args.half)
            measured = {"floor": calibrate.default_scores(evaluator, queries)}
            if dataset.stories:
                measured["story"] = calibrate.story_pairs(evaluator, queries)
        for name, (scores, right) in measured.items():
            pooled[name].append((scores, right))
            _print_threshold(f"{dataset.name} {name}", scores, right, name)
    for name, parts in pooled.items():
        if parts:
            _print_threshold(f"pooled {name}", np.concatenate([p[0] for p in parts]),
                             np.concatenate([p[1] for p in parts]), name)
    return 0


def _print_threshold(label: str, scores: np.ndarray, right: np.ndarray, name: str) -> None:
    from recommender.evaluation import calibrate

    precision = calibrate.FOLD_PRECISION if name == "story" else calibrate.FLOOR_PRECISION
    m = calibrate.lowest_precise_threshold(scores, right, precision)
    value = "none reaches it" if m.value is None else f"{m.value:.3f}"
    print(f"{label}: {value} (precision {m.precision:.3f} on {m.support} of {m.judged}; target {precision})")
