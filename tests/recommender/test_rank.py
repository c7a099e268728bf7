"""The list's rules, on hand-made candidates: self, unpublished, filters, dedupe, recency, diversity."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from recommender.article import Article
from recommender.candidates import Candidate, normalized_title
from recommender.rank import Ranking, Recommendation, SimilarQuery, rank, with_pins

NOW = datetime(2025, 1, 10, 12, tzinfo=UTC)
SOURCE = Article("src", "Italy rules out troops for Ukraine", published_at=NOW, section="world", language="en")


DIM = 16


def along(similarity: float, axis: int, wobble: float = 0.0) -> np.ndarray:
    """A unit vector with cosine ``similarity`` to the source; vectors on different axes are unlike each other,
    vectors on the same axis are near-copies (``wobble`` tilts one slightly)."""
    v = np.zeros(DIM, dtype=np.float32)
    v[0] = similarity
    v[axis] = np.sqrt(1 - similarity**2)
    v[DIM - 1] = wobble
    return v / np.linalg.norm(v)


SOURCE_VEC = along(1.0, 1)


def tilt(v: np.ndarray, axis: int, amount: float) -> np.ndarray:
    """``v`` leaned towards another axis: cosine 1/sqrt(1 + amount²) to ``v``."""
    w = v.copy()
    w[axis] += amount
    return w / np.linalg.norm(w)


def cand(key: int, title: str, vec: np.ndarray, *, days: float = 0, section="world", language="en",
         status="published", lexical: float = 0.0) -> Candidate:
    article = Article(f"a{key}", title, published_at=NOW - timedelta(days=days), section=section,
                      language=language, status=status)
    return Candidate(key, article, vec, float(vec @ SOURCE_VEC), lexical)


def ids(items):
    return [r.id for r in items]


NO_MMR = Ranking(mmr_lambda=1.0, recency_weight=0.0, lexical_weight=0.0)


def test_source_itself_and_unpublished_and_excluded_are_never_listed():
    cands = [
        Candidate(0, SOURCE, SOURCE_VEC, 1.0),
        cand(1, "Meloni in Paris", along(0.7, 2)),
        cand(2, "Draft story", along(0.8, 3), status="unpublished"),
        cand(3, "Macron on coalition", along(0.75, 4)),
    ]
    assert ids(rank(SOURCE, SOURCE_VEC, cands, SimilarQuery(exclude=frozenset({"a3"})), NO_MMR)) == ["a1"]


def test_items_come_best_first_and_respect_the_limit():
    cands = [cand(i, f"story {i}", along(0.9 - 0.1 * i, i + 1)) for i in range(1, 6)]
    items = rank(SOURCE, SOURCE_VEC, cands, SimilarQuery(limit=3, strategy="embedding"), NO_MMR)
    assert ids(items) == ["a1", "a2", "a3"]
    assert [r.score for r in items] == sorted((r.score for r in items), reverse=True)


def test_same_title_twice_keeps_only_the_better_one():
    cands = [cand(1, "Italy says no to troops!", along(0.8, 2)),
             cand(2, "italy says NO to troops", along(0.6, 3))]
    assert ids(rank(SOURCE, SOURCE_VEC, cands, SimilarQuery(), NO_MMR)) == ["a1"]


def test_near_identical_vectors_are_one_story():
    cands = [cand(1, "Wire copy A", along(0.7, 2)), cand(2, "Wire copy B", along(0.69, 2, wobble=0.05)),
             cand(3, "Different angle", along(0.5, 3))]
    assert ids(rank(SOURCE, SOURCE_VEC, cands, SimilarQuery(), NO_MMR)) == ["a1", "a3"]


def test_copy_of_the_source_itself_is_dropped():
    cands = [cand(1, "Italy rules out troops for Ukraine!", along(0.6, 2)),
             cand(2, "Other wording, same vector", along(0.99, 3)), cand(3, "Related", along(0.5, 4))]
    assert ids(rank(SOURCE, SOURCE_VEC, cands, SimilarQuery(), NO_MMR)) == ["a3"]


def test_the_duplicate_threshold_is_compared_exactly():
    """At the default threshold 0.92: float32's 0.92 (0.9200000167) is a copy, the float32 just below it is not
    (a float32 cosine compared with the threshold in float32 would round the threshold up to the former)."""
    def at(cosine: np.float32, axis: int) -> np.ndarray:
        v = np.zeros(DIM, dtype=np.float32)
        v[0], v[axis] = cosine, np.sqrt(1 - np.float32(cosine) ** 2)
        return v  # its product with SOURCE_VEC (the first axis) is exactly ``cosine``

    above = np.float32(0.92)
    below = np.nextafter(above, np.float32(0))
    cands = [cand(1, "Above", at(above, 2)), cand(2, "Below", at(below, 3))]
    assert ids(rank(SOURCE, SOURCE_VEC, cands, SimilarQuery(), NO_MMR)) == ["a2"]


def test_section_language_and_age_filters():
    cands = [cand(1, "old", along(0.8, 2), days=40), cand(2, "sport", along(0.8, 3), section="sport"),
             cand(3, "uk", along(0.8, 4), language="uk"), cand(4, "fits", along(0.5, 5), days=2)]
    assert ids(rank(SOURCE, SOURCE_VEC, cands, SimilarQuery(section="world", language="en", window_days=7),
                    NO_MMR)) == ["a4"]


def test_an_empty_filter_matches_only_empty_values_and_an_article_without_a_language_stays():
    cands = [cand(1, "no section", along(0.8, 2), section=None), cand(2, "no language", along(0.8, 3), language=None),
             cand(3, "empty language", along(0.8, 4), language="")]
    assert ids(rank(SOURCE, SOURCE_VEC, cands, SimilarQuery(section=""), NO_MMR)) == []
    assert ids(rank(SOURCE, SOURCE_VEC, cands, SimilarQuery(), NO_MMR)) == ["a1", "a2", "a3"]


def test_recency_lifts_the_fresher_of_two_equally_similar_items():
    cands = [cand(1, "old take", along(0.7, 2), days=30), cand(2, "new take", along(0.65, 3), days=0)]
    ranking = Ranking(mmr_lambda=1.0, recency_weight=0.3, recency_half_life_days=7, lexical_weight=0.0,
                      duplicate_threshold=1.0)
    assert ids(rank(SOURCE, SOURCE_VEC, cands, SimilarQuery(explain=True), ranking))[0] == "a2"


def test_mmr_prefers_a_different_angle_over_a_third_near_copy():
    close = [cand(i, f"same angle {i}", along(0.8 - 0.01 * i, 2, wobble=0.3 * i)) for i in range(1, 4)]
    other = cand(9, "other angle", along(0.6, 3))
    query = SimilarQuery(limit=2, group_stories=False)  # the "same angle" items are apart from story grouping
    plain = rank(SOURCE, SOURCE_VEC, close + [other], query, Ranking(mmr_lambda=1.0, duplicate_threshold=1.0))
    diverse = rank(SOURCE, SOURCE_VEC, close + [other], query, Ranking(mmr_lambda=0.5, duplicate_threshold=1.0))
    assert ids(plain) == ["a1", "a2"]
    assert ids(diverse) == ["a1", "a9"]


def test_explanation_gives_the_parts_of_the_score():
    [item] = rank(SOURCE, SOURCE_VEC, [cand(1, "x", along(0.6, 2), days=7, lexical=0.5)],
                  SimilarQuery(explain=True),
                  Ranking(lexical_weight=0.5, recency_weight=0.2, recency_half_life_days=7, mmr_lambda=1.0))
    e = item.explanation
    assert e.recency == pytest.approx(0.9)
    assert item.score == pytest.approx((0.5 * e.semantic + 0.5 * e.lexical) * e.recency, abs=1e-5)


def test_lexical_strategy_ranks_by_the_lexical_signal():
    cands = [cand(1, "a", along(0.8, 2), lexical=0.1), cand(2, "b", along(0.3, 3), lexical=0.9)]
    assert ids(rank(SOURCE, SOURCE_VEC, cands, SimilarQuery(strategy="bm25"), NO_MMR)) == ["a2", "a1"]


def test_normalized_title_ignores_case_accents_and_punctuation():
    assert normalized_title("Café — OPEN!") == normalized_title("cafe open")


def test_same_story_items_show_once_with_the_group_size():
    wires = [cand(1, "Reuters: Italy says no", along(0.7, 2)),
             cand(2, "AP: Italy will not send troops", tilt(along(0.7, 2), 13, 0.5)),  # cosine 0.89 to a1
             cand(3, "AFP: Meloni rules out troops", tilt(along(0.7, 2), 12, 0.6))]  # 0.86 to a1, 0.77 to a2
    other = cand(9, "Macron on coalition", along(0.5, 3))
    grouped = rank(SOURCE, SOURCE_VEC, wires + [other], SimilarQuery(), NO_MMR)
    assert ids(grouped) == ["a1", "a9"]
    assert [r.group_size for r in grouped] == [3, 1]
    assert [[a.id for a in r.also] for r in grouped] == [["a2", "a3"], []]  # the folded reports, best first
    ungrouped = rank(SOURCE, SOURCE_VEC, wires + [other], SimilarQuery(group_stories=False), NO_MMR)
    assert ids(ungrouped) == ["a1", "a2", "a3", "a9"]


def test_with_copy_overlap_a_look_alike_event_is_shown_and_a_retelling_is_folded():
    """Three reports a cosine alone takes for one story: yesterday's and today's rate are two events (their figures
    differ), a retelling of today's shares nearly all its words."""
    def report(key: int, title: str, body: str, vec: np.ndarray) -> Candidate:
        return replace(cand(key, title, vec), article=replace(cand(key, title, vec).article, body=body))

    today = "The hryvnia fell to 41.62 against the dollar on Tuesday, the central bank said"
    cands = [report(1, "Hryvnia falls to 41.62", today, along(0.7, 2)),
             report(2, "The hryvnia falls to 41.62", today + " in Kyiv", along(0.7, 2, wobble=0.01)),
             report(3, "Hryvnia falls to 41.08", "The hryvnia fell to 41.08 against the euro on Monday, the "
                    "central bank said", along(0.7, 2, wobble=0.02)),
             cand(9, "Other", along(0.5, 3))]
    by_cosine = rank(SOURCE, SOURCE_VEC, cands, SimilarQuery(), NO_MMR)
    assert ids(by_cosine) == ["a1", "a9"]
    with_words = rank(SOURCE, SOURCE_VEC, cands, SimilarQuery(), replace(NO_MMR, copy_overlap=0.8))
    assert ids(with_words) == ["a1", "a3", "a9"]
    assert [[a.id for a in r.also] for r in with_words] == [["a2"], [], []]
    novelty = replace(NO_MMR, copy_overlap=0.8, novelty=0.2, novelty_threshold=0.99)  # the MMR path agrees
    assert ids(rank(SOURCE, SOURCE_VEC, cands, SimilarQuery(), novelty)) == ["a1", "a3", "a9"]


