"""The rows file: every published article's vector and ranking facts by key, written by the process that saves the
index, read by every process where it is current, and the store read for what was written since."""

from dataclasses import replace
from itertools import islice

import numpy as np
import pytest

from recommender.article import Article
from recommender.candidates import FACT_COLUMNS, ArticlesByKey, RowGone, facts_of, title_hash
from recommender.engine import Recommender
from recommender.rank import SimilarQuery
from recommender.rowfile import RowsFile, open_rows_file, rows_file_seq, write_rows_file
from tests.conftest import make_settings


def _articles(engine: Recommender):
    for _, article in engine.store.articles():
        if article.is_published:
            yield article


def every_record(rows: RowsFile) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    vectors, facts = rows.read(np.arange(rows.size))
    return vectors, {name: getattr(facts, name) for name in FACT_COLUMNS}


def test_the_rows_file_holds_every_published_article_as_the_store_does_and_nothing_else(engine):
    rows = open_rows_file(engine.settings.rows_path)  # written when the data dir was ingested
    keys = engine.store.published_keys()
    stored = engine.store.by_keys(keys.tolist())
    assert rows.seq == engine.store.seq and rows.model == engine.index.model and rows.size > keys.max()
    vectors, facts = rows.read(keys)
    assert np.array_equal(vectors, np.stack([stored[k][1] for k in keys.tolist()]))
    expected = facts_of([stored[k][0] for k in keys.tolist()])
    for name in FACT_COLUMNS:
        assert np.array_equal(getattr(facts, name), getattr(expected, name)), name
    others = np.setdiff1d(np.arange(rows.size), keys)
    assert not rows.read(others)[1].published.any() and not rows.read(others)[0].any()


@pytest.mark.parametrize("kernel_copy", [True, False])  # copy_file_range, or through the process where it fails
def test_a_rows_file_written_from_the_last_one_equals_one_written_from_the_whole_store(engine, tmp_path, monkeypatch,
                                                                                        kernel_copy):
    if not kernel_copy:
        def unsupported(*args):
            raise OSError(18, "Invalid cross-device link")

        monkeypatch.setattr("os.copy_file_range", unsupported)
    first, second, third = islice(_articles(engine), 3)
    engine.upsert([replace(first, title="A title written after the rows file"),
                   replace(second, status="unpublished")])
    engine.delete(third.id)
    engine.upsert([replace(first, id="new-after-the-file", title="A new article")])
    path, scratch = engine.settings.rows_path, tmp_path / "scratch.rows"
    model, dim = engine.index.model, engine.index.dim
    write_rows_file(path, engine.store, engine.store.seq, model, dim)  # from the last file, and what changed
    write_rows_file(scratch, engine.store, engine.store.seq, model, dim)  # from every row
    updated, whole = open_rows_file(path), open_rows_file(scratch)
    assert updated.seq == whole.seq == engine.store.seq and updated.size == whole.size
    assert path.read_bytes() == scratch.read_bytes()
    keys = engine.store.keys_of([first.id, second.id, "new-after-the-file"])
    _, facts = updated.read(np.array([keys[first.id], keys["new-after-the-file"], keys[second.id]]))
    assert facts.published.tolist() == [True, True, False]  # the second unpublished
    assert facts.title_hashes[0] == title_hash("A title written after the rows file")
    assert int(every_record(updated)[1]["published"].sum()) == len(engine.store.published_keys())


def test_lists_ranked_from_the_rows_file_are_those_ranked_from_the_stores_rows(engine, embedder):
    assert engine.rows.reads_file
    ids = [a.id for a in islice(_articles(engine), 12)]
    query = SimilarQuery(limit=8, explain=True)
    from_file = {i: engine.similar(i, query) for i in ids}
    with Recommender(make_settings(engine.settings.data_dir, index_mmap=False), embedder) as from_store:
        assert not from_store.rows.reads_file
        for i in ids:
            assert from_store.similar(i, query) == from_file[i]


def test_an_article_written_after_the_rows_file_is_read_from_the_store(engine):
    article = next(_articles(engine))
    engine.upsert([replace(article, title="Retitled after the rows file")])
    key = engine.store.keys_of([article.id])[article.id]
    assert rows_file_seq(engine.settings.rows_path) < engine.store.seq  # the file is older than the write
    rows = engine.rows.gather([key])
    assert rows.articles[0].title == "Retitled after the rows file"
    assert rows.facts.title_hashes.tolist() == [title_hash("Retitled after the rows file")]
    engine.delete(article.id)
    assert engine.rows.gather([key]).keys.tolist() == []


