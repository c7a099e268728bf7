"""The engine end to end in-process: ingest, lists, updates, takedowns, repair after restarts."""

import logging
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest

from index import load_index
from index.files import file_stamp
from index.vector_index import MIN_TRAIN
from recommender.engine import Recommender
from recommender.lexical import LexicalIndex
from recommender.loaders import read_articles
from recommender.rank import SimilarQuery
from recommender.rowfile import open_rows_file
from recommender.store.articles import ArticleStore
from tests.conftest import MIND_SAMPLE, SLICE, make_settings

SOURCE = "N34700"  # "New Florida Majority celebrates grand opening of Fort Lauderdale office"


def test_list_is_nonempty_best_first_and_never_the_article_itself(engine):
    items = engine.similar(SOURCE)
    assert 0 < len(items) <= 8
    assert SOURCE not in [r.id for r in items]
    assert len({r.id for r in items}) == len(items)


def test_every_strategy_answers(engine):
    for strategy in ("default", "embedding", "tfidf", "bm25"):
        items = engine.similar(SOURCE, SimilarQuery(strategy=strategy, limit=5))
        assert items, strategy
        assert SOURCE not in [r.id for r in items]


def test_embedding_strategy_returns_semantic_neighbours_in_score_order(engine):
    items = engine.similar("N16278", SimilarQuery(strategy="embedding", limit=5))  # Marine Corps Marathon
    scores = [r.score for r in items]
    assert scores == sorted(scores, reverse=True)
    assert any(r.article.section == "sports" for r in items)


def test_reingesting_unchanged_articles_embeds_nothing(engine, mind_articles):
    result = engine.upsert(mind_articles[:50])
    assert (result.created, result.embedded, result.unchanged) == (0, 0, 50)


def test_changing_the_text_reembeds_only_that_article(engine, mind_articles):
    changed = replace(mind_articles[0], title=mind_articles[0].title + " (updated)")
    result = engine.upsert([changed, mind_articles[1]])
    assert (result.updated, result.embedded, result.unchanged) == (1, 1, 1)
    assert engine.get(changed.id).title.endswith("(updated)")


def test_metadata_only_change_keeps_the_vector(engine, mind_articles):
    before = engine.store.get(mind_articles[2].id).vector.copy()
    result = engine.upsert([replace(mind_articles[2], image_url="https://img.example/x.jpg")])
    assert result.embedded == 0 and result.updated == 0 and result.unchanged == 1
    assert np.array_equal(engine.store.get(mind_articles[2].id).vector, before)
    assert engine.get(mind_articles[2].id).image_url == "https://img.example/x.jpg"


def test_deleted_article_leaves_every_list_at_once(engine):
    top = engine.similar(SOURCE)[0].id
    assert engine.delete(top)
    assert top not in [r.id for r in engine.similar(SOURCE)]
    assert not engine.delete(top)


def test_unpublished_article_is_never_listed(engine):
    top = engine.similar(SOURCE)[0]
    engine.upsert([replace(top.article, status="unpublished")])
    assert top.id not in [r.id for r in engine.similar(SOURCE)]
    assert top.id not in [r.id for r in engine.similar(SOURCE, SimilarQuery(strategy="bm25"))]


def test_preview_of_unindexed_text_finds_the_story(engine):
    items = engine.similar_to_text("Marine Corps Marathon winner", "Runner wins the marathon in the rain")
    assert items and items[0].article.section == "sports"


def test_restart_repairs_index_from_store_after_unsaved_writes(data_dir, embedder, mind_articles):
    first = Recommender(make_settings(data_dir), embedder=embedder)
    top = first.similar(SOURCE)[0].id
    first.delete(top)
    first.upsert([replace(mind_articles[5], id="fresh-1")])
    # No checkpoint: the process "dies" here and the saved index is stale.
    second = Recommender(make_settings(data_dir), embedder=embedder)
    keys = set(second.index.ids().tolist())
    assert second.store.get("fresh-1").key in keys
    assert top not in [r.id for r in second.similar(SOURCE)]
    assert len(second.index) == second.store.count()


