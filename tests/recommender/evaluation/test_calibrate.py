"""Thresholds measured on labelled data: the lowest score above which items are right often enough."""

import numpy as np

from recommender.evaluation.calibrate import lowest_precise_threshold


def test_the_threshold_is_the_lowest_score_whose_items_above_are_right_often_enough():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    right = np.array([True, True, True, False, True, False])
    measured = lowest_precise_threshold(scores, right, 0.8)
    assert measured.value == 0.5 and measured.support == 5 and measured.precision == 0.8
    assert lowest_precise_threshold(scores, right, 1.0).value == 0.7


def test_a_tie_at_the_cut_is_kept_or_dropped_whole():
    scores = np.array([0.9, 0.7, 0.7, 0.7])
    right = np.array([True, True, False, False])
    # 0.9 alone is right 1/1; with the 0.7 tie 2/4: the threshold cannot split the tie
    assert lowest_precise_threshold(scores, right, 0.9).value == 0.9


def test_no_threshold_when_nothing_is_precise_enough():
    assert lowest_precise_threshold(np.array([0.9, 0.8]), np.array([False, True]), 0.9).value is None
