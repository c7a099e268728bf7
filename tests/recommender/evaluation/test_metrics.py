"""The metric functions on hand-made lists whose answers are worked out by hand."""

import math

import numpy as np
import pytest
from sklearn.metrics import ndcg_score

from recommender.evaluation import metrics

RELEVANT = {"a": 2, "b": 1, "c": 1}  # three relevant articles, "a" the same story
RANKED = ["x", "a", "y", "b", "z"]  # hits at ranks 2 and 4


def test_precision_counts_hits_in_the_top_k_and_divides_by_k():
    assert metrics.precision_at_k(RANKED, RELEVANT, 1) == 0.0
    assert metrics.precision_at_k(RANKED, RELEVANT, 2) == 0.5
    assert metrics.precision_at_k(RANKED, RELEVANT, 5) == 0.4


def test_precision_counts_missing_slots_of_a_short_list_as_misses():
    assert metrics.precision_at_k(["a"], RELEVANT, 10) == 0.1


def test_recall_divides_by_every_relevant_article():
    assert metrics.recall_at_k(RANKED, RELEVANT, 1) == 0.0
    assert metrics.recall_at_k(RANKED, RELEVANT, 2) == pytest.approx(1 / 3)
    assert metrics.recall_at_k(RANKED, RELEVANT, 10) == pytest.approx(2 / 3)
    assert metrics.recall_at_k(["a", "b", "c"], RELEVANT, 3) == 1.0


def test_ndcg_uses_graded_gains_and_the_best_possible_top_k():
    # DCG@5 = 2/log2(3) + 1/log2(5); ideal = 2/log2(2) + 1/log2(3) + 1/log2(4)
    dcg = 2 / math.log2(3) + 1 / math.log2(5)
    ideal = 2 + 1 / math.log2(3) + 1 / 2
    assert metrics.ndcg_at_k(RANKED, RELEVANT, 5) == pytest.approx(dcg / ideal)
    # @1: the ideal top 1 is "a" (grade 2); a miss at rank 1 scores 0
    assert metrics.ndcg_at_k(RANKED, RELEVANT, 1) == 0.0
    assert metrics.ndcg_at_k(["a", "b", "c"], RELEVANT, 3) == pytest.approx(1.0)
    # a weaker article first is not perfect
    assert metrics.ndcg_at_k(["b", "a", "c"], RELEVANT, 3) < 1.0


def test_ndcg_agrees_with_scikit_learn():
    ranked = ["a", "x", "c", "y", "b", "z"]
    relevant = {"a": 2, "b": 1, "c": 3, "w": 1}  # "w" is never listed
    universe = ranked + ["w"]
    y_true = np.array([[relevant.get(d, 0) for d in universe]])
    y_score = np.array([[len(universe) - i for i in range(len(universe))]])  # listed order, "w" last
    for k in (1, 3, 5):
        assert metrics.ndcg_at_k(ranked, relevant, k) == pytest.approx(ndcg_score(y_true, y_score, k=k))


def test_reciprocal_rank_is_one_over_the_first_hit_or_zero():
    assert metrics.reciprocal_rank(RANKED, RELEVANT) == 0.5
    assert metrics.reciprocal_rank(["a"], RELEVANT) == 1.0
    assert metrics.reciprocal_rank(["x", "y"], RELEVANT) == 0.0
    assert metrics.reciprocal_rank([], RELEVANT) == 0.0


def test_coverage_is_the_share_of_the_catalogue_shown_at_least_once():
    assert metrics.catalogue_coverage([["a", "b"], ["b", "c"], []], 10) == 0.3


def test_intra_list_diversity_is_the_mean_pairwise_cosine_distance():
    e1, e2 = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    assert metrics.intra_list_diversity(np.stack([e1, e2])) == pytest.approx(1.0)
    assert metrics.intra_list_diversity(np.stack([e1, e1, e2])) == pytest.approx((0 + 1 + 1) / 3)
    assert metrics.intra_list_diversity(np.stack([e1])) is None