def test_corrupt_index_file_is_rebuilt_from_the_store(data_dir, embedder, caplog):
    (data_dir / "index.faiss").write_bytes(b"not a faiss index")
    engine = Recommender(make_settings(data_dir), embedder=embedder)
    assert len(engine.index) == engine.store.count()
    assert "rebuilding the index from the store" in caplog.text
    assert engine.similar(SOURCE)


def test_missing_index_file_is_rebuilt(data_dir, embedder):
    (data_dir / "index.faiss").unlink()
    engine = Recommender(make_settings(data_dir), embedder=embedder)
    assert len(engine.index) == engine.store.count()


def test_store_embedded_by_another_model_is_reembedded_in_place(data_dir, embedder, caplog):
    first = Recommender(make_settings(data_dir), embedder=embedder)
    count = first.store.count()
    first.store.set_meta("model", "some-older-model")
    first.close()
    second = Recommender(make_settings(data_dir), embedder=embedder)
    assert "re-embedding every article" in caplog.text
    assert second.store.count() == count and len(second.index) == count
    assert second.store.meta("model") == embedder.name
    assert second.similar(SOURCE)


def test_a_data_dir_pointed_at_another_store_ranks_that_stores_articles_and_rebuilds_its_files(
        data_dir, embedder, mind_articles, tmp_path, caplog):
    # Another store: 60 of the data dir's articles in reverse order, so each key names another article there.
    with Recommender(make_settings(tmp_path / "other"), embedder=embedder) as other:
        other.upsert(mind_articles[59::-1])
        want = {a.id: [r.id for r in other.similar(a.id)] for a in mind_articles[:60:6]}
    for name in ("articles.sqlite3", "articles.sqlite3-wal", "articles.sqlite3-shm"):
        (data_dir / name).unlink(missing_ok=True)
    with sqlite3.connect(tmp_path / "other" / "articles.sqlite3") as source, \
            sqlite3.connect(data_dir / "articles.sqlite3") as target:
        source.backup(target)  # the data dir's files stay: derived from the store it had before
    writer = Recommender(make_settings(data_dir), embedder=embedder)
    reader = Recommender(make_settings(data_dir, writer_socket=data_dir / "writer.sock"))
    for engine in (writer, reader):
        assert len(engine.index) == len(engine.lexical) == 60
        assert {article_id: [r.id for r in engine.similar(article_id)] for article_id in want} == want
    assert "derived from another store" in caplog.text
    assert writer.checkpoint()
    store = writer.store.id
    assert load_index(data_dir / "index.faiss", store=store)[1].seq == writer.store.seq
    assert LexicalIndex.load(data_dir / "lexical.counts", store)[1] == writer.store.seq
    assert LexicalIndex.map_weights(data_dir / "lexical.weights", store)[1] == writer.store.seq
    assert open_rows_file(data_dir / "candidates.rows", store).seq == writer.store.seq
    reader.close()
    writer.close()


def test_a_store_put_back_behind_its_data_dirs_files_has_them_derived_again(data_dir, embedder, mind_articles,
                                                                            tmp_path, caplog):
    backup = tmp_path / "backup.sqlite3"
    with sqlite3.connect(data_dir / "articles.sqlite3") as source, sqlite3.connect(backup) as target:
        source.backup(target)
    with Recommender(make_settings(data_dir), embedder=embedder) as engine:  # writes the backup never saw
        engine.upsert([replace(a, id=f"lost-{a.id}") for a in mind_articles[:30]])
        assert engine.checkpoint()
        lost = {engine.store.get(f"lost-{a.id}").key for a in mind_articles[:30]}
    # The store restored into a new file (a connection the engine's threads left open keeps the old one's WAL):
    # its keys of the lost writes will be given again.
    for name in ("articles.sqlite3", "articles.sqlite3-wal", "articles.sqlite3-shm"):
        (data_dir / name).unlink(missing_ok=True)
    with sqlite3.connect(backup) as source, sqlite3.connect(data_dir / "articles.sqlite3") as target:
        source.backup(target)
    reader = Recommender(make_settings(data_dir, writer_socket=data_dir / "writer.sock"))  # before the writer
    writer = Recommender(make_settings(data_dir), embedder=embedder)
    assert "ahead of the store's sequence" in caplog.text
    for engine in (writer, reader):
        assert len(engine.index) == len(engine.lexical) == engine.store.count() == SLICE
    fresh = [replace(a, id=f"fresh-{a.id}", title=f"Fresh: {a.title}") for a in mind_articles[100:130]]
    writer.upsert(fresh)
    assert {writer.store.get(a.id).key for a in fresh} == lost  # the same keys, other articles
    assert writer.checkpoint()
    reader.following.follow()
    reader.following.map_newer_checkpoint()
    for engine in (writer, reader):
        for article in fresh[:5]:
            key = engine.store.get(article.id).key
            assert engine.rows.gather([key]).articles[0].title == article.title
            assert engine.similar(article.id)
            assert engine.similar(article.id, SimilarQuery(strategy="bm25"))
    reader.close()
    writer.close()