def test_with_copy_overlap_a_look_alike_of_the_source_is_not_taken_for_its_copy():
    source = replace(SOURCE, body="Italy will not send troops to Ukraine, the prime minister said on Monday")
    look_alike = replace(cand(1, "Spain rules out jets for Ukraine", along(0.995, 2)).article,
                         body="Spain will not send jets to Ukraine, its defence minister said in Madrid")
    cands = [Candidate(1, look_alike, along(0.995, 2), 0.995), cand(2, "Related", along(0.5, 3))]
    assert ids(rank(source, SOURCE_VEC, cands, SimilarQuery(), NO_MMR)) == ["a2"]
    assert ids(rank(source, SOURCE_VEC, cands, SimilarQuery(), replace(NO_MMR, copy_overlap=0.8))) == ["a1", "a2"]


def test_group_can_be_represented_by_its_freshest_report():
    wires = [cand(1, "First report", along(0.7, 2), days=3), cand(2, "Update", tilt(along(0.7, 2), 13, 0.5), days=1)]
    items = rank(SOURCE, SOURCE_VEC, wires, SimilarQuery(group_pick="freshest"), NO_MMR)
    assert ids(items) == ["a2"] and items[0].group_size == 2
    assert [a.id for a in items[0].also] == ["a1"]


@pytest.mark.parametrize("strategy", ["embedding", "tfidf", "bm25"])
def test_baselines_are_the_plain_top_k_excluding_only_the_source(strategy):
    # What a plain FAISS search or a More-Like-This query returns: copies and same-story reports included.
    wires = [cand(1, "Italy says no", along(0.7, 2), lexical=0.9),
             cand(2, "Italy says no!", tilt(along(0.7, 2), 13, 0.2), lexical=0.8),  # same title, 0.98 to a1
             cand(3, "Italy rules out troops for Ukraine", along(0.99, 3), lexical=0.7),  # a copy of the source
             Candidate(0, SOURCE, SOURCE_VEC, 1.0, 1.0)]
    items = rank(SOURCE, SOURCE_VEC, wires, SimilarQuery(strategy=strategy), Ranking())
    assert sorted(ids(items)) == ["a1", "a2", "a3"]
    assert all(r.group_size == 1 and r.also == () for r in items)


