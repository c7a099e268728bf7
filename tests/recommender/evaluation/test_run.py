"""Evaluating strategies end to end through the engine, on a slice of the MIND sample."""

import json

import pandas as pd
import pytest

from recommender.evaluation.dataset import load_dataset
from recommender.evaluation.run import Evaluator, metric_names, select_queries
from recommender.specs import STRATEGIES
from tests.conftest import MIND_SAMPLE, SLICE

QUERIES = 30


@pytest.fixture(scope="module")
def dataset():
    return load_dataset(MIND_SAMPLE, limit=SLICE)


@pytest.fixture(scope="module")
def evaluator(dataset, embedder):
    with Evaluator(dataset, embedder=embedder) as ev:
        yield ev


@pytest.fixture(scope="module")
def result(evaluator):
    return evaluator.run(queries=QUERIES)


def test_every_strategy_is_scored_on_every_metric(result):
    table = result.table()
    assert list(table.index) == list(STRATEGIES)
    assert list(table.columns) == metric_names([1, 5, 10])
    assert len(result.per_query) == len(STRATEGIES) * QUERIES


def test_json_has_a_figure_per_strategy_and_metric(result, tmp_path):
    result.to_json(tmp_path / "out.json")
    data = json.loads((tmp_path / "out.json").read_text())
    assert set(data["strategies"]) == set(STRATEGIES)
    for figures in data["strategies"].values():
        for name in metric_names([1, 5, 10]):
            assert isinstance(figures[name], float)
        for name in ("p@10", "r@10", "ndcg@10", "mrr", "coverage", "dup_share"):
            assert 0.0 <= figures[name] <= 1.0
    assert data["queries"] == QUERIES and data["articles"] == SLICE


def test_lists_find_relevant_articles_far_above_chance(result, dataset):
    # a random article shares the query's subcategory about 1 time in 20 on this slice
    chance = sum(len(j) for j in dataset.qrels.values()) / len(dataset.qrels) / len(dataset.articles)
    for strategy in STRATEGIES:
        assert result.summary[strategy]["p@5"] > 3 * chance, strategy


def test_lists_never_repeat_the_source_or_an_item_above(result):
    for strategy in STRATEGIES:
        assert result.summary[strategy]["dup_share"] == 0.0, strategy


def test_queries_are_drawn_with_a_fixed_seed_among_articles_with_a_relevant_one(dataset):
    first = select_queries(dataset, QUERIES, seed=0)
    assert first == select_queries(dataset, QUERIES, seed=0)
    assert first != select_queries(dataset, QUERIES, seed=1)
    assert len(first) == QUERIES and all(dataset.qrels[q] for q in first)
    assert select_queries(dataset) == dataset.queries


def test_a_ranking_override_reaches_the_default_list(evaluator, result):
    # Without the lexical share, recency, diversity, novelty or floor, the default list is the embedding baseline's.
    plain = evaluator.run(strategies=["default"], queries=QUERIES,
                          ranking={"lexical_weight": 0.0, "mmr_lambda": 1.0, "recency_weight": 0.0, "novelty": 0.0,
                                   "relevance_floor": 0.0})
    assert plain.ranking["lexical_weight"] == 0.0
    assert plain.summary["default"]["ndcg@10"] == pytest.approx(result.summary["embedding"]["ndcg@10"])
    assert plain.summary["default"]["ndcg@10"] != pytest.approx(result.summary["default"]["ndcg@10"])
    # a run with another ranking does not change what the shipped one gives
    again = evaluator.run(strategies=["default"], queries=QUERIES)
    figures = [pd.Series(r.summary["default"]).drop("ms_per_query") for r in (again, result)]
    assert figures[0].equals(figures[1])  # NaN (nothing folded) counts as equal here


def test_unknown_strategy_is_refused(evaluator):
    with pytest.raises(ValueError, match="unknown strateg"):
        evaluator.run(strategies=["magic"])


def test_controls_are_compared_against_the_default_on_the_same_queries(evaluator):
    from recommender.evaluation.run import CONTROLS, compare_controls

    # With the relevance floor, this small slice's boxes are mostly their section's fallback, which no control
    # changes: the controls are compared on the similar items.
    unfloored = {name: ({**ranking, "relevance_floor": 0.0}, options) for name, (ranking, options) in CONTROLS.items()}
    result = compare_controls(evaluator, unfloored, queries=QUERIES)
    table = result.table()
    assert list(table.index) == list(CONTROLS)
    # MIND names no stories: repeats of a story cannot be counted there
    assert table["story_repeats"].isna().all()
    # More diversity (lower MMR lambda) buys diversity.
    assert table.loc["more diversity (λ=0.8)", "diversity"] > table.loc["no diversity (λ=1)", "diversity"]
