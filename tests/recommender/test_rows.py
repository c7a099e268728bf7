"""The row table: the candidate rows a process keeps parsed, gathered column by column, dropped by writes."""

from collections.abc import Iterator

import numpy as np
import pytest

from recommender.candidates import text_hash, title_hash
from recommender.rowfile import open_rows_file
from recommender.rows import RowTable
from recommender.settings import Settings
from recommender.store.sqlite import SQLiteStore


@pytest.fixture
def store(data_dir) -> Iterator[SQLiteStore]:
    store = SQLiteStore(Settings(data_dir=data_dir).db_path)
    yield store
    store.close()


class CountingFetch:
    """``store.by_keys``, counting the keys it was asked for; ``during`` runs inside each fetch."""

    def __init__(self, store: SQLiteStore, during=None):
        self.store, self.during, self.asked = store, during, 0

    def __call__(self, keys):
        self.asked += len(keys)
        rows = self.store.by_keys(keys)
        if self.during is not None:
            self.during(keys)
        return rows


def keys_of(store: SQLiteStore, n: int) -> list[int]:
    return store.published_keys().tolist()[:n]


def test_rows_come_in_the_order_asked_with_the_stores_articles_vectors_and_facts(store):
    keys = keys_of(store, 50)[::-1] + [10**6]  # the last is in no store
    rows = RowTable(store.by_keys, 1000).gather(keys)
    stored = store.by_keys(keys)
    assert rows.keys.tolist() == keys[:-1]
    assert [a.id for a in rows.articles] == [stored[k][0].id for k in keys[:-1]]
    assert np.array_equal(rows.vectors, np.stack([stored[k][1] for k in keys[:-1]]))
    published = [stored[k][0].published_at for k in keys[:-1]]
    assert rows.facts.dated.tolist() == [p is not None for p in published]
    assert rows.facts.title_hashes.tolist() == [title_hash(a.title) for a in rows.articles]
    assert rows.facts.id_hashes.tolist() == [text_hash(a.id) for a in rows.articles]


def test_held_rows_are_not_read_again_and_a_dropped_row_is(store):
    fetch = CountingFetch(store)
    table = RowTable(fetch, 1000)
    keys = keys_of(store, 40)
    table.gather(keys)
    table.gather(keys[::2])
    assert fetch.asked == 40
    table.drop([keys[0], keys[1]])
    assert table.gather(keys).keys.tolist() == keys
    assert fetch.asked == 42


def test_rows_read_while_a_write_drops_rows_are_served_but_not_kept(store):
    keys = keys_of(store, 10)
    table = RowTable(store.by_keys, 1000)
    fetch = CountingFetch(store, during=lambda asked: table.drop([asked[0]]))
    table._fetch = fetch
    assert table.gather(keys).keys.tolist() == keys
    fetch.during = None
    table.gather(keys)
    assert fetch.asked == 20  # none of the first read was kept: it may predate the write


def test_a_full_table_starts_over_and_still_serves_every_row(store):
    keys = keys_of(store, 300)
    fetch = CountingFetch(store)
    table = RowTable(fetch, 100)
    for start in range(0, 300, 60):
        rows = table.gather(keys[start:start + 60])
        assert rows.keys.tolist() == keys[start:start + 60]
    assert len(table) <= 100
    rows = table.gather(keys)
    assert rows.keys.tolist() == keys
    stored = store.by_keys(keys)
    assert np.array_equal(rows.vectors, np.stack([stored[k][1] for k in keys]))


def test_rows_dropped_and_read_again_do_not_fill_the_table(store):
    keys = keys_of(store, 80)
    fetch = CountingFetch(store)
    table = RowTable(fetch, 100)
    table.gather(keys)
    for _ in range(5):  # 150 re-reads in all: the table would start over if their old slots were not reclaimed
        table.drop(keys[:30])
        assert table.gather(keys).keys.tolist() == keys
    assert fetch.asked == 80 + 5 * 30
    assert len(table) <= 100


def test_the_table_grows_past_its_first_allocation_and_keeps_what_it_held(store):
    keys = keys_of(store, 400)
    fetch = CountingFetch(store)
    table = RowTable(fetch, 10_000)
    for key in keys:  # one row at a time: every growth step, for rows and for keys
        table.gather([key])
    rows = table.gather(keys)
    assert fetch.asked == 400 and rows.keys.tolist() == keys
    stored = store.by_keys(keys)
    assert [a.id for a in rows.articles] == [stored[k][0].id for k in keys]
    assert np.array_equal(rows.vectors, np.stack([stored[k][1] for k in keys]))


def test_with_a_rows_file_the_articles_of_its_rows_are_read_and_kept_alone(engine):
    store = engine.store
    keys = keys_of(store, 30)
    fetch = CountingFetch(store)
    articles_only: list[int] = []

    def fetch_articles(asked: list[int]) -> dict:
        articles_only.extend(asked)
        return store.articles_by_keys(asked)

    table = RowTable(fetch, 1000, fetch_articles)
    table.use_file(open_rows_file(engine.settings.rows_path), np.array([keys[-1]]))  # written since the file
    read = table.articles(keys)
    assert [read[k].id for k in keys] == [store.by_keys(keys)[k][0].id for k in keys]
    assert sorted(articles_only) == sorted(keys[:-1]) and fetch.asked == 1  # no vector read but the changed one's
    table.articles(keys)
    assert len(articles_only) == 29 and fetch.asked == 1  # kept
    table.drop([keys[0]])  # a write: its article kept alone is discarded
    table.use_file(open_rows_file(engine.settings.rows_path), np.array([keys[-1]]))  # a checkpoint holds it again
    assert table.articles(keys)[keys[0]].id == read[keys[0]].id
    assert articles_only[29:] == [keys[0]] and fetch.asked == 1  # read again, alone
    table.drop([keys[1]])  # a write after that checkpoint: its row is read whole from the store from now on
    assert table.articles(keys)[keys[1]].id == read[keys[1]].id
    assert len(articles_only) == 30 and fetch.asked == 2
