"""Related-article recommender: the domain (articles, store, embedding, ranking, evaluation).

For notebooks and scripts::

    from recommender import Recommender, Settings, SimilarQuery, load_dataset, evaluate

    with Recommender(Settings(data_dir="data")) as engine:
        engine.similar("N34700", SimilarQuery(limit=5, explain=True))
    evaluate(load_dataset("../shared/data/mind-sample"), queries=300).table()

Names are imported on first use: ``import recommender`` stays cheap (the CLI's start-up, the service's workers)
and pulls in neither the model nor pandas until asked.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from recommender.engine import Recommender
    from recommender.evaluation import evaluate, load_dataset
    from recommender.rank import SimilarQuery
    from recommender.settings import Settings

_EXPORTS = {
    "Recommender": "recommender.engine",
    "Settings": "recommender.settings",
    "SimilarQuery": "recommender.rank",
    "load_dataset": "recommender.evaluation.dataset",
    "evaluate": "recommender.evaluation.run",
}
__all__ = ["Recommender", "Settings", "SimilarQuery", "evaluate", "load_dataset"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'recommender' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
