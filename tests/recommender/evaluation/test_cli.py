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


def test_evaluate_prints_a_table_per_half_the_comparisons_and_a_summary(tmp_path, capsys, embedder):
    out = tmp_path / "figures.json"
    rc = main(["evaluate", str(MIND_SAMPLE), "--articles", "150", "--queries", "20",
               "--strategies", "default", "bm25", "--k", "1", "3", "--json", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "mind-sample, tuning queries: 20 queries" in printed
    assert "mind-sample, reporting queries: 20 queries" in printed
    assert "alpha_ndcg@3" in printed and "story_hit@1" in printed and "ndcg@10" not in printed
    assert "default against each other strategy on alpha_ndcg@3" in printed
    summary = printed.split("== summary")[1]
    assert [line.split()[:3] for line in summary.splitlines()[2:4]] == [
        ["mind-sample", "tuning", "20"], ["mind-sample", "reporting", "20"]]
    data = json.loads(out.read_text())
    assert [d["half"] for d in data] == ["tuning", "reporting"]
    for result in data:
        assert set(result["strategies"]) == {"default", "bm25"} and result["queries"] == 20
        assert 0.0 <= result["strategies"]["default"]["alpha_ndcg@3"] <= 1.0 and result["alpha"] == 0.5
        low, high = result["comparisons"]["bm25"]["ci_low"], result["comparisons"]["bm25"]["ci_high"]
        assert low <= result["comparisons"]["bm25"]["diff"] <= high


def _write_stories(directory, stories):
    directory.mkdir()
    rows = [{"id": f"{g}-{i}", "title": t, "group": g} for g, titles in stories.items() for i, t in enumerate(titles)]
    (directory / "articles.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return directory


def test_evaluate_several_general_format_dirs_with_groups(tmp_path, capsys, embedder):
    news = _write_stories(tmp_path / "news", {
        "quake": ["Earthquake shakes Tokyo", "Tokyo earthquake: buildings damaged", "Aftershocks hit Tokyo"],
        "final": ["Cup final tonight at Wembley", "Wembley cup final: line-ups", "Cup final ends in penalties"],
        "rates": ["Central bank raises interest rates", "Interest rate rise hits mortgages", "Rates up again"],
    })
    more = _write_stories(tmp_path / "more", {
        "fire": ["Wildfire near Athens forces evacuations", "Athens wildfire: thousands evacuated"],
        "vote": ["Parliament passes budget", "Budget vote passes after long debate"],
    })
    rc = main(["evaluate", str(news), str(more), "--half", "all", "--k", "1", "2",
               "--json", str(tmp_path / "out.json")])
    assert rc == 0
    data = json.loads((tmp_path / "out.json").read_text())
    assert [(d["dataset"], d["queries"]) for d in data] == [("news", 9), ("more", 4)]
    assert set(data[0]["strategies"]) == {"default", "embedding", "tfidf", "bm25"}
    # the same story is easy to find here: every strategy's first item is from it most of the time
    assert data[0]["strategies"]["embedding"]["p@1"] >= 0.6
    summary = capsys.readouterr().out.split("== summary")[1]
    assert [line.split()[:2] for line in summary.splitlines()[2:4]] == [["news", "all"], ["more", "all"]]


def test_evaluate_a_missing_dir_is_an_error(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err