def test_default_window_keeps_an_old_articles_box_in_its_time_unless_asked():
    later = cand(1, "a year later", along(0.9, 2), days=-365)
    then = cand(2, "the same week", along(0.5, 3), days=2)
    windowed = Ranking(mmr_lambda=1.0, recency_weight=0.0, lexical_weight=0.0, window_days=30)
    assert ids(rank(SOURCE, SOURCE_VEC, [later, then], SimilarQuery(), windowed)) == ["a2"]
    assert ids(rank(SOURCE, SOURCE_VEC, [later, then], SimilarQuery(window_days=0), windowed)) == ["a1", "a2"]


def test_same_language_only_unless_cross_lingual_is_asked():
    uk = cand(1, "Італія не надішле війська", along(0.8, 2), language="uk")
    en = cand(2, "Italy will not send troops", along(0.6, 3), language="en")
    assert ids(rank(SOURCE, SOURCE_VEC, [uk, en], SimilarQuery(), NO_MMR)) == ["a2"]
    assert ids(rank(SOURCE, SOURCE_VEC, [uk, en], SimilarQuery(same_language_only=False), NO_MMR)) == ["a1", "a2"]


def test_per_request_half_life_changes_the_recency_factor():
    [item] = rank(SOURCE, SOURCE_VEC, [cand(1, "x", along(0.6, 2), days=2)], SimilarQuery(explain=True,
                  recency_half_life_days=2), Ranking(recency_weight=0.2, recency_half_life_days=7, mmr_lambda=1.0))
    assert item.explanation.recency == pytest.approx(0.9)


