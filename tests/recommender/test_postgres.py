"""What only the PostgreSQL backend does: a SQLite data dir migrated into it serves the same lists, writes from
several processes get sequence numbers in commit order, and the refresher's advisory lock has one holder that
PostgreSQL replaces when its connection dies."""

import threading
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import psycopg
import pytest

from recommender.article import Article
from recommender.engine import Recommender
from recommender.locks import refresher_lock
from recommender.migrate import migrate
from recommender.refresher import refresh_queued
from recommender.store.postgres import TABLES, AdvisoryLock, PostgresStore
from recommender.store.sqlite import SQLiteStore
from tests.conftest import make_settings, on_postgres

SOURCE = "N34700"


def test_a_migrated_store_answers_the_same_lists_with_nothing_recomputed(data_dir, database_url, embedder):
    with Recommender(make_settings(data_dir), embedder=embedder) as engine:
        before = {a: engine.similar(a) for a in (SOURCE, "N16278", "N35354")}
        boxes = {a: engine.stored_list_json(a, 8) for a in before}
        seq, count, store_id = engine.store.seq, engine.store.count(), engine.store.id
    with Recommender(on_postgres(data_dir, database_url), embedder=embedder) as engine:
        assert engine.store.seq == seq and engine.store.count() == count and engine.store.queue_length() == 0
        assert engine.store.id == store_id  # the data dir's files, which record it, are read, not rebuilt
        for article_id, items in before.items():
            assert [(r.id, r.score) for r in engine.similar(article_id)] == [(r.id, r.score) for r in items]
            assert engine.stored_list_json(article_id, 8) == boxes[article_id] is not None


def test_keys_are_never_reused_after_a_migration(data_dir, database_url, embedder):
    with Recommender(make_settings(data_dir), embedder=embedder) as engine:
        highest, last = max(engine.store.articles())
        engine.delete(last.id)  # the highest key is gone from articles, not from the keys ever given
    with Recommender(on_postgres(data_dir, database_url), embedder=embedder) as engine:
        [key] = engine.store.upsert([(Article("new-one", "A new article"), "h",
                                      np.ones(embedder.dim, dtype=np.float32))])
        assert key > highest


def test_migrate_refuses_a_database_that_holds_a_store(data_dir, database_url):
    migrate(data_dir / "articles.sqlite3", database_url)
    with pytest.raises(ValueError, match="already holds a store"):
        migrate(data_dir / "articles.sqlite3", database_url)


def test_migrate_names_a_missing_data_dir(tmp_path, database_url):
    with pytest.raises(FileNotFoundError, match="no SQLite store"):
        migrate(tmp_path / "nothing" / "articles.sqlite3", database_url)


def test_concurrent_writers_get_sequence_numbers_in_commit_order(database_url):
    """Two processes' stores writing at once: every write gets its own number and a follower that read the head
    has every write up to it (a number taken by a transaction that commits later would be skipped)."""
    stores = [PostgresStore(database_url) for _ in range(2)]
    seen: list[int] = []
    stop = threading.Event()

    def follow() -> None:  # a follower as engine.follow reads: the head, then everything after the last head
        applied, store = 0, PostgresStore(database_url)
        while not stop.is_set():
            head = store.seq
            seen.extend(c.key for c in store.changes_since(applied))
            applied = head
        seen.extend(c.key for c in store.changes_since(applied))
        store.close()

    def write(store: PostgresStore, prefix: str) -> None:
        for i in range(40):
            store.upsert([(Article(f"{prefix}{i}", "t"), "h", np.ones(4, dtype=np.float32))])

    follower = threading.Thread(target=follow)
    follower.start()
    writers = [threading.Thread(target=write, args=(s, p)) for s, p in zip(stores, "ab", strict=True)]
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    follower.join()
    assert stores[0].seq == 80
    assert sorted(c.key for c in stores[0].changes_since(0)) == sorted(set(seen))
    for s in stores:
        s.close()


def test_the_refresher_lock_has_one_holder_and_is_taken_over_when_its_connection_dies(database_url):
    one, two = AdvisoryLock(database_url), AdvisoryLock(database_url)
    assert one.try_exclusive() and one.try_exclusive()
    assert not two.try_exclusive()
    with psycopg.connect(database_url, autocommit=True) as admin:  # the holder's session dies (crash, network)
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted")
    assert not one.try_exclusive()  # it finds out on its next check
    assert two.try_exclusive()
    two.release()
    assert one.try_exclusive()
    one.release()


