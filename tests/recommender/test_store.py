"""The store's contract, on both backends (SQLite in a file, PostgreSQL on a real server): upserts are
idempotent, keys are stable, deletes are final, the sequence tracks writes."""

import json
import sqlite3
from dataclasses import replace
from datetime import UTC

import numpy as np
import psycopg
import pytest

from recommender.article import Article
from recommender.store.boxes import StoredBox, box_text, stored_box
from recommender.store.postgres import PostgresStore
from recommender.store.sqlite import SQLiteStore
from tests.conftest import another


def vec(i: int) -> np.ndarray:
    v = np.zeros(4, dtype=np.float32)
    v[i % 4] = 1
    return v


def test_sqlite_database_runs_in_wal_mode(tmp_path):
    store = SQLiteStore(tmp_path / "a.sqlite3")
    assert store._writer.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()


def test_sqlite_commits_wait_for_the_disk_unless_relaxed_for_a_refresher(tmp_path):
    store = SQLiteStore(tmp_path / "a.sqlite3")
    synchronous = "PRAGMA synchronous"  # 2 = FULL (an acknowledged write survives power loss), 1 = NORMAL
    assert store._writer.execute(synchronous).fetchone()[0] == 2 == store._reader.execute(synchronous).fetchone()[0]
    store.relax_commits()
    assert store._writer.execute(synchronous).fetchone()[0] == 1
    store.close()


def test_a_store_keeps_the_id_it_got_at_its_first_open_and_another_store_has_another(store, tmp_path):
    again = another(store)
    assert len(store.id) == 32 and again.id == store.id
    again.close()
    other = SQLiteStore(tmp_path / "other.sqlite3")
    assert other.id != store.id
    other.close()


def test_upsert_round_trips_every_field(store):
    from datetime import datetime

    article = Article("a1", "Title", "Lead", "Body", "https://x/1", datetime(2024, 1, 2, 3, 4, tzinfo=UTC),
                      "world", ("ukraine", "italy"), "en", "https://x/1.jpg", "published", "Getty Images")
    store.upsert([(article, "h1", vec(1))])
    got = store.get("a1")
    assert got.article == article
    assert got.content_hash == "h1"
    assert np.array_equal(got.vector, vec(1))


def test_upsert_of_a_known_id_keeps_its_key_and_bumps_the_sequence(store):
    [k1] = store.upsert([(Article("a", "one"), "h1", vec(0))])
    seq = store.seq
    [k2] = store.upsert([(Article("a", "two"), "h2", vec(1))])
    assert k1 == k2 and store.seq == seq + 1
    assert store.get("a").article.title == "two"
    assert store.count() == 1


def test_changes_since_lists_only_later_writes(store):
    store.upsert([(Article("a", "one"), "h", vec(0))])
    seq = store.seq
    store.upsert([(Article("b", "two", status="unpublished"), "h", vec(1))])
    changes = list(store.changes_since(seq))
    assert [(c.key, c.published) for c in changes] == [(store.get("b").key, False)]


def test_delete_is_final_and_keys_are_never_reused(store):
    [k1] = store.upsert([(Article("a", "one"), "h", vec(0))])
    assert store.delete("a") == k1
    assert store.get("a") is None and store.delete("a") is None
    [k2] = store.upsert([(Article("a", "again"), "h", vec(0))])
    assert k2 != k1  # a stale index entry for k1 can never point at the new article


def test_failed_transaction_leaves_previous_state(store):
    store.upsert([(Article("a", "one"), "h", vec(0))])
    seq = store.seq
    broken = replace(Article("c", "x"), title=None)  # type: ignore[arg-type]  # NOT NULL fails mid-transaction
    with pytest.raises((sqlite3.IntegrityError, psycopg.IntegrityError)):
        store.upsert([(Article("b", "two"), "h", vec(0)), (broken, "h", vec(0))])
    assert store.get("b") is None and store.seq == seq


