"""``recommender evaluate DATASET_DIR``: the strategies side by side on a labelled dataset."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from recommender.rank import STRATEGIES
from recommender.settings import Settings

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


def add_evaluate_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "evaluate",
        help="compare ranking strategies on labelled datasets (precision, recall, nDCG, story-aware nDCG, ...)",
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
                        help="metric of the comparisons and the summary (default: s_ndcg@K for the largest K)")
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
    metric = args.metric or f"s_ndcg@{max(args.k or DEFAULT_KS)}"
    summary = summary_table(results, metric) if not args.controls else None
    if summary is not None and len(summary):
        print(f"\n== summary: default against the best baseline on {metric}; removed = share of the baseline's "
              "shortfall from 1 that the default removes")
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
    metric = args.metric or f"s_ndcg@{max(args.k or DEFAULT_KS)}"
    results = []
    with Evaluator(dataset, settings, progress=True, data_dir=cache) as evaluator:
        for half in halves:
            started = time.perf_counter()
            options = dict(ks=args.k or DEFAULT_KS, queries=args.queries, seed=args.seed, progress=True, half=half)
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
