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


# A query of story "S" with three other reports (s1 grade 2, s2, s3), a look-alike story "L" (l1, l2: grade 1,
# the same topic) and unrelated items (x, y): each article's story by its label.
STORIES = {"s1": "S", "s2": "S", "s3": "S", "l1": "L", "l2": "L"}
JUDGED = {"s1": 2, "s2": 2, "s3": 2, "l1": 1, "l2": 1}
D = [1 / math.log2(r + 1) for r in range(1, 11)]  # the discount of rank r, D[r - 1]


def test_a_second_report_of_the_querys_story_earns_half_a_third_a_quarter():
    shown = ["s1", "s2", "s3"]
    dcg = 2 * D[0] + 1 * D[1] + 0.5 * D[2]
    # greedy ideal: s1 (2), then s2 (1) or l1 (1), then the other (1): 2, 1, 1
    assert metrics.ideal_novelty_gains(JUDGED, STORIES, 3, 0.5) == [2, 1, 1]
    ideal = 2 * D[0] + 1 * D[1] + 1 * D[2]
    assert metrics.alpha_ndcg_at_k(shown, JUDGED, STORIES, 3) == pytest.approx(dcg / ideal)


def test_the_greedy_ideal_takes_the_largest_gain_left_at_each_position():
    # S offers 2, 1, 0.5; L offers 1, 0.5: ideal 2, 1, 1, 0.5, 0.5, and no sixth judged article
    assert metrics.ideal_novelty_gains(JUDGED, STORIES, 6, 0.5) == [2, 1, 1, 0.5, 0.5]
    best = ["s1", "l1", "s2", "s3", "l2"]
    assert metrics.alpha_ndcg_at_k(best, JUDGED, STORIES, 5) == pytest.approx(1.0)


def test_a_look_alike_story_first_is_worse_than_the_querys_story_first():
    assert (metrics.alpha_ndcg_at_k(["l1", "s1"], JUDGED, STORIES, 2)
            < metrics.alpha_ndcg_at_k(["s1", "l1"], JUDGED, STORIES, 2))


def test_folded_reports_earn_nothing_only_shown_items_count():
    # a box showing s1 with s2 and s3 folded behind it, then unrelated items, scores as s1 alone
    assert metrics.alpha_ndcg_at_k(["s1", "x", "y"], JUDGED, STORIES, 3) == pytest.approx(
        2 * D[0] / (2 * D[0] + D[1] + D[2]))


def test_with_every_article_a_story_of_its_own_alpha_ndcg_is_ndcg():
    for k in (1, 3, 5):
        assert metrics.alpha_ndcg_at_k(RANKED, RELEVANT, {}, k) == pytest.approx(metrics.ndcg_at_k(RANKED, RELEVANT, k))


def test_alpha_zero_gives_no_credit_for_novelty():
    assert metrics.alpha_ndcg_at_k(["s1", "s2", "s3"], {"s1": 2, "s2": 2, "s3": 2}, STORIES, 3, alpha=0.0) == 1.0
    with pytest.raises(ValueError):
        metrics.alpha_ndcg_at_k(["s1"], JUDGED, STORIES, 3, alpha=1.0)


def test_story_repeats_count_items_whose_story_is_already_shown_above():
    assert metrics.story_repeats(["s1", "l1", "s2", "x", "l2", "y"], STORIES) == 2
    assert metrics.story_repeats(["x", "y"], STORIES) == 0  # unlabelled articles are stories of their own


def test_same_story_hit_at_1_asks_the_first_item_to_be_the_querys_story():
    assert metrics.hit_at_1(["s2", "l1"], JUDGED, grade=2) == 1.0
    assert metrics.hit_at_1(["l1", "s2"], JUDGED, grade=2) == 0.0  # the same topic is not the same story
    assert metrics.hit_at_1([], JUDGED, grade=2) == 0.0


def _same_story(a: str, b: str) -> bool:
    return STORIES.get(a, a) == STORIES.get(b, b)


def test_fold_precision_counts_folded_reports_of_the_items_own_story():
    groups = [["s1", "s2", "l1"], ["l2"], ["x", "y"]]  # l1 folded behind s1 and y behind x are wrong
    assert metrics.folded_by_story(groups, _same_story) == (3, 1)
    unknown = [["s1", "s2"], ["q", "r"]]  # nothing says whether r is q's story: not counted
    assert metrics.folded_by_story(unknown, lambda a, b: None if a == "q" else _same_story(a, b)) == (1, 1)


def test_fold_recall_counts_the_querys_reports_shown_or_folded_under_an_item_of_their_story():
    reports = {"s1", "s2", "s3"}
    assert metrics.fold_reach([["s1", "s2"], ["x"]], reports, _same_story) == 2
    assert metrics.fold_reach([["l1", "s2"], ["s3"]], reports, _same_story) == 1  # s2 folded under another story
    assert metrics.fold_reach([["x"]], reports, _same_story) == 0


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
