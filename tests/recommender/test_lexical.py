"""Lexical relevance: TF-IDF cosine and the BM25 "More Like This" query, kept in step with changes."""

from pathlib import Path

import numpy as np
import pytest

from recommender.arrayfile import mapped_arrays, save_arrays
from recommender.lexical import CorpusStats, LexicalIndex, save_weights, saved_weights_seq, weights_file
from tests.mappings import mapper, rss_and_pss

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
    lexical.save(tmp_path / "lexical.counts", seq=7)
    loaded, seq = LexicalIndex.load(tmp_path / "lexical.counts")
    assert seq == 7 and len(loaded) == len(lexical) == 3
    for method in ("tfidf", "bm25"):
        for text in CORPUS.values():
            want, got = lexical.search(text, 4, method), loaded.search(text, 4, method)
            assert got[1].tolist() == want[1].tolist() and got[0].tolist() == pytest.approx(want[0].tolist())
    loaded.add([5], ["Paris marathon in the rain"])  # counted with the saved vocabulary
    assert 5 in loaded.search("marathon rain", 4, "bm25")[1].tolist()


def test_counts_and_weights_derived_from_another_store_are_refused(lexical, tmp_path):
    counts, weights = tmp_path / "lexical.counts", tmp_path / "lexical.weights"
    lexical.save(counts, seq=4, store="ours")
    save_weights(weights, lexical.live_counts(), seq=4, store="ours")
    assert LexicalIndex.load(counts, "ours")[1] == LexicalIndex.map_weights(weights, "ours")[1] == 4
    assert saved_weights_seq(weights, "ours") == 4 and saved_weights_seq(weights, "theirs") == -1
    with pytest.raises(ValueError, match="derived from another store"):
        LexicalIndex.load(counts, "theirs")
    with pytest.raises(ValueError, match="derived from another store"):
        LexicalIndex.map_weights(weights, "theirs")
    with pytest.raises(ValueError, match="derived from another store"):
        CorpusStats.read(weights, "theirs")  # the writer's weights for which boxes a write may enter


def test_a_corrupt_saved_index_is_refused(lexical, tmp_path):
    (tmp_path / "lexical.counts").write_bytes(b"not an array file")
    with pytest.raises(ValueError):
        LexicalIndex.load(tmp_path / "lexical.counts")
    arrays, metadata = mapped_arrays(_saved(lexical, tmp_path))
    damaged = {**{name: np.array(a) for name, a in arrays.items()}, "indices": np.array(arrays["indices"]) + 100}
    save_arrays(tmp_path / "lexical.counts", damaged, metadata)  # a valid array file, columns past the vocabulary
    with pytest.raises(ValueError):
        LexicalIndex.load(tmp_path / "lexical.counts")


def test_loaded_counts_are_a_read_only_mapping_of_the_file_until_the_rows_are_stacked_anew(lexical, tmp_path):
    loaded, _ = LexicalIndex.load(_saved(lexical, tmp_path))
    counts = loaded._counts
    assert all(_of_a_mapping(a) and not a.flags.writeable for a in (counts.data, counts.indices, counts.indptr))
    loaded.add([5], ["Paris marathon in the rain"])
    loaded.remove([1])  # the keys are its own copy
    loaded.save(tmp_path / "again.counts", seq=2)  # stacks its rows: a copy in memory from now on
    assert loaded._counts.data.flags.writeable
    keys = LexicalIndex.load(tmp_path / "again.counts")[0].search("Paris marathon in the rain", 4, "bm25")[1].tolist()
    assert keys[0] == 5 and 1 not in keys


def _of_a_mapping(array: np.ndarray) -> bool:
    """Whether ``array`` is a view of a file mapping, not a copy."""
    base = array.base
    while base is not None and not isinstance(base, np.memmap):
        base = base.base
    return base is not None


def _saved(index: LexicalIndex, tmp_path) -> Path:
    index.save(tmp_path / "lexical.counts", seq=1)
    return tmp_path / "lexical.counts"


MORE = {5: "Paris marathon in the rain", 6: "Ukraine coalition troops debate", 7: "Trade war fears hit markets"}


def scores_of(index: LexicalIndex) -> list[float]:
    """Every text's scores against keys 1 to 7, both methods, in one list."""
    return [score for text in (*CORPUS.values(), *MORE.values()) for method in ("tfidf", "bm25")
            for score in index.scores_for(text, list(range(1, 8)), method).tolist()]