def test_two_engines_on_one_data_dir_follow_each_others_writes(data_dir, embedder, mind_articles):
    server = Recommender(make_settings(data_dir), embedder=embedder)
    cli = Recommender(make_settings(data_dir), embedder=embedder)  # e.g. `recommender ingest` beside a server
    top = server.similar(SOURCE)[0].id
    cli.upsert([replace(mind_articles[5], id="from-cli")])
    cli.delete(top)
    cli.close()
    assert top not in [r.id for r in server.similar(SOURCE)]
    assert server.store.get("from-cli").key in set(server.index.ids().tolist())
    assert server.checkpoint()
    server.close()
    # The checkpoint holds what the server applied, with the sequence it applied: nothing lost, nothing extra.
    from index import load_index

    index, meta = load_index(data_dir / "index.faiss")
    assert sorted(index.ids().tolist()) == sorted(server.store.published_keys().tolist())
    assert meta.seq == server.store.seq



def test_a_read_worker_maps_the_writers_checkpoint_and_keeps_only_later_writes_beside_it(data_dir, embedder,
                                                                                         mind_articles):
    # Lexical weights written at every checkpoint (by default at most every 10 minutes or 1,000 changes).
    writer = Recommender(make_settings(data_dir, lexical_weights_interval_s=0), embedder=embedder)
    reader = Recommender(make_settings(data_dir, writer_socket=data_dir / "writer.sock"))  # as `serve` starts one
    assert reader.index.mapped and writer.index.mapped  # both map the checkpoint the ingest saved
    assert reader.lexical.mapped and not writer.lexical.mapped  # the weights the ingest derived from its counts
    top = reader.similar(SOURCE)[0].id
    writer.upsert([replace(mind_articles[5], id="new-one")])
    writer.delete(top)
    reader.follow()
    assert top not in [r.id for r in reader.similar(SOURCE)]
    assert [r.id for r in reader.similar(SOURCE)] == [r.id for r in writer.similar(SOURCE)]
    first, first_weights = reader.index, reader.lexical
    assert writer.checkpoint()
    writer.upsert([replace(mind_articles[6], id="after-checkpoint")])
    reader.follow()
    reader.following.map_newer_checkpoint()  # what its refresher thread does after each follow
    assert reader.index is not first and reader.index.mapped  # the newer checkpoint, with the write after it
    assert reader.lexical is not first_weights and reader.lexical.mapped  # and the writer's newer weights
    assert sorted(reader.index.ids().tolist()) == sorted(writer.store.published_keys().tolist())
    assert writer.store.get("after-checkpoint").key in reader.lexical
    for strategy in ("default", "bm25", "tfidf"):
        query = SimilarQuery(strategy=strategy)
        assert [r.id for r in reader.similar(SOURCE, query)] == [r.id for r in writer.similar(SOURCE, query)]
    saved = [(data_dir / name).stat().st_mtime_ns for name in ("index.faiss", "lexical.counts", "lexical.weights")]
    reader.close()  # a read worker never writes the writer's files
    assert [(data_dir / name).stat().st_mtime_ns for name in ("index.faiss", "lexical.counts", "lexical.weights")] \
        == saved
    writer.close()