def test_published_keys_leave_out_unpublished(store):
    assert store.published_keys().dtype == np.int64 and not len(store.published_keys())
    store.upsert([(Article("a", "one"), "h", vec(0)), (Article("b", "two", status="unpublished"), "h", vec(1))])
    assert store.published_keys().tolist() == [store.get("a").key]
    store.upsert([(Article(f"c{i}", f"three {i}"), "h", vec(i)) for i in range(1200)])
    keys = store.published_keys()
    assert keys.dtype == np.int64 and sorted(keys.tolist()) == sorted(store.get(a).key for a in
                                                                       ["a", *(f"c{i}" for i in range(1200))])
    assert len(store.published_keys(limit=10)) == 10 and set(store.published_keys(limit=10)) <= set(keys.tolist())


def test_vectors_by_keys_reads_the_vectors_of_known_keys_only(store):
    keys = store.upsert([(Article(f"a{i}", f"title {i}"), "h", vec(i)) for i in range(3)])
    got = store.vectors_by_keys([keys[2], keys[0], 999])
    assert set(got) == {keys[0], keys[2]}
    assert np.array_equal(got[keys[2]], vec(2)) and np.array_equal(got[keys[0]], vec(0))
    assert store.vectors_by_keys([]) == {}


def test_reads_by_more_keys_than_a_statement_may_hold_answer_each_key_once(store):
    # 70,000 keys: over SQLite's 32,766 variables per statement and PostgreSQL's 65,535.
    keys = store.upsert([(Article(f"a{i}", f"title {i}"), "h", vec(i)) for i in range(3)])
    many = [*keys * 20_000, *range(10_000, 20_000)]
    assert set(store.vectors_by_keys(many)) == set(keys)
    assert set(store.by_keys(many)) == set(keys)
    assert set(store.floors(many)) == set()
    assert store.keys_of([f"a{i}" for i in range(70_000)]) == {f"a{i}": keys[i] for i in range(3)}


def test_delete_advances_the_sequence_and_leaves_a_tombstone_followers_see(store):
    [key] = store.upsert([(Article("a", "one"), "h", vec(0))])
    seq = store.seq
    store.delete("a")
    assert store.seq == seq + 1
    assert [(c.key, c.published, c.vector) for c in store.changes_since(seq)] == [(key, False, None)]
    assert list(store.changes_since(store.seq)) == []


def test_a_write_queues_its_own_box_and_the_boxes_holding_it_in_its_transaction(store):
    [a, b] = store.upsert([(Article("a", "one"), "h", vec(0)), (Article("b", "two"), "h", vec(1))])
    assert store.queue_length() == 2 and not store.any_box_stored()  # until one is stored, every box is queued
    store.write_boxes([(a, "a", [(b, "b", "{}", [])], None), (b, "b", [], None)], store.seq)
    assert store.queue_length() == 0 and store.holders(b) == [a] and store.any_box_stored()
    store.upsert([(Article("b", "two, updated"), "h2", vec(1))])
    assert sorted(store.queued(10)) == sorted([a, b])
    assert store.box("a").pending


def test_processes_sharing_the_queue_each_take_the_keys_of_their_share_and_together_all(store):
    store.enqueue(range(1, 8))
    shares = [store.queued(10, (i, 3)) for i in range(3)]
    assert shares == [[3, 6], [1, 4, 7], [2, 5]]
    assert sorted(sum(shares, [])) == store.queued(10) == list(range(1, 8))


def test_a_box_refreshed_before_a_later_write_stays_queued(store):
    [a] = store.upsert([(Article("a", "one"), "h", vec(0))])
    computed_at = store.seq
    store.upsert([(Article("a", "one, again"), "h2", vec(0))])  # queued again meanwhile
    store.write_boxes([(a, "a", [], None)], computed_at)
    assert store.queued(10) == [a]