def test_pins_go_to_their_positions_and_are_not_listed_twice():
    items = rank(SOURCE, SOURCE_VEC, [cand(i, f"s{i}", along(0.9 - 0.1 * i, i + 1)) for i in range(1, 5)],
                 SimilarQuery(limit=4), NO_MMR)
    pinned = [(1, replace(items[2], pinned=True)), (3, Recommendation(Article("p", "Editor's pick"), 0.1, pinned=True))]
    out = with_pins(items, pinned, limit=4)
    assert ids(out) == ["a3", "a1", "p", "a2"]
    assert [r.pinned for r in out] == [True, False, True, False]


# -- the relevance floor and its fallback ---------------------------------------------------------------------
FLOORED = replace(NO_MMR, relevance_floor=0.5)


def test_items_below_the_relevance_floor_are_not_listed_as_similar_a_fresh_item_of_the_section_takes_their_place():
    cands = [
        cand(1, "Italy and France on troops", along(0.8, 2)),
        cand(2, "Chef opens arcade bar", along(0.3, 3), days=5),
        cand(3, "Miami weather turns", along(0.35, 4), days=1),
        cand(4, "Football title decided", along(0.4, 5), days=0.5, section="sport"),
    ]
    items = rank(SOURCE, SOURCE_VEC, cands, SimilarQuery(limit=3), FLOORED)
    assert ids(items) == ["a1", "a3", "a2"]  # the fallback: same section, freshest first; never the sport item
    assert [r.reason for r in items] == ["similar", "section", "section"]