def test_the_writer_saves_its_mapped_index_whole_at_a_checkpoint_then_maps_the_new_one(data_dir, embedder,
                                                                                      mind_articles):
    from index import load_index

    writer = Recommender(make_settings(data_dir), embedder=embedder)
    top = writer.similar(SOURCE)[0].id
    writer.upsert([replace(mind_articles[5], id="new-one")])
    writer.delete(top)
    assert writer.index.mapped and writer.index.delta_count() == 1  # the write beside the file, until it saves
    want = [r.id for r in writer.similar(SOURCE)]
    assert writer.checkpoint()
    assert writer.index.mapped and writer.index.delta_count() == 0  # the new checkpoint, mapped
    assert [r.id for r in writer.similar(SOURCE)] == want
    saved, meta = load_index(data_dir / "index.faiss")
    assert sorted(saved.ids().tolist()) == sorted(writer.store.published_keys().tolist())
    assert meta.seq == writer.store.seq
    writer.close()


def test_the_writer_holds_its_index_whole_once_too_much_is_beside_the_mapped_file(data_dir, embedder,
                                                                                  mind_articles, monkeypatch):
    """Vectors beside the file are searched exactly: an ingest of many does not grow them without bound."""
    monkeypatch.setattr("recommender.following.DELTA_MAX", 2)
    writer = Recommender(make_settings(data_dir), embedder=embedder)
    writer.upsert([replace(mind_articles[5], id="one"), replace(mind_articles[6], id="two")])
    assert writer.index.mapped
    writer.upsert([replace(mind_articles[7], id="three")])
    assert not writer.index.mapped  # read whole, with the three writes
    assert sorted(writer.index.ids().tolist()) == sorted(writer.store.published_keys().tolist())
    assert writer.checkpoint() and writer.index.mapped
    writer.close()


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_a_data_dir_without_usable_lexical_weights_gets_them_at_the_writers_first_checkpoint(data_dir, embedder,
                                                                                            damage):
    weights = data_dir / "lexical.weights"
    if damage == "missing":  # a data dir of an older version
        weights.unlink()
    else:  # a disk that filled up under another tool, say
        weights.write_bytes(weights.read_bytes()[:1000])
    writer = Recommender(make_settings(data_dir), embedder=embedder)
    reader = Recommender(make_settings(data_dir, writer_socket=data_dir / "writer.sock"))
    assert not reader.lexical.mapped  # the counts, until the writer has saved weights
    want = [r.id for r in reader.similar(SOURCE, SimilarQuery(strategy="bm25"))]
    assert writer.checkpoint()  # though nothing was written since it opened
    reader.following.map_newer_checkpoint()
    assert reader.lexical.mapped
    assert [r.id for r in reader.similar(SOURCE, SimilarQuery(strategy="bm25"))] == want
    reader.close()
    writer.close()


def test_the_writer_rewrites_the_lexical_weights_once_enough_changed(data_dir, embedder, mind_articles, monkeypatch):
    """Each weights file is a pass over every article (~20 s at 1M): not one per 30 s checkpoint."""
    writer = Recommender(make_settings(data_dir), embedder=embedder)
    stamp = file_stamp(data_dir / "lexical.weights")
    writer.upsert([replace(mind_articles[5], id="one")])
    assert writer.checkpoint() and file_stamp(data_dir / "lexical.weights") == stamp  # the indexes only
    monkeypatch.setattr("recommender.following.REWEIGH_MIN", 2)
    writer.upsert([replace(mind_articles[6], id="two")])
    assert writer.checkpoint() and file_stamp(data_dir / "lexical.weights") != stamp
    writer.close()


def test_restart_loads_the_saved_indexes_without_the_model_and_ranks_the_same(data_dir, embedder, mind_articles):
    first = Recommender(make_settings(data_dir), embedder=embedder)
    first.upsert([replace(mind_articles[7], id="before-save")])
    first.checkpoint()
    first.upsert([replace(mind_articles[8], id="after-save")])  # in the store only: applied on the next start
    queries = [SimilarQuery(strategy=s) for s in ("default", "bm25", "tfidf")]
    want = [first.similar(a.id, q) for a in mind_articles[:20] for q in queries]
    first.store.close()  # "dies" without a checkpoint
    second = Recommender(make_settings(data_dir))  # no embedder given: it must not be loaded to serve
    assert not second.model.loaded and (data_dir / "lexical.counts").exists()
    assert [second.similar(a.id, q) for a in mind_articles[:20] for q in queries] == want
    assert not second.model.loaded
    key = second.store.get("after-save").key
    assert key in set(second.index.ids().tolist()) and key in second.lexical