def test_a_box_computed_before_the_one_stored_replaces_neither_it_nor_its_members(store):
    # A refresher that lost its lock while it ranked (on PostgreSQL: its session dropped) stores its batch after
    # the one that took over stored later boxes.
    [a, b, c] = store.upsert([(Article(x, x), "h", vec(i)) for i, x in enumerate("abc")])
    early = store.seq
    store.upsert([(Article("c", "c, now the story's latest"), "h2", vec(2))])
    store.write_boxes([(a, "a", [(c, "c", '{"id":"c"}', [])], None)], store.seq)  # the new holder, up to date
    store.write_boxes([(a, "a", [(b, "b", '{"id":"b"}', [])], None)], early)  # the old one, late
    assert [item[1] for item in store.box("a").items()] == ["c"]
    assert store.holders(c) == [a] and store.holders(b) == []
    store.upsert([(Article("a", "a, again"), "h2", vec(0))])  # queued again: the next box replaces it
    store.write_boxes([(a, "a", [(b, "b", '{"id":"b"}', [])], None)], store.seq)
    assert [item[1] for item in store.box("a").items()] == ["b"] and store.holders(b) == [a]


def test_a_stored_box_says_when_it_was_computed_and_whether_a_refresh_is_queued(store):
    from datetime import datetime

    [a, b] = store.upsert([(Article(x, x), "h", vec(i)) for i, x in enumerate("ab")])
    assert store.box_state("a") is None  # queued by its write, never stored
    before = datetime.now(UTC).replace(microsecond=0)  # the store keeps milliseconds
    store.write_boxes([(a, "a", [(b, "b", "{}", [])], None)], store.seq)
    state = store.box_state("a")
    assert state is not None and state.items == 1 and not state.queued
    assert before <= state.computed_at <= datetime.now(UTC)
    store.upsert([(Article("b", "b, again"), "h2", vec(1))])  # an item of the box changes: queued
    assert store.box_state("a").queued


def test_a_stored_box_reads_back_its_items_in_order_compressed_where_the_database_does_not_compress(store):
    keys = store.upsert([(Article(f"n{i}", f"news {i}"), "h", vec(i)) for i in range(30)])
    items = [(k, f"n{i}", json.dumps({"id": f"n{i}", "title": f"Ещё новость {i} ✓ " * 20}, ensure_ascii=False),
              [keys[i - 1]] if i % 7 == 0 else []) for i, k in enumerate(keys[1:], start=1)]
    store.write_boxes([(keys[0], "n0", items, None)], store.seq)
    assert list(store.box("n0").items()) == items
    assert store.box_state("n0").items == len(items)
    [[stored]] = store.read("SELECT items FROM boxes WHERE article_id = 'n0'")
    text = stored_box(items, compress=False)
    # SQLite compresses nothing itself; PostgreSQL compresses a long text on its own (TOAST).
    assert stored == text if isinstance(store, PostgresStore) else len(stored) < len(text.encode()) / 5


def test_boxes_stored_as_text_before_compression_read_the_same_before_and_after_they_are_compressed(store):
    [a, b, c] = store.upsert([(Article(x, x), "h", vec(i)) for i, x in enumerate("abc")])
    items = {a: [(b, "b", '{"id":"b"}', [])], b: [(c, "c", '{"id":"c"}', [a])]}
    store.write_boxes([(key, article_id, items[key], None) for key, article_id in ((a, "a"), (b, "b"))], store.seq)
    with store.transaction() as conn:  # as code before compression stored them
        conn.executemany("UPDATE boxes SET items = ? WHERE key = ?",
                         [(stored_box(its, compress=False), key) for key, its in items.items()])
    seq, queued = store.seq, store.queued(10)
    assert list(store.box("a").items()) == items[a] and store.box_state("b").items == 1
    assert store.compress_stored_boxes(chunk=1) == (2 if store.COMPRESSED_BOXES else 0)
    assert store.compress_stored_boxes() == 0  # each box once
    assert [list(store.box(x).items()) for x in "ab"] == [items[a], items[b]]
    assert store.seq == seq and store.queued(10) == queued  # the same content: not a write followers must see