def test_near_duplicate_share_counts_same_titles_and_near_identical_vectors():
    source = np.array([1.0, 0.0])
    other = np.array([0.0, 1.0])
    close = np.array([0.99, math.sqrt(1 - 0.99**2)])  # cosine 0.99 to the source
    titles = ["Storm hits coast", "Storm Hits Coast!", "Markets rally", "Election night"]
    vectors = np.stack([other, other * -1, close, np.array([0.6, 0.8])])
    # item 2 repeats item 1's title; item 3 is the source again (cosine 0.99); item 1 and 4 are new
    share = metrics.near_duplicate_share("Something else", source, titles, vectors, threshold=0.92)
    assert share == pytest.approx(2 / 4)
    assert metrics.near_duplicate_share("x", source, [], np.zeros((0, 2)), 0.92) is None


# The list as shown with folding: each item's id, then the reports folded behind it.
SHOWN = [["x", "a"], ["y"], ["c", "b"]]  # "a" folded behind "x" at position 1, "b" behind "c" at 3


def test_story_aware_metrics_equal_the_plain_ones_when_nothing_is_folded():
    groups = [[d] for d in RANKED]
    for k in (1, 3, 5):
        assert metrics.story_ndcg_at_k(groups, RELEVANT, k) == pytest.approx(metrics.ndcg_at_k(RANKED, RELEVANT, k))
        assert metrics.story_recall_at_k(groups, RELEVANT, k) == pytest.approx(
            metrics.recall_at_k(RANKED, RELEVANT, k))
    assert metrics.story_reciprocal_rank(groups, RELEVANT) == metrics.reciprocal_rank(RANKED, RELEVANT)


def test_a_relevant_report_folded_behind_an_item_is_credited_at_its_position():
    assert metrics.ndcg_at_k(["x", "y", "c"], RELEVANT, 3) == pytest.approx(0.5 / (2 + 1 / math.log2(3) + 0.5))
    # position 1 reaches a (2), position 3 reaches c and b (1 + 1): (2 + 2/2) / ideal (2 + 1/log2 3 + 1/2)
    assert metrics.story_ndcg_at_k(SHOWN, RELEVANT, 3) == pytest.approx(3 / (2 + 1 / math.log2(3) + 0.5))
    assert metrics.story_recall_at_k(SHOWN, RELEVANT, 1) == pytest.approx(1 / 3)
    assert metrics.story_recall_at_k(SHOWN, RELEVANT, 3) == 1.0
    assert metrics.story_reciprocal_rank(SHOWN, RELEVANT) == 1.0


def test_story_aware_ndcg_is_capped_at_one_and_credits_an_article_once():
    everything = [["a", "b", "c"], ["a"], ["b"]]
    assert metrics.story_ndcg_at_k(everything, RELEVANT, 3) == 1.0
    assert metrics.story_recall_at_k(everything, RELEVANT, 3) == 1.0


def test_fold_precision_counts_folded_reports_judged_the_item_s_story():
    judgements = {"x": {"a": 2}, "c": {"b": 1}}
    assert metrics.folded_same_story(SHOWN, judgements, grade=2) == (2, 1)  # "y" has no judgements


def test_paired_bootstrap_gives_the_mean_difference_and_a_seeded_interval():
    rng = np.random.default_rng(1)
    base = rng.uniform(size=300)
    better = base + 0.05 + rng.normal(0, 0.05, size=300)
    diff, low, high = metrics.paired_bootstrap(better, base, seed=0)
    assert diff == pytest.approx(float(np.mean(better - base)))
    assert 0 < low < diff < high  # significant: the interval excludes 0
    assert metrics.paired_bootstrap(better, base, seed=0) == (diff, low, high)
    same = metrics.paired_bootstrap(base + rng.normal(0, 0.05, size=300), base, seed=0)
    assert same[1] < 0 < same[2]  # noise only: the interval holds 0
