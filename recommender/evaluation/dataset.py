"""Labelled datasets: articles plus graded relevance judgements ("qrels"), in one general on-disk format.

A labelled dataset is a directory holding ``articles.jsonl`` (the service's article fields; ``id`` and ``title``
required; a ``text`` field, as many public sets name the full text, is read as the body when there is none) and its
judgements, either

- ``qrels.tsv``: ``query_id<TAB>article_id<TAB>grade`` per line, grade >= 1 relevant, higher = more relevant
  (a first line whose grade is not a number is taken as a header), or
- a ``group`` field on articles: articles with the same group report the same story and are relevant to each
  other with grade 2; an optional ``topic`` field makes articles of the same topic (but another or no group)
  relevant with grade 1.

The MIND sample (a directory with ``news.tsv``) is converted on the fly by :func:`from_mind`.
A query never judges itself: self-pairs are dropped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

from recommender.article import Article, InvalidArticle, parse_article
from recommender.candidates import normalized_title
from recommender.loaders import mind_rows, raw_rows

log = logging.getLogger("recommender.evaluation")

# grade per pair: qrels[query_id][article_id] = grade (>= 1 relevant)
Qrels = dict[str, dict[str, int]]

SAME_STORY, SAME_TOPIC = 2, 1

MIND_RULE = (
    "MIND: two articles are relevant to each other with grade 2 when they share the subcategory and at least one "
    "Wikidata entity (of title or abstract), with grade 1 when they only share the subcategory."
)
GROUP_RULE = "groups: same group = grade 2 (same story), same topic only = grade 1."


@dataclass
class LabelledDataset:
    """Articles and graded judgements; ``queries`` are the articles with at least one relevant other article."""

    name: str
    articles: list[Article]
    qrels: Qrels
    rule: str = ""
    skipped: list[str] = field(default_factory=list)  # invalid rows, reported and left out
    # id -> story label, for sets labelled by story (``group``); an article without one is a story of its own.
    # Empty when the judgements name no stories (qrels.tsv, MIND): then ``same_story`` reads the grades.
    stories: dict[str, str] = field(default_factory=dict)
    _copy_keys: dict[str, str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        known = {a.id for a in self.articles}
        cleaned: Qrels = {}
        dropped = 0
        for query, judged in self.qrels.items():
            if query not in known:
                dropped += len(judged)
                continue
            kept = {doc: int(g) for doc, g in judged.items() if doc != query and doc in known and int(g) >= 1}
            dropped += len(judged) - len(kept)
            if kept:
                cleaned[query] = kept
        if dropped:
            log.info("%s: %d judgements name unknown articles, the query itself or grade < 1: ignored",
                     self.name, dropped)
        self.qrels = cleaned

    @property
    def queries(self) -> list[str]:
        """Published articles with at least one relevant other article, in catalogue order."""
        return [a.id for a in self.articles if a.is_published and a.id in self.qrels]

    def units(self) -> dict[str, str]:
        """Each judged article's unit: the connected part of the judgement graph it belongs to (a story, or
        for ECB+ a topic pairing two events, for MIND a subcategory). No relevant pair crosses two units."""
        parent: dict[str, str] = {}

        def root(x: str) -> str:
            while parent.setdefault(x, x) != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for query, judged in self.qrels.items():
            for doc in judged:
                a, b = root(query), root(doc)
                if a != b:
                    parent[a] = b
        return {x: root(x) for x in parent}

    def halves(self, seed: int = 0) -> dict[str, list[str]]:
        """The queries split in a tuning and a reporting half by unit (see ``units``), so that no story is
        in both: units are shuffled with ``seed`` and each goes to the half with fewer queries so far."""
        units = self.units()
        members: dict[str, list[str]] = defaultdict(list)
        for query in self.queries:
            members[units[query]].append(query)
        order = sorted(members)
        random.Random(seed).shuffle(order)
        half: dict[str, list[str]] = {"tuning": [], "reporting": []}
        for unit in order:
            smaller = min(half, key=lambda name: len(half[name]))
            half[smaller] += members[unit]
        position = {q: i for i, q in enumerate(self.queries)}
        return {name: sorted(ids, key=position.__getitem__) for name, ids in half.items()}

    def head(self, n: int) -> LabelledDataset:
        """The first ``n`` articles and the judgements among them (a cheap slice for tests and notebooks)."""
        return LabelledDataset(f"{self.name}[:{n}]", self.articles[:n], self.qrels, self.rule, list(self.skipped),
                               dict(self.stories))

    def relevant(self, query_id: str) -> dict[str, int]:
        return self.qrels.get(query_id, {})

    def same_story(self, a: str, b: str) -> bool | None:
        """Whether two articles report the same story: by their labels when the set has them, else judged
        ``SAME_STORY`` from ``a``; None when nothing says. Two rows with the same title and text are one
        article whatever their labels say (multilingual-dev holds such copies under different labels)."""
        copies = self._copies()
        if a in copies and copies.get(a) == copies.get(b):
            return True
        if self.stories:
            return self.stories.get(a, a) == self.stories.get(b, b)
        judged = self.qrels.get(a)
        return None if judged is None else judged.get(b, 0) >= SAME_STORY

    def _copies(self) -> dict[str, str]:
        """id -> a digest of its normalised title and text, for the articles whose title and text another
        article repeats."""
        if self._copy_keys is None:
            keys = {a.id: hashlib.blake2b(f"{normalized_title(a.title)}\x1f{a.lead}\x1f{a.body}".encode(),
                                          digest_size=8).hexdigest() for a in self.articles}
            repeated = {k for k, n in Counter(keys.values()).items() if n > 1}
            self._copy_keys = {i: k for i, k in keys.items() if k in repeated}
        return self._copy_keys

    def story_reports(self, query_id: str) -> set[str]:
        """The other reports of the query's story (judged ``SAME_STORY``)."""
        return {doc for doc, grade in self.relevant(query_id).items() if grade >= SAME_STORY}

    def save(self, directory: Path) -> Path:
        """Write the dataset in the general format: ``articles.jsonl`` and ``qrels.tsv``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / "articles.jsonl", "w", encoding="utf-8") as fh:
            for article in self.articles:
                row = asdict(article)
                row["tags"] = list(article.tags)
                row["published_at"] = article.published_at.isoformat() if article.published_at else None
                fh.write(json.dumps({k: v for k, v in row.items() if v not in (None, "", [])}, ensure_ascii=False))
                fh.write("\n")
        with open(directory / "qrels.tsv", "w", encoding="utf-8") as fh:
            fh.write("query_id\tarticle_id\tgrade\n")
            for query in sorted(self.qrels):
                for doc, grade in sorted(self.qrels[query].items()):
                    fh.write(f"{query}\t{doc}\t{grade}\n")
        return directory

    def summary(self) -> str:
        pairs = sum(len(v) for v in self.qrels.values())
        strong = sum(1 for v in self.qrels.values() for g in v.values() if g >= SAME_STORY)
        return (f"{self.name}: {len(self.articles)} articles, {len(self.queries)} queries, {pairs} relevant pairs "
                f"({strong} grade >= {SAME_STORY})")


def _add_pair(qrels: Qrels, a: str, b: str, grade: int) -> None:
    if a == b:
        return
    for q, d in ((a, b), (b, a)):
        judged = qrels.setdefault(q, {})
        if judged.get(d, 0) < grade:
            judged[d] = grade


def qrels_from_groups(groups: Mapping[str, str | None], topics: Mapping[str, str | None] | None = None) -> Qrels:
    """Same group = grade 2 for each pair; same topic (not the same group) = grade 1. None/empty = no label."""
    qrels: Qrels = {}
    for labels, grade in ((topics or {}, SAME_TOPIC), (groups, SAME_STORY)):
        members: dict[str, list[str]] = defaultdict(list)
        for article_id, label in labels.items():
            if label not in (None, ""):
                members[str(label)].append(article_id)
        for ids in members.values():
            for a, b in combinations(ids, 2):
                _add_pair(qrels, a, b, grade)
    return qrels


def read_qrels(path: Path) -> Qrels:
    qrels: Qrels = {}
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip() or line.startswith("#"):
                continue
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3:
                raise ValueError(f"{path}:{line_no}: expected query_id<TAB>article_id<TAB>grade")
            try:
                grade = int(float(parts[2]))
            except ValueError:
                if line_no == 1:
                    continue  # header
                raise ValueError(f"{path}:{line_no}: grade {parts[2]!r} is not a number") from None
            if grade >= 1 and parts[0] != parts[1]:
                judged = qrels.setdefault(parts[0], {})
                judged[parts[1]] = max(grade, judged.get(parts[1], 0))
    return qrels


def _articles(rows: Iterable[dict[str, Any]], skipped: list[str]) -> tuple[list[Article], list[dict[str, Any]]]:
    """Valid articles (first occurrence of an id wins) and their raw rows."""
    articles, raws, seen = [], [], set()
    for row in rows:
        try:
            if "_error" in row:
                raise ValueError(row["_error"])
            article = parse_article(_with_body(row))
        except (InvalidArticle, ValueError) as exc:
            skipped.append(str(exc))
            continue
        if article.id in seen:
            skipped.append(f"article {article.id!r}: repeated id, first one kept")
            continue
        seen.add(article.id)
        articles.append(article)
        raws.append(row)
    return articles, raws


def _with_body(row: dict[str, Any]) -> dict[str, Any]:
    """The row with its ``text`` (the full text, as many public sets name it) as its body when it has none and the
    text is not its title again (a headline set's ``text``)."""
    text = row.get("text")
    if row.get("body") or not isinstance(text, str) or text.strip() == str(row.get("title", "")).strip():
        return row
    return {**row, "body": text}


def from_mind(path: Path, limit: int | None = None) -> LabelledDataset:
    """The MIND adapter: ``news.tsv`` → articles (as ``recommender ingest`` reads them) and graded pairs.

    Rule (``MIND_RULE``): same subcategory and at least one shared Wikidata entity = grade 2;
    same subcategory only = grade 1; otherwise not relevant."""
    path = Path(path)
    news = path / "news.tsv" if path.is_dir() else path
    skipped: list[str] = []
    rows = list(mind_rows(news))
    articles, raws = _articles(rows[:limit] if limit else rows, skipped)
    by_subcategory: dict[str, list[tuple[str, set[str]]]] = defaultdict(list)
    for row in raws:
        if row.get("subcategory"):
            by_subcategory[row["subcategory"]].append((row["id"], set(row.get("entities") or ())))
    qrels: Qrels = {}
    for members in by_subcategory.values():
        for (a, ea), (b, eb) in combinations(members, 2):
            _add_pair(qrels, a, b, SAME_STORY if ea & eb else SAME_TOPIC)
    name = news.parent.name if news.name == "news.tsv" else news.stem
    return LabelledDataset(name, articles, qrels, MIND_RULE, skipped)


def load_dataset(path: Path | str, limit: int | None = None) -> LabelledDataset:
    """A labelled dataset from a directory: the MIND sample (``news.tsv``) or the general format.

    ``limit`` keeps the first ``limit`` articles (and the judgements among them)."""
    path = Path(path)
    if (path.is_file() and path.suffix == ".tsv") or (path / "news.tsv").is_file():
        return from_mind(path, limit)
    if not path.is_dir():
        raise FileNotFoundError(f"no such dataset directory: {path}")
    source = next((path / n for n in ("articles.jsonl", "articles.csv") if (path / n).is_file()), None)
    if source is None:
        raise FileNotFoundError(f"{path} holds neither news.tsv (MIND) nor articles.jsonl")
    skipped: list[str] = []
    rows = list(raw_rows(source))
    articles, raws = _articles(rows[:limit] if limit else rows, skipped)
    if (path / "qrels.tsv").is_file():
        qrels, rule = read_qrels(path / "qrels.tsv"), "qrels.tsv"
    elif any(r.get("group") not in (None, "") for r in raws):
        qrels = qrels_from_groups({r["id"]: r.get("group") for r in raws}, {r["id"]: r.get("topic") for r in raws})
        rule = GROUP_RULE
    else:
        raise ValueError(f"{path}: no qrels.tsv and no article carries a 'group': nothing says what is relevant")
    stories = {} if rule != GROUP_RULE else {r["id"]: str(r["group"]) for r in raws if r.get("group") not in (None, "")}
    dataset = LabelledDataset(path.name, articles, qrels, rule, skipped, stories)
    if skipped:
        log.warning("%s: %d invalid rows skipped, e.g. %s", path, len(skipped), skipped[0])
    return dataset