def test_a_compressed_box_reads_back_as_it_was_written_and_one_cut_short_says_what_to_do():
    items = [(i, f"n{i}", json.dumps({"id": f"n{i}", "excerpt": "слово " * 100}, ensure_ascii=False), [i + 1])
             for i in range(20)]
    stored = stored_box(items, compress=True)
    assert list(StoredBox(stored, pending=False).items()) == items
    assert box_text(stored) == stored_box(items, compress=False)
    with pytest.raises(ValueError, match="cannot be read.*queue it for a refresh"):
        list(StoredBox(stored[:-6], pending=False).items())


def test_a_report_folded_into_an_item_is_a_member_of_the_box_its_takedown_queues(store):
    [a, b, c] = store.upsert([(Article(x, x), "h", vec(i)) for i, x in enumerate("abc")])
    store.write_boxes([(a, "a", [(b, "b", "{}", [c])], None)], store.seq)
    assert store.holders(c) == [a] and not store.box("a").pending
    store.delete("c")
    assert store.box("a").pending


def test_a_store_made_before_image_credit_gains_the_column_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:  # the articles table as older code created it
        conn.execute("""CREATE TABLE articles (key INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
            title TEXT NOT NULL, lead TEXT NOT NULL DEFAULT '', body TEXT NOT NULL DEFAULT '', url TEXT,
            published_at TEXT, section TEXT, tags TEXT NOT NULL DEFAULT '[]', language TEXT, image_url TEXT,
            status TEXT NOT NULL, content_hash TEXT NOT NULL, vector BLOB NOT NULL, seq INTEGER NOT NULL)""")
        conn.execute("INSERT INTO articles (id, title, status, content_hash, vector, seq) VALUES "
                     "('old', 'Old', 'published', 'h', ?, 1)", (vec(0).tobytes(),))
    store = SQLiteStore(path)
    assert store.get("old").article.image_credit is None
    store.upsert([(Article("new", "New", image_credit="EPA"), "h2", vec(1))])
    assert store.get("new").article.image_credit == "EPA"
    store.close()
    SQLiteStore(path).close()  # opened again: nothing left to add


def test_boxes_of_another_format_are_queued_once(store):
    keys = store.upsert([(Article("a", "A"), "h", vec(0)), (Article("b", "B"), "h", vec(1))])
    store.write_boxes([(keys[0], "a", [(keys[1], "b", "{}", [])], None)], store.seq)
    assert store.queue_length() == 1  # b's own box is still queued
    assert store.requeue_boxes_of_other_format("items-v2") == 1
    assert store.box("a").pending
    assert store.requeue_boxes_of_other_format("items-v2") == 0  # the format is recorded with the queueing


def test_find_matches_every_word_anywhere_in_id_title_lead_or_url_in_any_case(store):
    from datetime import datetime

    def article(id_: str, title: str, lead: str = "", url: str | None = None, day: int = 1, **kw) -> Article:
        return Article(id_, title, lead, "", url, datetime(2024, 1, day, tzinfo=UTC), **kw)

    store.upsert([(a, "h", vec(i)) for i, a in enumerate([
        article("Kyiv-1", "Київ відкрив нові станції метро", "Мерія назвала дату запуску", day=1),
        article("Rome-2", "Rome mayor opens the new metro line", "The line runs under the Colosseum",
                "https://news.example.com/2024/rome-metro-line", day=2),
        article("Rome-3", "A new stadium for Rome", "Opens next year", day=3),
        article("Draft-4", "Rome metro strike called off", status="unpublished", day=4)])])

    def found(text: str, include_unpublished: bool = True) -> list[str]:
        return [a.id for a in store.find(text, 10, include_unpublished)]

    assert found("mayor metro") == ["Rome-2"]  # two words of the title, not side by side
    assert found("Colosseum") == ["Rome-2"]  # a word of the lead
    assert found("https://news.example.com/2024/rome-metro-line") == ["Rome-2"]  # the URL
    assert found("rome-2") == ["Rome-2"]  # the id, another case
    assert found("Rome-3") == ["Rome-3"]  # the id exactly comes first, then any other match
    assert found("rome metro") == ["Draft-4", "Rome-2"]  # newest first
    assert found("rome metro", include_unpublished=False) == ["Rome-2"]
    assert found("станції київ") == ["Kyiv-1"]  # Cyrillic, in any order
    assert found("stad") == ["Rome-3"]  # each word as a prefix
    assert found("rome paris") == []  # every word must match

    store.upsert([(article("Rome-3", "A new stadium for Milan"), "h", vec(3))])
    store.delete("Rome-2")
    # The index follows every write.
    assert found("colosseum") == [] and found("rome metro") == ["Draft-4"] and found("milan stadium") == ["Rome-3"]


