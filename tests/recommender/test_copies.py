"""When two articles count as one story told twice: their cosine, and the words they share."""

import numpy as np

from recommender.article import Article
from recommender.copies import Copies, word_overlap, word_set


def test_word_set_reads_title_lead_and_body_in_lower_case_without_markup_numbers_included():
    article = Article("a", "Гривня впала", lead="<p>До 41,62 за долар</p>", body="Курс НБУ")
    assert word_set(article) == {"гривня", "впала", "до", "41", "62", "за", "долар", "курс", "нбу"}


def test_word_overlap_is_the_jaccard_of_two_word_sets():
    assert word_overlap(frozenset("abc"), frozenset("bcd")) == 0.5
    assert word_overlap(frozenset(), frozenset()) == 1.0


def test_copies_are_above_the_threshold_and_with_overlap_also_share_the_words():
    articles = [Article("0", "Rate at 41.62 on Tuesday"), Article("1", "Rate at 41.62 on Tuesday, Kyiv"),
                Article("2", "Rate at 41.08 on Monday"), Article("3", "Rate at 41.62 on Tuesday")]
    similarity = np.array([1.0, 0.995, 0.995, 0.5], dtype=np.float32)
    assert Copies(articles, 0.99).of(similarity, 0).tolist() == [True, True, True, False]
    # 6 of 7 words shared with the second (0.86), 4 of 8 with the third; the fourth is below the cosine threshold
    assert Copies(articles, 0.99, overlap=0.8).of(similarity, 0).tolist() == [True, True, False, False]
