"""Reading article files: formats detected, rows validated, bad rows reported not fatal."""

import json

import pytest

from recommender.loaders import detect_format, read_articles, resolve_path
from tests.conftest import MIND_SAMPLE


def test_mind_directory_resolves_to_its_news_file():
    assert resolve_path(MIND_SAMPLE).name == "news.tsv"
    assert detect_format(resolve_path(MIND_SAMPLE)) == "mind"


def test_mind_rows_map_to_articles():
    first = next(iter(read_articles(MIND_SAMPLE)))
    assert first.id == "N34700"
    assert first.section == "news" and first.tags[0] == "newspolitics"
    assert "Fort Lauderdale, Florida" in first.tags
    assert first.lead.startswith("As music blasted")


def test_jsonl_with_a_bad_row_reports_it_and_keeps_the_rest(tmp_path):
    path = tmp_path / "a.jsonl"
    rows = [{"id": "1", "title": "ok"}, {"id": "2", "title": ""}, "not json", {"id": "3", "title": "fine"}]
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows))
    errors: list[str] = []
    assert [a.id for a in read_articles(path, errors=errors)] == ["1", "3"]
    assert len(errors) == 2 and "title" in errors[0] and "not JSON" in errors[1]


def test_csv_columns_become_fields(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("id,title,published_at,tags\n7,Hello,2024-05-01T08:00:00+03:00,war|peace\n")
    [a] = read_articles(path)
    assert a.tags == ("war", "peace") and a.published_at.utcoffset().total_seconds() == 3 * 3600


def test_unknown_extension_asks_for_format(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("x")
    with pytest.raises(ValueError, match="--format"):
        detect_format(path)