def test_a_process_reads_a_newer_rows_file_and_the_store_for_what_came_after_it(engine):
    first = rows_file_seq(engine.settings.rows_path)
    article = next(_articles(engine))
    engine.upsert([replace(article, title="Written between two rows files")])
    write_rows_file(engine.settings.rows_path, engine.store, engine.store.seq, engine.index.model, engine.index.dim)
    engine.following.map_newer_checkpoint()
    assert rows_file_seq(engine.settings.rows_path) > first
    key = engine.store.keys_of([article.id])[article.id]
    assert engine.rows.gather([key]).articles[0].title == "Written between two rows files"
    engine.upsert([replace(article, title="Written after the second")])
    assert engine.rows.gather([key]).articles[0].title == "Written after the second"


def test_a_file_open_when_the_next_one_replaces_it_keeps_reading_the_one_it_opened(engine):
    path = engine.settings.rows_path
    before = open_rows_file(path)
    vectors, _ = every_record(before)
    engine.upsert([replace(next(_articles(engine)), id="written-after", title="Written after the first file")])
    write_rows_file(path, engine.store, engine.store.seq, engine.index.model, engine.index.dim)
    assert np.array_equal(every_record(before)[0], vectors)  # the file opened before, read whole as it was
    assert open_rows_file(path).size == before.size + 1


def test_a_mapped_rows_file_reads_each_record_as_a_system_call_does_and_keeps_the_file_it_mapped(engine):
    path = engine.settings.rows_path
    by_call, mapped = open_rows_file(path), open_rows_file(path).mapped()
    assert by_call.records is None and mapped.records is not None
    keys = np.arange(by_call.size)[::-1]  # any order, as a list's candidates come
    (vectors, facts), (mapped_vectors, mapped_facts) = by_call.read(keys), mapped.read(keys)
    assert np.array_equal(vectors, mapped_vectors)
    assert all(np.array_equal(getattr(facts, name), getattr(mapped_facts, name)) for name in FACT_COLUMNS)
    engine.upsert([replace(next(_articles(engine)), id="written-after", title="Written after the mapping")])
    write_rows_file(path, engine.store, engine.store.seq, engine.index.model, engine.index.dim)
    assert np.array_equal(every_record(mapped)[0], every_record(by_call)[0])  # the replaced file, as it was


def test_lists_ranked_from_the_mapped_rows_file_are_those_ranked_from_its_reads(engine):
    ids = [a.id for a in islice(_articles(engine), 12)]
    query = SimilarQuery(limit=8, explain=True)
    by_call = {i: engine.similar(i, query) for i in ids}
    engine.rows.map_file()
    assert engine.rows.maps_file
    assert {i: engine.similar(i, query) for i in ids} == by_call


def test_articles_read_by_key_are_parsed_once_and_a_lost_one_says_so():
    calls: list[list[int]] = []

    def load(keys: list[int]) -> dict[int, Article]:
        calls.append(list(keys))
        return {k: Article(id=str(k), title=f"article {k}") for k in keys if k != 3}

    articles = ArticlesByKey(np.array([1, 2, 3]), {2: Article(id="2", title="kept")}, load)
    assert articles[0].title == "article 1" and articles[1].title == "kept" and calls == [[1]]
    assert articles[0].title == "article 1" and calls == [[1]]
    with pytest.raises(RowGone):
        articles[2]


def test_a_rows_file_of_another_layout_is_not_read(engine):
    path = engine.settings.rows_path
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    assert rows_file_seq(path) == -1
    with pytest.raises(ValueError, match="unreadable|not an array file"):
        open_rows_file(path)


def test_a_rows_file_of_another_store_is_neither_read_nor_copied_into_the_next(engine, monkeypatch, caplog):
    path, ours = engine.settings.rows_path, engine.store.id
    assert rows_file_seq(path, ours) == open_rows_file(path, ours).seq == engine.store.seq
    assert rows_file_seq(path, "another-store") == -1
    with pytest.raises(ValueError, match="derived from another store"):
        open_rows_file(path, "another-store")
    monkeypatch.setattr(engine.store, "id", "another-store")
    with caplog.at_level("INFO", logger="recommender"):
        write_rows_file(path, engine.store, engine.store.seq, engine.index.model, engine.index.dim)
    assert "every row read from the store" in caplog.text
    assert open_rows_file(path, "another-store").seq == engine.store.seq


def test_a_rows_file_that_cannot_be_written_is_logged_and_the_checkpoint_still_saves(data_dir, embedder, monkeypatch,
                                                                                      caplog):
    def full_disk(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("recommender.following.write_rows_file", full_disk)
    with Recommender(make_settings(data_dir, lexical_weights_interval_s=0), embedder) as engine:
        article = next(_articles(engine))
        engine.upsert([replace(article, title="Written before a failed rows file")])
        assert engine.checkpoint()  # the index saved all the same
        assert "writing the rows file failed" in caplog.text and "No space left" in caplog.text
        assert rows_file_seq(engine.settings.rows_path) < engine.store.seq
        key = engine.store.keys_of([article.id])[article.id]
        assert engine.rows.gather([key]).articles[0].title == "Written before a failed rows file"
