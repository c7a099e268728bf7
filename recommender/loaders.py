"""Reading article files: JSON Lines, CSV and MIND ``news.tsv``; each row validated into an ``Article``."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from recommender.article import Article, InvalidArticle, parse_article

FORMATS = ("jsonl", "csv", "mind")
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
    raise ValueError(f"cannot tell the format of {path}; pass --format ({', '.join(FORMATS)})")


def raw_rows(path: Path, fmt: str | None = None) -> Iterator[dict[str, Any]]:
    """The file's rows as dicts with the article fields' names, before validation."""
    path = resolve_path(path)
    fmt = fmt or detect_format(path)
    if fmt == "jsonl":
        with open(path, encoding="utf-8") as fh:
            for line_no, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError as exc:
                        yield {"id": f"{path.name}:{line_no}", "_error": f"line {line_no} is not JSON: {exc}"}
    elif fmt == "csv":
        with open(path, encoding="utf-8", newline="") as fh:
            yield from csv.DictReader(fh)
    elif fmt == "mind":
        yield from mind_rows(path)
    else:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def mind_rows(path: Path) -> Iterator[dict[str, Any]]:
    """MIND ``news.tsv``: category becomes the section, subcategory and entity labels the tags."""
    csv.field_size_limit(sys.maxsize)
    with open(path, encoding="utf-8", newline="") as fh:
        for row in csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
            rec = dict(zip(MIND_COLUMNS, row))
            entities = []
            for column in ("title_entities", "abstract_entities"):
                try:
                    entities += json.loads(rec.get(column) or "[]")
                except json.JSONDecodeError:
                    pass
            labels = list(dict.fromkeys(e.get("Label", "") for e in entities if e.get("Label")))
            yield {
                "id": rec["id"],
                "title": rec.get("title", ""),
                "lead": rec.get("abstract", ""),
                "url": rec.get("url") or None,
                "section": rec.get("category") or None,
                "tags": [t for t in [rec.get("subcategory", "")] + labels if t],
                "language": "en",
                "entities": sorted({e["WikidataId"] for e in entities if e.get("WikidataId")}),
                "subcategory": rec.get("subcategory", ""),
            }


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