def test_texts_added_one_at_a_time_score_as_when_added_together_and_after_a_save(lexical, tmp_path, monkeypatch):
    together = LexicalIndex()
    together.build(list(CORPUS), list(CORPUS.values()))
    for index in (lexical, together):  # the corpus weighed before the adds: they are weighed with its weights
        index.search("Ukraine", 3, "bm25")
    together.add(list(MORE), list(MORE.values()))
    for key, text in MORE.items():  # a search between adds weighs the rows added so far
        lexical.add([key], [text])
        lexical.search(text, 3, "bm25")
    assert scores_of(lexical) == scores_of(together)
    lexical.save(tmp_path / "lexical.counts", seq=1)
    weighed_once = LexicalIndex()  # a loaded index weighs every row it holds at once
    weighed_once.build(list(CORPUS), list(CORPUS.values()))
    weighed_once.add(list(MORE), list(MORE.values()))
    assert scores_of(LexicalIndex.load(tmp_path / "lexical.counts")[0]) == scores_of(weighed_once)
    monkeypatch.setattr("recommender.lexical.REWEIGH_MIN", 0)  # the next change reweighs the whole corpus
    lexical.remove([7])
    fresh = LexicalIndex()
    fresh.build(list(CORPUS), list(CORPUS.values()))  # the same vocabulary: fitted on the first corpus
    fresh.add([5, 6], [MORE[5], MORE[6]])
    assert scores_of(lexical) == pytest.approx(scores_of(fresh))


def test_a_word_first_seen_in_a_later_text_is_searchable_at_once_and_after_a_save(lexical, tmp_path):
    lexical.search("Ukraine", 3, "bm25")  # the corpus weighed before the new text arrives
    lexical.add([9], ["Zelenskyy meets Tusk in Rzeszow"])  # three names the corpus never had
    for index in (lexical, _saved_and_loaded(lexical, tmp_path)):
        for method in ("bm25", "tfidf"):
            _, keys = index.search("Tusk and Zelenskyy talks", 1, method)
            assert keys.tolist() == [9], method


def _saved_and_loaded(index: LexicalIndex, tmp_path) -> LexicalIndex:
    index.save(tmp_path / "lexical.counts", seq=1)
    return LexicalIndex.load(tmp_path / "lexical.counts")[0]


def test_an_index_built_from_chunks_is_the_index_built_at_once(lexical, tmp_path):
    chunked = LexicalIndex()
    items = list(CORPUS.items())
    chunked.build_from(([k for k, _ in items[i:i + 3]], [t for _, t in items[i:i + 3]]) for i in range(0, 4, 3))
    lexical.save(tmp_path / "whole.counts", seq=1)
    chunked.save(tmp_path / "chunked.counts", seq=1)
    (whole, whole_meta), (parts, parts_meta) = (mapped_arrays(tmp_path / name) for name in ("whole.counts",
                                                                                             "chunked.counts"))
    assert whole_meta == parts_meta and whole.keys() == parts.keys()
    assert all(np.array_equal(whole[name], parts[name]) for name in whole)
    for method in ("tfidf", "bm25"):
        query = "Paris coalition Ukraine"
        want, got = lexical.search(query, 4, method), chunked.search(query, 4, method)
        assert got[1].tolist() == want[1].tolist() and got[0].tolist() == pytest.approx(want[0].tolist())
    empty = LexicalIndex()
    empty.build_from([])
    assert len(empty) == 0 and empty.search("Paris", 4, "bm25")[1].tolist() == []


def weighed_once(texts: dict[int, str]) -> LexicalIndex:
    """An index of ``texts`` whose weights are derived over all of them (by its first search)."""
    index = LexicalIndex()
    index.build(list(texts), list(texts.values()))
    index.search("Paris", 1, "bm25")
    return index


def test_mapped_weights_score_as_the_live_texts_weighed_once(lexical, tmp_path):
    lexical.add(list(MORE), list(MORE.values()))
    lexical.remove([3])
    save_weights(tmp_path / "lexical.weights", lexical.live_counts(), seq=4)
    mapped, seq = LexicalIndex.map_weights(tmp_path / "lexical.weights")
    assert seq == 4 and mapped.mapped and len(mapped) == 6 and 3 not in mapped and 5 in mapped
    live = {k: t for k, t in (CORPUS | MORE).items() if k != 3}
    assert scores_of(mapped) == pytest.approx(scores_of(weighed_once(live)), abs=1e-6)


def test_a_mapped_index_weighs_what_it_follows_with_the_files_weights(lexical, tmp_path):
    save_weights(tmp_path / "lexical.weights", lexical.live_counts(), seq=1)
    mapped, _ = LexicalIndex.map_weights(tmp_path / "lexical.weights")
    in_memory = weighed_once(CORPUS)  # weighed before the changes, as the file was
    for index in (mapped, in_memory):
        index.add(list(MORE), list(MORE.values()))
        index.add([9], ["Zelenskyy meets Tusk in Rzeszow"])  # three names the file never had
        index.remove([1])
    assert scores_of(mapped) == pytest.approx(scores_of(in_memory), abs=1e-6)
    assert mapped.search("Tusk and Zelenskyy talks", 1, "bm25")[1].tolist() == [9]
    assert 1 not in mapped.search("Italy troops Ukraine", 7, "bm25")[1].tolist()


