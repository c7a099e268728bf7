"""The popularity signal: off by default; when weighed in, items readers clicked lately move up a list, and
old clicks count for less."""

import math
import time

import pytest

from recommender.engine import Recommender
from recommender.events import DAY_MS, Event
from recommender.popularity import popularity
from recommender.rank import SimilarQuery
from tests.conftest import make_settings

SOURCE = "N34700"
NOW = int(time.time() * 1000)


def test_clicks_decay_by_their_half_life_and_scores_lie_between_0_and_1():
    scores = popularity([("a", NOW, 8), ("b", NOW - 2 * DAY_MS, 8), ("c", NOW, 1)], NOW, half_life_days=2)
    assert scores["a"] == 1.0 and scores["b"] == pytest.approx(math.log1p(4) / math.log1p(8))
    assert 0 < scores["c"] < scores["b"] < scores["a"]
    assert popularity([], NOW, 2) == {}


def clicks(item: str, n: int) -> list[Event]:
    return [Event("click", SOURCE, item, 8, "0123456789abcdef", "default", NOW)] * n


def test_a_clicked_item_moves_up_only_when_popularity_is_weighed_in(engine):
    ranked = [r.id for r in engine.similar(SOURCE, SimilarQuery(limit=10))]
    engine.event_store.append(clicks(ranked[-1], 20), NOW)
    assert [r.id for r in engine.similar(SOURCE, SimilarQuery(limit=10))] == ranked  # off by default
    weighed = engine.similar(SOURCE, SimilarQuery(limit=10, popularity_weight=0.5, explain=True))
    assert weighed[0].id == ranked[-1] and weighed[0].explanation.popularity == 1.0
    assert {r.id for r in weighed[1:]} <= set(ranked)


def test_the_setting_weighs_it_into_the_default_list(data_dir, embedder):
    with Recommender(make_settings(data_dir), embedder=embedder) as plain:
        ranked = [r.id for r in plain.similar(SOURCE, SimilarQuery(limit=10))]
        plain.event_store.append(clicks(ranked[-1], 20), NOW)
    with Recommender(make_settings(data_dir, popularity_weight=0.5), embedder=embedder) as engine:
        assert engine.similar(SOURCE, SimilarQuery(limit=10))[0].id == ranked[-1]
