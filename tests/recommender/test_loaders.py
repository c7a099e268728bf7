"""Reading article files: formats detected, rows validated, bad rows reported not fatal."""

import csv
import io
import json
from dataclasses import asdict

import hypothesis
import pytest
from hypothesis import strategies as st

from recommender.article import parse_article
from recommender.loaders import FORMATS, detect_format, read_articles, resolve_path
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


def _read(path, fmt=None) -> tuple[list[str], list[str]]:
    errors: list[str] = []
    return [a.id for a in read_articles(path, fmt, errors=errors)], errors


@pytest.mark.parametrize("bad_line", [b"null", b"5", b'"a string"', b"[1, 2]", b'{"id": "b", "title": "\xff\xfe"}',
                                      b"\xc3\x28 not utf-8", b"[" * 100_000])
def test_jsonl_rows_that_are_not_articles_are_skipped_not_fatal(tmp_path, bad_line):
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"id": "1", "title": "ok"}\n' + bad_line + b'\n{"id": "3", "title": "fine"}\n')
    ids, errors = _read(path)
    assert ids == ["1", "3"] and len(errors) == 1


def test_a_utf8_bom_is_not_part_of_the_first_row(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(b'\xef\xbb\xbf{"id": "1", "title": "ok"}\n')
    (tmp_path / "a.csv").write_bytes(b"\xef\xbb\xbfid,title\n1,ok\n")
    assert _read(tmp_path / "a.jsonl") == (["1"], [])
    assert _read(tmp_path / "a.csv") == (["1"], [])


def test_csv_long_fields_and_bad_bytes(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes(b"id,title,body\n1,ok," + b"x" * 200_000 + b"\n2,bad \xff byte,b\n3,fine,\n")
    ids, errors = _read(path)
    assert ids == ["1", "3"] and "title" in errors[0]


def test_mind_entity_columns_that_are_not_lists_are_ignored(tmp_path):
    path = tmp_path / "news.tsv"
    rows = ["N1\tnews\tsub\tTitle one\tabs\thttps://x.example/1\t{\"Label\": \"x\"}\t5",
            "N2\tnews\tsub\tTitle two\tabs\thttps://x.example/2\t[1, \"a\", {\"Label\": 7}]\tnot json",
            "", "N3\tnews\tsub\tTitle \udcff three\tabs\t\t[]\t[]"]
    path.write_bytes("\n".join(rows).encode("utf-8", "surrogateescape"))
    ids, errors = _read(path)
    assert ids == ["N1", "N2"] and len(errors) == 1


def test_unknown_extension_is_a_usage_error_from_the_cli(tmp_path, capsys):
    from recommender.cli import main

    path = tmp_path / "a.txt"
    path.write_text('{"id": "1", "title": "t"}\n')
    assert main(["ingest", str(path)]) == 2
    assert "--format" in capsys.readouterr().err


ODD = ["", " ", "\u200b", "\x00", "\ud800", " N9", "a/b", "I\x00D", "<" * 200, "javascript:x", "https://x.example/a",
       "2024-01-01T10:00:00", "2024-01-01T10:00:00+02:00", "published", "draft", "a|b", '"', "\t", "\n", ",", "🇺🇦"]
TEXT = st.one_of(st.sampled_from(ODD), st.text(max_size=20))
VALUE = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), TEXT),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3), max_leaves=8)
FIELDS = ["id", "title", "lead", "body", "url", "published_at", "section", "tags", "language", "image_url", "status"]
WORDS = st.from_regex(r"[A-Za-z][A-Za-z ]{0,30}", fullmatch=True)
# Half of them nearly valid, so that rows get through the readers into the store, not only into the errors.
ROW = st.one_of(st.dictionaries(st.sampled_from(FIELDS), st.one_of(TEXT, VALUE), min_size=1),
                st.fixed_dictionaries({"id": st.from_regex(r"fz[0-9]{1,6}", fullmatch=True), "title": WORDS},
                                      optional={f: st.one_of(WORDS, TEXT, VALUE) for f in FIELDS[2:]}))


def _file_bytes(fmt: str, rows: list[dict], junk: bytes, bom: bool) -> bytes:
    """Rows written as a careless exporter would (surrogates as raw bytes), with ``junk`` spliced in the middle."""
    if fmt == "jsonl":
        lines = [json.dumps(r, ensure_ascii=False).encode("utf-8", "surrogatepass") for r in rows]
    elif fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(FIELDS)
        writer.writerows([[str(r.get(f, "")) for f in FIELDS] for r in rows])
        lines = out.getvalue().encode("utf-8", "surrogatepass").split(b"\n")
    else:
        lines = [b"\t".join(str(r.get(f, "")).encode("utf-8", "surrogatepass") for f in FIELDS[:8]) for r in rows]
    lines.insert(len(lines) // 2, junk)
    return (b"\xef\xbb\xbf" if bom else b"") + b"\n".join(lines)


def test_no_file_makes_a_reader_crash_and_what_they_accept_ingests(tmp_path, engine):
    accepted: dict[str, object] = {}

    @hypothesis.settings(max_examples=100, deadline=None, database=None, derandomize=True,
                         suppress_health_check=list(hypothesis.HealthCheck))
    @hypothesis.given(fmt=st.sampled_from(FORMATS), rows=st.lists(ROW, max_size=6), junk=st.binary(max_size=30),
                      bom=st.booleans())
    def check(fmt, rows, junk, bom):
        path = tmp_path / f"fuzz.{fmt}"
        path.write_bytes(_file_bytes(fmt, rows, junk, bom))
        errors: list[str] = []
        for article in read_articles(path, fmt, errors=errors):
            assert parse_article(asdict(article) | {"tags": list(article.tags)}) == article  # valid, and stable
            accepted[article.id] = article
        assert all(isinstance(e, str) for e in errors)

    check()
    assert accepted, "the fuzz never produced a valid article"
    engine.upsert(accepted.values())  # what the readers let through, the store and the index take
    assert all(engine.get(i) == a for i, a in accepted.items())