def test_a_store_made_before_its_search_index_gains_one_holding_its_articles(tmp_path):
    path = tmp_path / "a.sqlite3"
    SQLiteStore(path).upsert([(Article("old-1", "Harbour bridge reopens"), "h", vec(0))])
    with sqlite3.connect(path) as conn:  # as an older version left it
        conn.executescript("DROP TRIGGER articles_words_insert; DROP TRIGGER articles_words_delete; "
                           "DROP TRIGGER articles_words_update; DROP TABLE articles_words;")
    store = SQLiteStore(path)
    assert [a.id for a in store.find("bridge harbour", 5)] == ["old-1"]
    store.close()


# -- changes_since and articles, a page at a time -----------------------------------------------------------------
def write_history(store) -> int:
    """60 articles written in several transactions, some rewritten, unpublished or deleted; returns the sequence
    number after the first 30."""
    store.upsert([(Article(f"a{i}", f"one {i}"), "h", vec(i)) for i in range(30)])
    middle = store.seq
    store.upsert([(Article(f"a{i}", f"one {i}"), "h", vec(i)) for i in range(30, 60)])
    store.upsert([(Article(f"a{i}", f"two {i}"), "h2", vec(i + 1)) for i in range(0, 60, 7)])
    store.upsert([(Article(f"a{i}", f"off {i}", status="unpublished"), "h", vec(i)) for i in (3, 31, 44)])
    for i in (5, 20, 32, 58):
        store.delete(f"a{i}")
    return middle


def as_tuples(changes) -> list[tuple]:
    return [(c.key, c.published, None if c.vector is None else c.vector.tolist(), c.article) for c in changes]


@pytest.mark.parametrize("chunk", [1, 2, 3, 7])
def test_changes_since_reads_the_same_changes_a_page_at_a_time(store, chunk):
    # 60 articles: a chunk of 1 walks the table in key order, the others sort what the seq index finds.
    middle = write_history(store)
    deleted = {store.upsert([(Article(f"d{i}", "x"), "h", vec(i))])[0] for i in range(3)}
    for article_id in ("d0", "d1", "d2"):
        store.delete(article_id)
    for seq in (0, middle, store.seq - 1, store.seq):
        whole = as_tuples(store.changes_since(seq, chunk=10_000))  # one read of each table, as before
        assert as_tuples(store.changes_since(seq, chunk=chunk)) == whole
        pages = list(store.change_pages(seq, chunk=chunk))
        assert all(0 < len(page) <= chunk for page in pages)
    everything = list(store.changes_since(0, chunk=chunk))
    assert [c.key for c in everything if c.vector is not None] == sorted(a.key for a in map(
        store.get, [f"a{i}" for i in range(60)]) if a is not None)
    assert {c.key for c in everything if c.vector is None} >= deleted


