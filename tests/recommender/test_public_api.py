"""The names a notebook imports from ``recommender``, and what importing the package costs."""

import json
import sqlite3
import subprocess
import sys

import pytest

import recommender
from index import load_index
from recommender.article import Article
from tests.conftest import make_settings


def test_the_public_names_are_the_ones_documented():
    from recommender import Recommender, Settings, SimilarQuery, evaluate, load_dataset
    from recommender.engine import Recommender as EngineRecommender
    from recommender.evaluation.run import evaluate as run_evaluate

    assert Recommender is EngineRecommender and evaluate is run_evaluate
    assert {Settings.__name__, SimilarQuery.__name__, load_dataset.__name__} == {"Settings", "SimilarQuery",
                                                                                  "load_dataset"}
    assert set(recommender.__all__) <= set(dir(recommender))


def test_importing_the_package_loads_nothing_heavy():
    code = "import sys, json, recommender; print(json.dumps(sorted(sys.modules)))"
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                           check=True).stdout))
    assert not loaded & {"numpy", "torch", "faiss", "pandas", "sentence_transformers", "fastapi", "pydantic"}


def test_a_recommender_is_a_context_manager_that_checkpoints_and_closes(data_dir, embedder):
    settings = make_settings(data_dir)
    with recommender.Recommender(settings, embedder=embedder) as engine:
        engine.upsert([Article(id="ctx-1", title="A story written inside the with block")])
        seq = engine.store.seq
    assert load_index(settings.index_path)[1].seq == seq  # the index was saved on the way out
    with pytest.raises(sqlite3.ProgrammingError):  # and the store's writer is closed
        engine.upsert([Article(id="ctx-2", title="Too late")])
