"""Following the store: what a process's repair drops from its index."""

import numpy as np

from recommender.following import absent


def test_absent_keys_are_those_the_store_no_longer_publishes_whatever_their_order():
    published = np.array([1, 3, 4], dtype=np.int64)
    assert sorted(absent(np.array([5, 1, 9, 3], dtype=np.int64), published).tolist()) == [5, 9]
    assert absent(np.array([4, 1], dtype=np.int64), published).tolist() == []
    assert absent(np.array([2], dtype=np.int64), np.zeros(0, dtype=np.int64)).tolist() == [2]  # nothing published
    assert absent(np.zeros(0, dtype=np.int64), published).tolist() == []
