"""``recommender evaluate DATASET_DIR``: the strategies side by side on a labelled dataset."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from recommender.rank import STRATEGIES
from recommender.settings import Settings


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
        help="compare ranking strategies on a labelled dataset (precision, recall, nDCG, MRR, coverage, ...)",
        description="Rank every query article of DATASET_DIR with each strategy through the service's engine and "
                    "score the lists against the dataset's judgements.",
    )
    parser.add_argument("dataset", type=Path, metavar="DATASET_DIR",
                        help="the MIND sample (holds news.tsv) or a dir with articles.jsonl + qrels.tsv or groups")
    parser.add_argument("--strategies", nargs="+", type=_strategies, default=None,
                        help=f"space- or comma-separated (default: all of {', '.join(STRATEGIES)})")
    parser.add_argument("--k", nargs="+", type=_positive, default=None, metavar="K",
                        help="cut-offs for precision/recall/nDCG (default: 1 5 10)")
    parser.add_argument("--queries", type=_positive, metavar="N",
                        help="evaluate N queries drawn with a fixed seed (default: every query)")
    parser.add_argument("--seed", type=int, default=0, help="seed for --queries (default 0)")
    parser.add_argument("--articles", type=_positive, metavar="N",
                        help="use only the dataset's first N articles (a quick slice)")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the figures as JSON to OUT")
    parser.add_argument("--controls", action="store_true",
                        help="compare the default with each newsroom control changed, instead of the strategies")
    parser.set_defaults(run=_evaluate)
    return parser


def _evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from recommender.evaluation.dataset import load_dataset
    from recommender.evaluation.run import DEFAULT_KS, Evaluator, compare_controls, evaluate

    strategies = [s for group in (args.strategies or [list(STRATEGIES)]) for s in group]
    strategies = list(dict.fromkeys(strategies))
    dataset = load_dataset(args.dataset, limit=args.articles)
    print(dataset.summary(), file=sys.stderr)
    if dataset.skipped:
        print(f"skipped {len(dataset.skipped)} invalid rows, e.g. {dataset.skipped[0]}", file=sys.stderr)
    started = time.perf_counter()
    if args.controls:
        with Evaluator(dataset, settings, progress=True) as evaluator:
            result = compare_controls(evaluator, ks=args.k or DEFAULT_KS, queries=args.queries, seed=args.seed,
                                      progress=True)
    else:
        result = evaluate(dataset, strategies, args.k or DEFAULT_KS, queries=args.queries, seed=args.seed,
                          settings=settings, progress=True)
    print(f"\n{result.dataset}: {result.queries} queries, {result.articles} articles, "
          f"{time.perf_counter() - started:.0f}s")
    print(result.format())
    best = None if args.controls else result.best_baseline(f"ndcg@{max(result.ks)}")
    if "default" in result.summary and best is not None:
        metric = f"ndcg@{max(result.ks)}"
        ours = result.summary["default"][metric]
        verdict = "at least as good as" if ours >= best[1] else "WORSE than"
        print(f"default {metric} {ours:.3f} is {verdict} the best baseline ({best[0]} {best[1]:.3f})")
    if args.json:
        result.to_json(args.json)
        print(f"wrote {args.json}")
    return 0