def test_with_the_fallback_off_a_box_without_close_neighbours_is_shorter():
    cands = [cand(1, "Italy and France on troops", along(0.8, 2)), cand(2, "Chef opens arcade bar", along(0.3, 3))]
    items = rank(SOURCE, SOURCE_VEC, cands, SimilarQuery(limit=3), replace(FLOORED, fallback="none"))
    assert ids(items) == ["a1"] and items[0].reason == "similar"


def test_a_fallback_is_never_a_copy_of_the_source_or_of_another_fallback():
    weather = along(0.3, 3)
    cands = [
        cand(1, "Italy rules out troops for Ukraine", along(0.4, 2)),  # the source's title
        cand(2, "Miami weather turns", weather, days=1),
        cand(3, "Miami weather turns again", tilt(weather, 6, 0.05), days=0.5),  # a copy of a2
        cand(4, "Chef opens arcade bar", along(0.35, 5), days=2),
    ]
    items = rank(SOURCE, SOURCE_VEC, cands, SimilarQuery(limit=4), FLOORED)
    assert ids(items) == ["a3", "a4"]


def test_the_fallback_takes_the_most_popular_when_the_click_signal_is_on():
    cands = [
        Candidate(1, Article("a1", "Old but read", published_at=NOW - timedelta(days=9), section="world"),
                  along(0.3, 2), 0.3, popularity=0.9),
        Candidate(2, Article("a2", "Fresh but unread", published_at=NOW, section="world"), along(0.3, 3), 0.3,
                  popularity=0.1),
    ]
    items = rank(SOURCE, SOURCE_VEC, cands, SimilarQuery(limit=2), replace(FLOORED, popularity_weight=0.2))
    assert ids(items) == ["a1", "a2"] and {r.reason for r in items} == {"popular"}


# -- novelty ---------------------------------------------------------------------------------------------------
def test_novelty_shows_another_story_before_a_third_report_of_one_story():
    story = along(0.8, 2)
    cands = [
        cand(1, "Troops: Italy says no", story),
        cand(2, "Italy says no to troops, again", tilt(story, 6, 0.45)),  # cosine 0.91 to a1: the same story
        cand(3, "Troops row: Rome firm", tilt(story, 7, 0.45)),  # 0.73 to the source, as a2
        cand(4, "France weighs a coalition", along(0.7, 3)),
    ]
    unfolded = replace(NO_MMR, story_threshold=0.95)
    plain = rank(SOURCE, SOURCE_VEC, cands, SimilarQuery(limit=4), unfolded)
    novel = rank(SOURCE, SOURCE_VEC, cands, SimilarQuery(limit=4), replace(unfolded, novelty=0.5, novelty_threshold=0.75))
    assert ids(plain) == ["a1", "a2", "a3", "a4"]
    assert ids(novel) == ["a1", "a4", "a2", "a3"]  # a2 keeps half its score, a3 a quarter
    assert [r.score for r in novel] == sorted((r.score for r in novel), reverse=True)  # scores fall down the list


def test_an_article_without_a_section_keeps_its_nearest_items_when_nothing_could_take_their_place():
    source = replace(SOURCE, section=None)
    cands = [cand(1, "Italy and France on troops", along(0.8, 2)), cand(2, "Chef opens arcade bar", along(0.3, 3))]
    assert ids(rank(source, SOURCE_VEC, cands, SimilarQuery(limit=3), FLOORED)) == ["a1", "a2"]
    assert ids(rank(source, SOURCE_VEC, cands, SimilarQuery(limit=3), replace(FLOORED, fallback="none"))) == ["a1"]
