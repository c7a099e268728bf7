"""Following the store: what a process's repair drops from its index, the published keys it keeps, and the files
and rows it reads through into the page cache."""

import logging
import threading

import numpy as np

from recommender.engine import Recommender
from recommender.following import KeySet
from tests.conftest import make_settings


def test_absent_keys_are_those_the_store_no_longer_publishes_whatever_their_order():
    published = KeySet(np.array([1, 3, 4], dtype=np.int64))
    assert sorted(published.absent(np.array([5, 1, 9, 3], dtype=np.int64)).tolist()) == [5, 9]
    assert published.absent(np.array([4, 1], dtype=np.int64)).tolist() == []
    nothing = KeySet(np.zeros(0, dtype=np.int64))
    assert nothing.absent(np.array([2], dtype=np.int64)).tolist() == [2]  # nothing published
    assert published.absent(np.zeros(0, dtype=np.int64)).tolist() == []


def test_the_published_keys_answer_as_a_set_of_them_would_as_they_grow_and_shrink():
    published = KeySet(np.array([1, 3, 4], dtype=np.int64))
    assert 3 in published and np.int64(4) in published and 2 not in published
    assert 99 not in published and -1 not in published and "3" not in published  # beyond the mask, or no key
    assert published.issuperset([1, 4]) and published.issuperset([]) and not published.issuperset([1, 2])
    published.update([2, 1_000])  # grows to hold the new key
    published.difference_update([4, 5_000])  # a key never held is no error
    assert [k for k in range(1_001) if k in published] == [1, 2, 3, 1_000]
    assert not any(k in KeySet(np.zeros(0, dtype=np.int64)) for k in range(3))


def test_reading_through_reads_the_mapped_files_and_no_row_where_the_rows_file_is_mapped_and_says_so(engine, caplog):
    engine.checkpoint()
    size = sum(path.stat().st_size for path in (engine.settings.index_path, engine.settings.lexical_weights_path,
                                                engine.settings.rows_path))
    with caplog.at_level(logging.INFO, logger="recommender"):
        engine.following.read_through(threading.Event())
    assert f"read {size / 1e6:.0f} MB of index files and 0 article rows" in caplog.text


def test_reading_through_reads_every_article_row_where_no_rows_file_is_mapped(engine, embedder, caplog):
    with Recommender(make_settings(engine.settings.data_dir, index_mmap=False), embedder) as unmapped, \
            caplog.at_level(logging.INFO, logger="recommender"):
        unmapped.following.read_through(threading.Event())
    assert f"MB of index files and {engine.store.count()} article rows" in caplog.text


def test_rows_warmed_are_not_read_through_again_and_a_stopped_read_through_stops_and_says_nothing(engine, caplog):
    engine.warm_rows()  # every row parsed already
    with caplog.at_level(logging.INFO, logger="recommender"):
        engine.following.read_through(threading.Event())
        assert "MB of index files and 0 article rows" in caplog.text
        caplog.clear()
        stopped = threading.Event()
        stopped.set()
        engine.following.read_through(stopped)
    assert "page cache" not in caplog.text


def test_a_failed_read_through_is_logged_and_not_raised(engine, caplog, monkeypatch):
    def unreadable(path, chunk: int = 0):
        raise OSError("the disk went away")

    monkeypatch.setattr("recommender.following.read_through", unreadable)
    engine.following.read_through(threading.Event())
    assert "reading the index files and article rows through failed" in caplog.text
    assert "the disk went away" in caplog.text


def test_warming_parses_every_published_row_when_the_table_holds_them_all_and_none_when_it_cannot(engine,
                                                                                                 monkeypatch):
    published = len(engine.store.published_keys())
    monkeypatch.setattr(engine.following, "settings", engine.settings.model_copy(update={"rows_cache_max": published - 1}))
    engine.warm_rows()
    assert len(engine.rows) == 0  # it would start over at the first miss: every row parsed for nothing
    monkeypatch.setattr(engine.following, "settings", engine.settings.model_copy(update={"rows_cache_max": published}))
    engine.warm_rows()
    assert len(engine.rows) == published
