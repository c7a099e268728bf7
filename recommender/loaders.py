"""Reading article files: JSON Lines, CSV and MIND ``news.tsv``; each row validated into an ``Article``."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from recommender.article import Article, InvalidArticle, parse_article

FORMATS = ("jsonl", "csv", "mind")


class UsageError(ValueError):
    """The file cannot be read as asked (unknown format, unreadable header): nothing was ingested."""


MIND_COLUMNS = ("id", "category", "subcategory", "title", "abstract", "url", "title_entities", "abstract_entities")


def resolve_path(path: Path) -> Path:
    """A directory stands for the corpus file inside it (``news.tsv``, ``articles.jsonl``, ``articles.csv``)."""
    path = Path(path)
    if path.is_dir():
        for name in ("news.tsv", "articles.jsonl", "articles.csv"):
            if (path / name).is_file():
                return path / name
        raise FileNotFoundError(f"{path} holds no news.tsv, articles.jsonl or articles.csv")
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    return path


def detect_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    if suffix == ".tsv":
        return "mind"
    raise UsageError(f"cannot tell the format of {path}; pass --format ({', '.join(FORMATS)})")


def _open_text(path: Path):  # noqa: ANN202 - a text file object
    """UTF-8 with or without a BOM; a byte that is not UTF-8 becomes a lone surrogate, which the article's
    validation rejects (the row is reported and skipped, the file goes on)."""
    return open(path, encoding="utf-8-sig", errors="surrogateescape", newline="")


def _bad_row(path: Path, where: str, problem: str) -> dict[str, Any]:
    return {"id": f"{path.name}:{where}", "_error": f"{where} {problem}"}


def raw_rows(path: Path, fmt: str | None = None) -> Iterator[dict[str, Any]]:
    """The file's rows as dicts with the article fields' names, before validation; a row that cannot be read
    comes as ``{"id": ..., "_error": why}``."""
    path = resolve_path(path)
    fmt = fmt or detect_format(path)
    if fmt == "jsonl":
        yield from jsonl_rows(path)
    elif fmt == "csv":
        yield from csv_rows(path)
    elif fmt == "mind":
        yield from mind_rows(path)
    else:
        raise UsageError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def jsonl_rows(path: Path) -> Iterator[dict[str, Any]]:
    with _open_text(path) as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except (json.JSONDecodeError, RecursionError) as exc:
                yield _bad_row(path, f"line {line_no}", f"is not JSON: {exc}")
                continue
            if isinstance(row, dict):
                yield row
            else:
                yield _bad_row(path, f"line {line_no}", f"is not a JSON object but {type(row).__name__}")


def _csv_records(path: Path, delimiter: str, quoting: Literal[0, 1, 2, 3]) -> Iterator[list[str] | str]:
    """The file's records; one that cannot be parsed comes as the reason."""
    csv.field_size_limit(sys.maxsize)  # a long body is an article, not an error
    with _open_text(path) as fh:
        reader = csv.reader(fh, delimiter=delimiter, quoting=quoting)
        while True:
            try:
                yield next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield f"is not valid CSV: {exc}"


def csv_rows(path: Path) -> Iterator[dict[str, Any]]:
    """CSV with a header row naming the article fields."""
    records = _csv_records(path, ",", csv.QUOTE_MINIMAL)
    header = next(records, [])
    if isinstance(header, str):
        raise UsageError(f"{path}: the header row {header}")
    for n, record in enumerate(records, 2):
        if isinstance(record, str):
            yield _bad_row(path, f"record {n}", record)
        elif any(record):
            yield dict(zip(header, record, strict=False))  # short or long records are read as they are


def mind_rows(path: Path) -> Iterator[dict[str, Any]]:
    """MIND ``news.tsv``: category becomes the section, subcategory and entity labels the tags."""
    for n, row in enumerate(_csv_records(path, "\t", csv.QUOTE_NONE), 1):
        if isinstance(row, str):
            yield _bad_row(path, f"line {n}", row)
            continue
        if not any(row):
            continue
        rec = dict(zip(MIND_COLUMNS, row, strict=False))
        entities = [e for column in ("title_entities", "abstract_entities") for e in _entities(rec.get(column))]
        labels = list(dict.fromkeys(e["Label"] for e in entities if isinstance(e.get("Label"), str) and e["Label"]))
        yield {
            "id": rec.get("id", ""),
            "title": rec.get("title", ""),
            "lead": rec.get("abstract", ""),
            "url": rec.get("url") or None,
            "section": rec.get("category") or None,
            "tags": [t for t in [rec.get("subcategory", "")] + labels if t],
            "language": "en",
            "entities": sorted({e["WikidataId"] for e in entities if isinstance(e.get("WikidataId"), str)}),
            "subcategory": rec.get("subcategory", ""),
        }


def _entities(column: str | None) -> list[dict[str, Any]]:
    """A MIND entity column's objects; anything else there (not JSON, not a list of objects) counts as none."""
    try:
        value = json.loads(column or "[]")
    except (json.JSONDecodeError, RecursionError):
        return []
    return [e for e in value if isinstance(e, dict)] if isinstance(value, list) else []


def read_articles(path: Path, fmt: str | None = None, errors: list[str] | None = None) -> Iterator[Article]:
    """Valid articles from a file; invalid rows are reported into ``errors`` (or raise when it is None)."""
    for row in raw_rows(path, fmt):
        try:
            if "_error" in row:
                raise ValueError(row["_error"])
            yield parse_article(row)
        except (InvalidArticle, ValueError) as exc:
            if errors is None:
                raise
            errors.append(str(exc))