def test_the_lexical_counts_of_an_earlier_version_are_read_then_replaced_at_the_next_checkpoint(
        data_dir, embedder, mind_articles):
    from recommender.analysis import ANALYZER_VERSION
    from recommender.lexical import LexicalIndex

    queries = [SimilarQuery(strategy=s) for s in ("bm25", "tfidf")]
    settings = make_settings(data_dir)
    with Recommender(settings, embedder=embedder) as engine:
        want = [engine.similar(a.id, q) for a in mind_articles[:10] for q in queries]
    counts, seq = LexicalIndex.load(data_dir / "lexical.counts")
    live = counts.live_counts()
    with open(settings.legacy_lexical_path, "wb") as fh:  # the .npz layout of earlier versions
        np.savez(fh, data=live.counts.data, indices=live.counts.indices, indptr=live.counts.indptr,
                 shape=np.array(live.counts.shape), keys=live.keys, terms=np.array(live.terms, dtype=np.str_),
                 seq=np.array(seq), analyzer=np.array(ANALYZER_VERSION))
    (data_dir / "lexical.counts").unlink()
    with Recommender(settings, embedder=embedder) as engine:
        assert [engine.similar(a.id, q) for a in mind_articles[:10] for q in queries] == want
    assert settings.lexical_path.exists() and not settings.legacy_lexical_path.exists()


def test_indexes_rebuilt_from_the_store_a_batch_at_a_time_rank_as_when_read_whole(data_dir, embedder, mind_articles,
                                                                                 monkeypatch):
    """At 1M articles the store is never held whole: the index is repaired a batch of vectors at a time and the
    lexical index built from chunks of texts; the lists are those of indexes built from one read."""
    import recommender.following as following

    queries = [SimilarQuery(strategy=s) for s in ("default", "bm25", "tfidf")]

    def rebuilt_lists() -> list:
        (data_dir / "index.faiss").unlink()
        (data_dir / "lexical.counts").unlink()
        with Recommender(make_settings(data_dir), embedder=embedder) as engine:
            assert sorted(engine.index.ids().tolist()) == sorted(engine.store.published_keys().tolist())
            return [engine.similar(a.id, q) for a in mind_articles[:20] for q in queries]

    want = rebuilt_lists()  # the corpus (400 articles) in one batch
    monkeypatch.setattr(following, "REPAIR_BATCH", 37)
    monkeypatch.setattr(following, "CHANGES_CHUNK", 11)
    assert rebuilt_lists() == want


def test_a_follow_far_behind_applies_its_changes_a_batch_at_a_time_as_one_change(data_dir, embedder, mind_articles,
                                                                                 monkeypatch):
    import recommender.following as following

    monkeypatch.setattr(following, "CHANGES_CHUNK", 3)  # reads of 3 changes, applied 6 at a time
    monkeypatch.setattr(following, "APPLY_BATCH", 5)
    server = Recommender(make_settings(data_dir), embedder=embedder)
    gone = [server.similar(SOURCE)[0].id, mind_articles[30].id]
    generation = server.generation
    with Recommender(make_settings(data_dir), embedder=embedder) as cli:  # 12 writes, 2 deletes
        cli.upsert([replace(a, id=f"new-{a.id}") for a in mind_articles[:12]])
        for article_id in gone:
            cli.delete(article_id)
    assert server.follow() and server.generation == generation + 1  # one invalidation for every batch
    published = server.store.published_keys().tolist()
    assert sorted(server.index.ids().tolist()) == sorted(published) and len(server.lexical) == len(published)
    assert all(server.store.get(f"new-{a.id}").key in server.lexical for a in mind_articles[:12])
    assert not {r.id for r in server.similar(SOURCE)} & set(gone)
    server.close()


def test_a_delete_alone_advances_the_sequence_and_reaches_the_checkpoint(engine):
    from index import load_index

    engine.checkpoint()
    key, seq = engine.store.get(SOURCE).key, engine.store.seq
    assert engine.delete(SOURCE)
    assert engine.store.seq == seq + 1
    assert engine.checkpoint()
    index, meta = load_index(engine.settings.index_path)
    assert key not in set(index.ids().tolist()) and meta.seq == seq + 1


