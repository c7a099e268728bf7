"""Offline evaluation: labelled datasets, metrics, strategy runs through the service's engine, plots, CLI.

    from recommender.evaluation import load_dataset, evaluate
    result = evaluate(load_dataset("../shared/data/mind-sample"), queries=300)
    result.table()

Names are imported on first use, so that ``recommender serve`` (which registers the evaluate command) does not
pay for pandas and the engine it does not need here.
"""

from importlib import import_module

_EXPORTS = {
    "LabelledDataset": "dataset", "from_mind": "dataset", "load_dataset": "dataset",
    "EvaluationResult": "run", "Evaluator": "run", "evaluate": "run", "select_queries": "run",
    "summary_table": "run",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"recommender.evaluation.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'recommender.evaluation' has no attribute {name!r}")
