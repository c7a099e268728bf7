"""Lexical relevance: TF-IDF cosine and the BM25 "More Like This" query, kept in step with changes."""

import pytest

from recommender.lexical import LexicalIndex

CORPUS = {
    1: "Italy rules out sending troops to Ukraine after Paris coalition meeting",
    2: "Coalition of the willing meets in Paris on security guarantees for Ukraine",
    3: "Stock markets fall as trade war fears return",
    4: "Marathon runner wins in the rain",
}


@pytest.fixture
def lexical() -> LexicalIndex:
    index = LexicalIndex()
    index.build(list(CORPUS), list(CORPUS.values()))
    return index


@pytest.mark.parametrize("method", ["tfidf", "bm25"])
def test_shared_terms_rank_first_and_unrelated_texts_do_not_match(lexical, method):
    scores, keys = lexical.search("Paris coalition talks on Ukraine troops", 4, method)
    assert list(keys[:2]) == [1, 2] or list(keys[:2]) == [2, 1]
    assert 4 not in keys and 3 not in keys
    assert all(0 < s <= 1.5 for s in scores)


def test_tfidf_of_a_text_against_itself_is_one(lexical):
    [score] = lexical.scores_for(CORPUS[3], [3], "tfidf")
    assert score == pytest.approx(1.0, abs=1e-5)


def test_removed_and_replaced_texts_follow_the_corpus(lexical):
    lexical.remove([1])
    assert 1 not in lexical.search("Italy troops Ukraine", 4, "bm25")[1]
    lexical.add([4], ["Ukraine troops marathon"])
    assert 4 in lexical.search("Ukraine troops", 4, "bm25")[1]
    assert lexical.scores_for("Ukraine troops", [99], "bm25").tolist() == [0.0]


def test_unknown_method_is_an_error(lexical):
    with pytest.raises(ValueError, match="lexical method"):
        lexical.search("x", 1, "magic")


def test_saved_index_loads_with_the_same_scores_and_sequence(lexical, tmp_path):
    lexical.remove([3])
    lexical.save(tmp_path / "lexical.npz", seq=7)
    loaded, seq = LexicalIndex.load(tmp_path / "lexical.npz")
    assert seq == 7 and len(loaded) == len(lexical) == 3
    for method in ("tfidf", "bm25"):
        for text in CORPUS.values():
            want, got = lexical.search(text, 4, method), loaded.search(text, 4, method)
            assert got[1].tolist() == want[1].tolist() and got[0].tolist() == pytest.approx(want[0].tolist())
    loaded.add([5], ["Paris marathon in the rain"])  # counted with the saved vocabulary
    assert 5 in loaded.search("marathon rain", 4, "bm25")[1].tolist()


def test_a_corrupt_saved_index_is_refused(tmp_path):
    (tmp_path / "lexical.npz").write_bytes(b"not an npz")
    with pytest.raises(ValueError):
        LexicalIndex.load(tmp_path / "lexical.npz")