def test_an_unchanged_reingest_writes_nothing_and_queues_no_box(engine, mind_articles):
    seq, queued = engine.store.seq, engine.store.queue_length()
    result = engine.upsert(mind_articles[:50])
    assert (result.unchanged, result.embedded) == (50, 0)
    assert (engine.store.seq, engine.store.queue_length()) == (seq, queued)


def test_a_change_outside_the_text_is_written_without_re_embedding(engine, mind_articles):
    moved = replace(mind_articles[0], published_at=datetime(2019, 11, 1, tzinfo=UTC))
    seq = engine.store.seq
    result = engine.upsert([moved])
    assert (result.unchanged, result.embedded) == (1, 0)
    assert engine.store.seq == seq + 1 and engine.get(moved.id).published_at == moved.published_at


def test_a_batch_whose_neighbour_keys_outnumber_sqlites_variable_limit_is_stored(data_dir, embedder, monkeypatch):
    # 999 variables per statement: SQLite's limit before 3.32 (and a build's own choice since). 40 new articles
    # have 1,200 neighbour keys, most of them shared: one `IN (...)` of them all failed the whole batch.
    import recommender.store.sqlite

    def limited(path):
        conn = connect(path)
        conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)
        return conn

    connect = recommender.store.sqlite.connect
    monkeypatch.setattr(recommender.store.sqlite, "connect", limited)
    batch = list(read_articles(MIND_SAMPLE))[SLICE:SLICE + 40]
    with Recommender(make_settings(data_dir), embedder=embedder) as engine:
        reader = engine.store._reader
        assert isinstance(reader, sqlite3.Connection) and reader.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) == 999
        result = engine.upsert_all(batch)
        assert (result.created, result.embedded) == (40, 40)
        assert all(engine.get(a.id) is not None for a in batch)
        assert len(engine.store.by_keys([engine.store.get(batch[0].id).key] * 2000)) == 1


@pytest.mark.parametrize("held", ["mapped", "whole", "never mapped"])
@pytest.mark.parametrize("race", ["mapped first", "checkpoint first"])
def test_a_servers_writer_keeps_the_index_an_ingest_rebuilt_beside_it_as_another_kind(data_dir, embedder,
                                                                                      mind_articles, race, held,
                                                                                      monkeypatch):
    """A server started on the data dir of an import that runs (its refresher waits for the import's lock) saves
    the same checkpoint: it takes the kind the import rebuilt the index as, whether it maps that file first or saves
    first, instead of writing its old kind over it (a flat index of a million articles: hours of boxes)."""
    if held == "whole":  # what an import's thousands of writes do to a server following them
        monkeypatch.setattr("recommender.following.DELTA_MAX", 0)
    server = Recommender(make_settings(data_dir, index_mmap=held != "never mapped"), embedder=embedder)
    ingest = Recommender(make_settings(data_dir), embedder=embedder)
    assert server.index.kind == ingest.index.kind == "flat"
    ingest.upsert([replace(mind_articles[5], id="imported")])
    server.upsert([replace(mind_articles[6], id="written-to-the-server")])
    assert server.index.mapped is (held == "mapped")
    ingest.rebuild_index("hnswsq")  # what an import that holds the refresher lock does before the boxes
    if race == "mapped first":
        server.following.map_newer_checkpoint()  # its refresher thread, after each follow
    assert server.checkpoint()
    saved, meta = load_index(data_dir / "index.faiss")
    assert meta.kind == "hnswsq" and server.index.kind == "hnswsq"
    assert sorted(saved.ids().tolist()) == sorted(server.store.published_keys().tolist())
    assert server.similar(SOURCE)
    ingest.close()
    server.close()
    assert load_index(data_dir / "index.faiss")[1].kind == "hnswsq"