def test_an_import_that_loses_the_refresher_lock_queues_the_boxes_its_chunk_may_enter(tmp_path, database_url,
                                                                                     embedder, mind_articles):
    """An import holding the refresher lock while no box is stored skips the neighbour search. PostgreSQL drops
    the lock with the import's session, and another replica's refresher may then store a box the next chunk
    enters: found once that chunk is written, and its neighbours' boxes queued."""
    settings = make_settings(tmp_path, database_url=database_url, ingest_chunk=40)
    with Recommender(settings, embedder=embedder) as engine:
        holders: list[int] = []

        def articles() -> Iterator[Article]:
            yield from mind_articles[:40]  # the first chunk: written with the lock held
            with psycopg.connect(database_url, autocommit=True) as admin:  # the import's session dies
                admin.execute("SELECT pg_terminate_backend(pid, 5000) FROM pg_locks "
                              "WHERE locktype = 'advisory' AND granted")  # waits for it to end
            other = refresher_lock(settings)  # another replica's refresher takes over, and stores every box
            assert other.try_exclusive()
            refresh_queued(engine)
            other.release()
            shown = max(mind_articles[:40], key=lambda a: len(engine.store.holders(engine.store.get(a.id).key)))
            holders.extend(engine.store.holders(engine.store.get(shown.id).key))
            yield replace(shown, id="a-copy", title=shown.title + " (updated)")  # it may fold under the one shown
            yield from mind_articles[40:80]

        lock = refresher_lock(settings)
        assert lock.try_exclusive()
        engine.upsert(articles(), refresher=lock)
        assert holders and set(holders) <= set(engine.store.queued(1000))  # stored before the copy: queued again
        lock.release()


def test_both_backends_hold_the_same_tables_and_columns(tmp_path, database_url):
    """The two schemas are kept in step (a column added to one must be added to the other)."""
    sqlite, pg = SQLiteStore(tmp_path / "a.sqlite3"), PostgresStore(database_url)
    # The SQLite full-text index is a table of tables (FTS5); PostgreSQL's is an index on articles.
    tables = [r[0] for r in sqlite.read("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE "
                                        "'sqlite_%' AND name NOT LIKE 'articles_words%' ORDER BY name")]
    assert sorted(TABLES) == tables  # and migrate copies every one
    for table in tables:
        sqlite_columns = [r[1] for r in sqlite.read(f"PRAGMA table_info({table})")]
        pg_columns = [r[0] for r in pg.read("SELECT column_name FROM information_schema.columns WHERE table_name = "
                                            "? ORDER BY ordinal_position", (table,))]
        assert pg_columns == sqlite_columns, table
    sqlite.close()
    pg.close()


def test_a_kept_box_is_served_until_a_followed_write_changes_it(database_url):
    """A replica keeps the boxes it read: another replica's takedown reaches it when it follows the sequence."""
    mine, theirs = PostgresStore(database_url), PostgresStore(database_url)
    [a, b] = theirs.upsert([(Article("a", "one"), "h", np.ones(4, dtype=np.float32)),
                            (Article("b", "two"), "h", np.ones(4, dtype=np.float32))])
    theirs.write_boxes([(a, "a", [(b, "b", "{}", [])], None)], theirs.seq)
    applied = mine.seq
    assert mine.box("a") == theirs.box("a") and not mine.box("a").pending
    theirs.delete("b")
    assert not mine.box("a").pending  # kept: no round trip until this process follows
    mine.followed(applied, mine.seq)
    assert mine.box("a").pending
    mine.close()
    theirs.close()


def test_a_lost_connection_is_replaced_without_an_error(database_url):
    """After a database restart every idle connection is dead: the next statement runs on a new one."""
    store = PostgresStore(database_url)
    store.upsert([(Article("a", "one"), "h", np.ones(4, dtype=np.float32))])
    with psycopg.connect(database_url, autocommit=True) as admin:  # every session of the store cut
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                      "AND datname = current_database()")
    assert store.get("a").article.title == "one"
    store.upsert([(Article("b", "two"), "h", np.ones(4, dtype=np.float32))])
    assert store.count() == 2
    store.close()


def test_recommender_migrate_moves_a_data_dir_and_says_what_it_copied(data_dir, database_url, capsys):
    from recommender.cli import main

    assert main(["migrate", "--from", str(data_dir), "--to", database_url]) == 0
    assert "400 articles" in capsys.readouterr().out
    store = PostgresStore(database_url)
    assert store.count() == 400
    store.close()
    with pytest.raises(SystemExit, match="already holds a store"):
        main(["migrate", "--from", str(data_dir), "--to", database_url])
