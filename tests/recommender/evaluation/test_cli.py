"""`recommender evaluate DATASET_DIR`: a table on stdout, figures as JSON."""

import json

from recommender.cli import main
from tests.conftest import MIND_SAMPLE


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_evaluate_the_mind_sample_dir_prints_a_row_per_strategy_and_writes_json(tmp_path, capsys, embedder):
    out = tmp_path / "figures.json"
    rc = main(["evaluate", str(MIND_SAMPLE), "--articles", "150", "--queries", "20",
               "--strategies", "default", "bm25", "--k", "1", "3", "--json", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    table = [line.split() for line in printed.splitlines() if line.split()[:1] in (["default"], ["bm25"])]
    assert [row[0] for row in table if _is_number(row[1])] == ["default", "bm25"]
    assert "ndcg@3" in printed and "ndcg@10" not in printed
    assert "the best baseline (bm25" in printed  # the verdict: default against the best baseline
    data = json.loads(out.read_text())
    assert set(data["strategies"]) == {"default", "bm25"}
    assert 0.0 <= data["strategies"]["default"]["ndcg@3"] <= 1.0
    assert data["queries"] == 20


def test_evaluate_a_general_format_dir_with_groups(tmp_path, capsys, embedder):
    stories = {
        "quake": ["Earthquake shakes Tokyo", "Tokyo earthquake: buildings damaged", "Aftershocks hit Tokyo"],
        "final": ["Cup final tonight at Wembley", "Wembley cup final: line-ups", "Cup final ends in penalties"],
        "rates": ["Central bank raises interest rates", "Interest rate rise hits mortgages", "Rates up again"],
    }
    rows = [{"id": f"{g}-{i}", "title": t, "group": g} for g, titles in stories.items() for i, t in enumerate(titles)]
    (tmp_path / "articles.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    rc = main(["evaluate", str(tmp_path), "--k", "1", "2", "--json", str(tmp_path / "out.json")])
    assert rc == 0
    data = json.loads((tmp_path / "out.json").read_text())
    assert set(data["strategies"]) == {"default", "embedding", "tfidf", "bm25"}
    assert data["queries"] == 9
    # the same story is easy to find here: every strategy's first item is from it most of the time
    assert data["strategies"]["embedding"]["p@1"] >= 0.6


def test_evaluate_a_missing_dir_is_an_error(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err