def test_a_crash_between_the_checkpoints_two_renames_hides_no_live_article_after_the_restart(data_dir, embedder,
                                                                                            mind_articles):
    """The index file is renamed, then its meta: a crash between them pairs a rebuilt graph with the hidden slots
    of the save before, which name live articles of the new graph. The next start's repair adds back every
    published article the index lacks (before, they stayed out of every box's search for good)."""
    meta = data_dir / "index.faiss.json"
    engine = Recommender(make_settings(data_dir), embedder=embedder)
    engine.rebuild_index("hnswsq")
    for article in mind_articles[:5]:
        engine.delete(article.id)
    assert engine.checkpoint()  # the same graph, 5 slots hidden
    before = meta.read_text()
    engine.upsert([replace(mind_articles[i], id=f"later-{i}") for i in range(5)])
    engine.rebuild_index("hnswsq")  # a new graph with as many vectors as the old one's slots
    engine.close()
    meta.write_text(before)  # the crash: the new file with the old meta
    engine = Recommender(make_settings(data_dir), embedder=embedder)
    published = sorted(engine.store.published_keys().tolist())
    assert sorted(engine.index.ids().tolist()) == published
    engine.close()
    assert sorted(load_index(data_dir / "index.faiss")[0].ids().tolist()) == published



def test_a_writer_that_takes_an_ivfpq_rebuild_holds_it_whole_and_reads_no_checkpoint_back(data_dir, embedder,
                                                                                           mind_articles, monkeypatch):
    """ivfpq is read whole, not mapped: a writer that takes such a rebuild stops mapping its checkpoints, as one
    that opened it does (each would be read whole again, then dropped)."""
    monkeypatch.setitem(MIN_TRAIN, "ivfpq", 256)  # the data dir's 400 articles
    server = Recommender(make_settings(data_dir), embedder=embedder)
    ingest = Recommender(make_settings(data_dir), embedder=embedder)
    ingest.rebuild_index("ivfpq")
    server.upsert([replace(mind_articles[6], id="written-to-the-server")])
    assert server.checkpoint() and server.index.kind == "ivfpq" and not server.index.mapped
    reads = index_reads(monkeypatch)
    server.upsert([replace(mind_articles[7], id="written-after")])
    assert server.checkpoint() and reads == []
    ingest.close()
    server.close()


def test_an_article_published_during_a_start_is_followed_not_repaired(data_dir, embedder, mind_articles, monkeypatch,
                                                                      caplog):
    """A write another process commits while a start reads the store is not a crash's missing article: no warning,
    and the writer's index stays mapped (a repair would read it whole and save it)."""
    other = Recommender(make_settings(data_dir), embedder=embedder)
    published_keys, written = ArticleStore.published_keys, list[object]()

    def with_a_write_first(store: ArticleStore, limit: int | None = None) -> np.ndarray:
        if limit is None and not written:
            written.append(other.upsert([replace(mind_articles[7], id="written-meanwhile")]))
        return published_keys(store, limit)

    monkeypatch.setattr(ArticleStore, "published_keys", with_a_write_first)
    with caplog.at_level(logging.WARNING, logger="recommender"):
        server = Recommender(make_settings(data_dir), embedder=embedder)
    assert written and server.index.mapped and "missing from the index" not in caplog.text
    assert server.store.get("written-meanwhile").key in server.index.ids()  # followed
    server.close()
    other.close()


def test_a_read_worker_leaves_unread_a_checkpoint_of_a_kind_it_cannot_map(data_dir, embedder, monkeypatch):
    """An index rebuilt as ivfpq is read whole, not mapped: a read worker takes it at its next start instead of
    reading it whole, then dropping it, at every checkpoint meanwhile."""
    monkeypatch.setitem(MIN_TRAIN, "ivfpq", 256)  # the data dir's 400 articles
    writer = Recommender(make_settings(data_dir), embedder=embedder)
    reader = Recommender(make_settings(data_dir, writer_socket=data_dir / "writer.sock"))
    writer.rebuild_index("ivfpq")
    reads = index_reads(monkeypatch)
    reader.following.map_newer_checkpoint()
    assert reads == [] and reader.index.kind == "flat" and reader.index.mapped
    assert [r.id for r in reader.similar(SOURCE)]
    reader.close()
    writer.close()


def index_reads(monkeypatch) -> list[object]:
    """The calls of ``load_index`` from the engine's following from now on (each a read of the checkpoint)."""
    reads: list[object] = []

    def counted(*args, **kwargs):
        reads.append(args)
        return load_index(*args, **kwargs)

    monkeypatch.setattr("recommender.following.load_index", counted)
    return reads