def test_writes_made_while_changes_are_read_are_read_then_or_at_the_next_follow(store):
    """A follower reads the head, then the changes after what it applied; what is written meanwhile is read in
    its newer state (its key still ahead) or by the next follow (its key behind): the mirror ends up exact."""
    write_history(store)
    mirror: dict[int, str | None] = {}

    def apply(change) -> None:
        mirror[change.key] = change.article.title if change.published else None

    head = store.seq
    pages = store.change_pages(0, chunk=3)
    for change in next(pages):
        apply(change)
    behind, ahead = store.get("a0").key, store.get("a50").key
    store.upsert([(Article("a0", "rewritten behind"), "h3", vec(0)), (Article("new", "new"), "h", vec(0)),
                  (Article("a50", "rewritten ahead"), "h3", vec(0))])
    store.delete("a40")
    for page in pages:
        for change in page:
            apply(change)
    assert mirror[ahead] == "rewritten ahead" and mirror[store.get("new").key] == "new"
    assert mirror[behind] == "two 0"  # read before the write ...
    for change in store.changes_since(head, chunk=3):  # ... and at the next follow
        apply(change)
    published = {s.key: s.article.title for s in store.stored(f"a{i}" for i in range(60)).values()
                 if s.article.is_published}
    published[store.get("new").key] = "new"
    assert {k: t for k, t in mirror.items() if t is not None} == published


def test_articles_are_read_in_key_order_a_page_at_a_time(store):
    write_history(store)
    whole = list(store.articles(chunk=10_000))
    assert [k for k, _ in whole] == sorted(k for k, _ in whole) and len(whole) == 56
    for chunk in (1, 2, 3):
        assert list(store.articles(chunk=chunk)) == whole


def sqlite_plans(store, read) -> list[list[str]]:
    """The query plans of the statements that ``read()`` runs on this thread's reader connection."""
    statements: list[str] = []
    store._reader.set_trace_callback(statements.append)
    try:
        read()
    finally:
        store._reader.set_trace_callback(None)
    return [[row[3] for row in store._reader.execute("EXPLAIN QUERY PLAN " + sql)] for sql in statements]


def test_sqlite_reads_few_changes_from_the_seq_index_and_everything_in_key_order(tmp_path):
    store = SQLiteStore(tmp_path / "a.sqlite3")
    for n in range(4):  # 120 rows: past FEW_PAGES pages of 2
        store.upsert([(Article(f"a{n}-{i}", "t"), "h", vec(i)) for i in range(30)])
    store.delete("a0-0")
    # A follow that reads one write: the changed keys from the seq index alone, sorted; their rows by key;
    # never a walk of the table (a plain ORDER BY key would be one: 30-120 ms at 100k articles).
    last_two = store.seq - 2  # the last upsert (30 rows: 15 pages) and the delete
    few = sqlite_plans(store, lambda: list(store.changes_since(last_two, chunk=2)))
    assert ["SEARCH articles USING COVERING INDEX articles_seq (seq>?)", "USE TEMP B-TREE FOR ORDER BY"] in few
    assert ["SEARCH articles USING INTEGER PRIMARY KEY (rowid=?)"] in few
    assert ["SEARCH tombstones USING COVERING INDEX tombstones_seq (seq>?)", "USE TEMP B-TREE FOR ORDER BY"] in few
    assert not [step for plan in few for step in plan if step.startswith(("SCAN articles", "SCAN tombstones"))]
    # Everything (a rebuild): each page walks on from the last key, sorting nothing (the one tombstone is few).
    everything = sqlite_plans(store, lambda: list(store.changes_since(0, chunk=2)))
    reads = [plan for plan in everything if "SEARCH articles USING INTEGER PRIMARY KEY (rowid>?)" in plan]
    assert len(reads) == 60 and all(plan == reads[0] for plan in reads) and len(reads[0]) == 1
    store.close()


def test_reading_the_rows_through_reads_every_stored_article_and_no_deleted_one(store):
    store.upsert([(Article(f"a{i}", f"title {i}", body="body " * 2000), f"h{i}", vec(i)) for i in range(3)])
    store.delete("a1")
    assert sum(store.read_rows_through()) == 2
    assert list(store.read_rows_through(chunk=2)) == [1, 1]  # keys 0-1 (a0 is 1), then 2-3 (a2 is 3)
