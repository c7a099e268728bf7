"""notebooks/evaluation.ipynb runs top to bottom, so it cannot rot."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[3] / "notebooks" / "evaluation.ipynb"


def test_the_evaluation_notebook_runs_and_shows_the_table_and_plots(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    for row in ("default", "embedding", "tfidf", "bm25", "no story grouping", "more diversity", "ecbplus-dev",
                "allsides-dev", "reporting", "alpha_ndcg@10", "ci_low", "plain-vs-default/plain", "min_detectable"):
        assert row in html
    assert sum(1 for o in outputs if "image/png" in o.get("data", {})) >= 5  # the experiment's report too