def test_corpus_stats_score_a_text_not_indexed_yet_as_a_process_mapping_the_file_will_once_it_follows_it(
        lexical, tmp_path):
    """What a write uses to tell which full boxes a new article could enter, before any process indexed it."""
    save_weights(tmp_path / "lexical.weights", lexical.live_counts(), seq=1)
    stats = CorpusStats.read(tmp_path / "lexical.weights")
    new = "Paris coalition meets again on Ukraine troops, Zelenskyy says"  # a word the file never had
    mapped, _ = LexicalIndex.map_weights(tmp_path / "lexical.weights")
    mapped.add([9], [new])
    for source in [*CORPUS.values(), "Zelenskyy and the coalition"]:
        want = float(mapped.scores_for(source, [9], "bm25")[0])
        assert stats.bm25(stats.terms(source), stats.terms(new)) == pytest.approx(want, abs=1e-5)
    assert stats.bm25(stats.terms(CORPUS[4]), stats.terms(new)) == 0.0  # no word in common


def test_a_mapped_index_is_never_saved_and_a_foreign_weights_file_is_refused(lexical, tmp_path, monkeypatch):
    save_weights(tmp_path / "lexical.weights", lexical.live_counts(), seq=1)
    mapped, _ = LexicalIndex.map_weights(tmp_path / "lexical.weights")
    with pytest.raises(TypeError, match="mapped"):
        mapped.save(tmp_path / "copy.npz", 2)
    with pytest.raises(TypeError, match="mapped"):
        mapped.live_counts()
    arrays, metadata = weights_file(lexical.live_counts(), seq=1)
    save_arrays(tmp_path / "damaged.weights", arrays | {"idf": arrays["idf"][:-1]}, metadata)
    with pytest.raises(ValueError, match="idf"):  # refused at once, not at a query
        LexicalIndex.map_weights(tmp_path / "damaged.weights")
    assert saved_weights_seq(tmp_path / "lexical.weights") == 1
    monkeypatch.setattr("recommender.lexical.WEIGHTS_FORMAT", 2)  # a file of an older layout: written again
    with pytest.raises(ValueError, match="format"):
        LexicalIndex.map_weights(tmp_path / "lexical.weights")
    assert saved_weights_seq(tmp_path / "lexical.weights") == -1
    monkeypatch.setattr("recommender.lexical.WEIGHTS_FORMAT", 1)
    monkeypatch.setattr("recommender.analysis.ANALYZER_VERSION", 99)
    with pytest.raises(ValueError, match="version"):
        LexicalIndex.map_weights(tmp_path / "lexical.weights")
    lexical.save(tmp_path / "lexical.counts", seq=1)
    with pytest.raises(ValueError):
        LexicalIndex.map_weights(tmp_path / "lexical.counts")


# Maps the weights of a 6 MB corpus, checks that they are views of the mapping (not copies that would hold every
# page too), and reads every TF-IDF column with one query of every word.
MAPPER = """
from pathlib import Path
import numpy as np
from recommender.lexical import LexicalIndex
index, _ = LexicalIndex.map_weights(Path(sys.argv[1]))
weights = index._weights
for array in (weights.tfidf.data, weights.tfidf.indices, weights.tfidf.indptr, weights.bm25.indices):
    base = array
    while not isinstance(base, np.memmap):
        base = base.base
        assert base is not None, "a copy, not the mapping"
index.search(" ".join(f"w{i}" for i in range(2000)), 10, "tfidf")
"""


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="reads Linux's /proc/PID/smaps")
def test_two_processes_mapping_one_weights_file_share_its_pages(tmp_path):
    rng = np.random.default_rng(1)
    texts = [" ".join(f"w{i}" for i in rng.choice(2000, 60, replace=False)) for _ in range(12_000)]
    index = LexicalIndex()
    index.build(list(range(len(texts))), texts)
    save_weights(tmp_path / "lexical.weights", index.live_counts(), seq=1)
    first, second = mapper(MAPPER, tmp_path / "lexical.weights"), mapper(MAPPER, tmp_path / "lexical.weights")
    rss, pss = rss_and_pss(second)
    rss_and_pss(first)
    assert rss > 4_000  # the TF-IDF weights (720k of them, 5.8 MB) are in the mapping...
    assert pss < 0.6 * rss  # ...and each process is charged about half of them


# k 1 and 5: the first partition holds them; 40: grown once; 500: every posting, more than the live rows. With the
# best rows deleted, the rows of the first partition are dead: it must grow on the live ones it lacks.
@pytest.mark.parametrize("k", [1, 5, 40, 500])
@pytest.mark.parametrize("best_deleted", [False, True])
def test_a_search_gives_the_best_distinct_live_rows_best_first_ties_to_the_lower_row(k, best_deleted):
    from recommender.lexical import _best_rows

    rng = np.random.default_rng(k)
    scores = rng.integers(0, 50, 400).astype(np.float32)  # few distinct values: many ties
    # A row once per query term it holds: the best rows are held by the most terms, as in a real query.
    postings = np.concatenate([np.flatnonzero(scores >= t) for t in range(0, 50, 2)]).astype(np.int32)
    rng.shuffle(postings)
    keys = np.where(rng.random(400) < 0.2, -1, np.arange(400))  # a fifth deleted
    if best_deleted:
        keys[scores >= 44] = -1
    live = [r for r in range(400) if keys[r] >= 0 and r in set(postings.tolist())]
    expected = sorted(live, key=lambda r: (-scores[r], r))[:k]
    assert _best_rows(postings, scores, keys, k).tolist() == expected
