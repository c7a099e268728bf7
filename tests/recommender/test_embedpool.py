"""An import's texts embedded by several processes: the same vectors, in the same order, as the model here."""

import logging
from dataclasses import replace

import numpy as np

from recommender.article import embedding_text
from recommender.embedpool import SPLIT_MIN, EmbeddingPool
from recommender.engine import Recommender
from tests.conftest import make_settings


def _texts(articles) -> list[str]:
    return [embedding_text(article, 1000) for article in articles]


def test_a_pool_gives_the_models_vectors_in_order(mind_articles, embedder):
    texts = _texts(mind_articles[:150])
    pool = EmbeddingPool(embedder.name, embedder.batch_size, 2, fallback=embedder)
    try:
        vectors = pool.encode(texts)
    finally:
        pool.close()
    assert vectors.shape == (150, embedder.dim) and vectors.dtype == np.float32
    # Each text's own vector (one core against all of them: the same to float rounding).
    assert np.min(np.sum(vectors * embedder.encode(texts), axis=1)) > 0.9999


def test_a_few_texts_start_no_process(mind_articles, embedder):
    pool = EmbeddingPool(embedder.name, embedder.batch_size, 2, fallback=embedder)
    texts = _texts(mind_articles[:SPLIT_MIN - 1])
    assert np.array_equal(pool.encode(texts), embedder.encode(texts))
    assert pool._executor is None
    pool.close()


def test_a_pool_whose_processes_fail_embeds_here_and_says_so(mind_articles, embedder, caplog):
    texts = _texts(mind_articles[:SPLIT_MIN])
    # Its processes cannot load this model: the pool breaks at its first call, and the model here embeds.
    pool = EmbeddingPool("no-such-model-package", embedder.batch_size, 2, fallback=embedder)
    with caplog.at_level(logging.WARNING, logger="recommender.embedpool"):
        vectors = pool.encode(texts)
        again = pool.encode(texts)
    pool.close()
    assert np.array_equal(vectors, embedder.encode(texts)) and np.array_equal(again, vectors)
    assert "this process embeds the rest of the import" in caplog.text


def test_an_import_in_two_processes_stores_what_one_process_stores(tmp_path, mind_articles, embedder):
    stored = []
    for processes in (1, 2):
        settings = make_settings(tmp_path / f"p{processes}", ingest_chunk=100)
        with Recommender(settings, embedder=embedder) as engine:
            result = engine.upsert(mind_articles[:250], processes=processes)
            assert (result.created, result.embedded) == (250, 250)
            stored.append(engine.store.vectors_for(a.id for a in mind_articles[:250]))
    assert stored[0].keys() == stored[1].keys() and len(stored[0]) == 250
    assert min(float(stored[0][i] @ stored[1][i]) for i in stored[0]) > 0.9999


def test_a_chunk_embedded_ahead_is_written_as_the_chunk_before_left_the_store(tmp_path, mind_articles, embedder):
    """The pool embeds a chunk while the one before it is written, from the store as it was: vectors for texts
    the chunk before wrote already are dropped, and texts it changed back are embedded again at the write."""
    originals = mind_articles[:SPLIT_MIN]
    changed = [replace(a, title=f"{a.title}, updated") for a in originals]
    settings = make_settings(tmp_path / "data", ingest_chunk=SPLIT_MIN)
    with Recommender(settings, embedder=embedder) as engine:
        engine.upsert(originals)
        # Chunk 1 changes every article (the pool embeds it). Chunk 2 changes them back: its texts were the
        # store's when it was looked at, so nothing is embedded ahead, and all of it at its write. Chunk 3 sends
        # the originals again: embedded ahead (the store held chunk 1's), then not needed.
        result = engine.upsert([*changed, *originals, *originals], processes=2)
        assert (result.updated, result.unchanged, result.embedded) == (2 * SPLIT_MIN, SPLIT_MIN, 2 * SPLIT_MIN)
        stored = engine.store.vectors_for(a.id for a in originals)
    expected = embedder.encode(_texts(originals))
    assert min(float(stored[a.id] @ expected[i]) for i, a in enumerate(originals)) > 0.9999
