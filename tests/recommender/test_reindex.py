"""Rebuilding the index into another kind from the stored vectors: same lists, nothing re-embedded."""

import os

import numpy as np
import pytest

from index import load_index
from recommender.cli import main
from recommender.engine import Recommender
from recommender.locks import FileLock
from recommender.rank import SimilarQuery
from recommender.reindex import reindex
from tests.conftest import make_settings

SOURCES = ("N34700", "N16278", "N55528")


def lists(engine):
    return {s: [r.id for r in engine.similar(s, SimilarQuery(limit=10))] for s in SOURCES if engine.store.get(s)}


def test_reindex_into_hnswsq_keeps_every_list(data_dir, embedder):
    settings = make_settings(data_dir)
    engine = Recommender(settings, embedder=embedder)
    before, count = lists(engine), len(engine.index)
    engine.close()
    meta = reindex(settings, "hnswsq")
    assert (meta.kind, meta.count) == ("hnswsq", count)
    engine = Recommender(settings, embedder=embedder)
    assert engine.index.kind == "hnswsq"
    # The engine re-scores candidates from the stored vectors, so quantised index scores change nothing.
    assert lists(engine) == before and before
    engine.close()


def test_reindex_defaults_to_the_kind_for_the_corpus_size(data_dir):
    meta = reindex(make_settings(data_dir))
    assert meta.kind == "flat"  # 400 articles
    index, _ = load_index(make_settings(data_dir).index_path)
    assert len(index) == meta.count


def test_reindex_refuses_a_kind_the_corpus_is_too_small_to_train(data_dir):
    before = (data_dir / "index.faiss").read_bytes()
    with pytest.raises(ValueError, match="at least 10000"):
        reindex(make_settings(data_dir), "ivfpq")
    assert (data_dir / "index.faiss").read_bytes() == before  # the old index is untouched


def test_reindex_of_an_empty_data_dir_says_to_ingest_first(tmp_path):
    with pytest.raises(ValueError, match="ingest"):
        reindex(make_settings(tmp_path))


def test_cli_reindex_shows_progress_and_reports(data_dir, monkeypatch, capsys):
    monkeypatch.setenv("RECOMMENDER_DATA_DIR", str(data_dir))
    assert main(["reindex", "--kind", "hnsw"]) == 0
    out, err = capsys.readouterr()
    assert "as hnsw" in out and "reindex hnsw" in err  # the tqdm bar
    assert load_index(data_dir / "index.faiss")[1].kind == "hnsw"


def test_reindex_refuses_while_a_server_refreshes_on_the_data_dir(data_dir):
    running = FileLock(data_dir / "refresher.lock")  # what a serving process's refresher holds
    assert running.try_exclusive()
    try:
        with pytest.raises(ValueError, match="a server or an ingest is running"):
            reindex(make_settings(data_dir), "flat")
    finally:
        running.release()
    assert reindex(make_settings(data_dir), "flat").kind == "flat"


def test_a_rebuild_runs_faiss_on_every_core_where_its_thread_searched_single_queries_on_one(data_dir, embedder,
                                                                                             monkeypatch):
    import faiss

    from index.vector_index import VectorIndex

    engine = Recommender(make_settings(data_dir), embedder=embedder)
    engine.index.search(np.zeros(engine.index.dim, np.float32), 5)  # a single query: this thread's FAISS on one core
    assert faiss.omp_get_max_threads() == 1
    threads, add = [], VectorIndex.add

    def counted(self: VectorIndex, keys: np.ndarray, vectors: np.ndarray) -> None:
        threads.append(faiss.omp_get_max_threads())
        add(self, keys, vectors)

    monkeypatch.setattr(VectorIndex, "add", counted)
    engine.rebuild_index("hnswsq")  # as an import does once it outgrew the flat index
    assert threads and set(threads) == {len(os.sched_getaffinity(0))}
    assert faiss.omp_get_max_threads() == 1  # its single queries on one core again
    engine.close()
