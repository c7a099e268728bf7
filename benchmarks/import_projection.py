"""An archive import measured on every real article of the shared sets and projected to 1M (issue 25):

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/import_projection.py [--n 18961] [--archive 1000000]
        [--texts news|as-is] [--boxes-at DIR [--boxes-sample 20000]]

The five shared sets' articles (MIND, ECB+, AllSides, the Russian headlines, the multilingual set: ~19k real
texts in 8 languages, shuffled, each under an id of its own; by default each body filled up to news length with
real sentences of the sets' bodies, since half the sets' texts are headlines) are imported as ``recommender
ingest`` imports a file, into a fresh data dir: embedded and written (``Recommender.upsert``, ``RECOMMENDER_EMBED_PROCESSES``), the
index built as the kind a 1M archive gets (``hnswsq``: the ingest rebuilds it so once it outgrows ``flat``), then
every box computed (``refresh_queued``, ``RECOMMENDER_BOX_PROCESSES``). The same is done first with a quarter of
the articles. Each step's time is projected to ``--archive`` articles, and the basis of each projection printed:

- embedding and writes: linear in the articles at the rate of the last three quarters of the import (each
  chunk's work does not grow with the corpus: the rate of each quarter is printed to show it), plus what the
  first quarter paid more once (the embedding processes' start);
- the index: HNSW's insertions cost ~log n each, so n log n;
- the boxes: a box's cost grows with the corpus (longer postings, more candidates near each), fitted as a power
  of n through the two sizes, or through the larger and a sample of the boxes of a larger data dir
  (``--boxes-at``, e.g. the 100k one ``benchmarks/serve.py`` builds: 2,000 real articles, the rest synthetic).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import re
import shutil
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from recommender.article import Article
    from recommender.store.articles import ArticleStore

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SETS = ("mind-sample", "ecbplus-dev", "allsides-dev", "ru-headlines-dev", "multilingual-dev")
TARGET_MIN = 90.0  # issue 25: embedding, index and every box of 1M articles on 2 cores


@dataclass(frozen=True)
class Import:
    """One import's steps, in seconds."""

    articles: int
    embedding: float
    quarters: list[float]  # articles/s over each quarter of the embedding and writes
    index: float
    boxes: float
    box_count: int


def real_articles() -> list[Article]:
    """Every article of the shared sets, shuffled (the same order each run), ids made unique across the sets."""
    from recommender.loaders import read_articles

    data = ROOT.parent / "shared" / "data"
    articles = [replace(a, id=f"{name}/{a.id}") for name in SETS for a in read_articles(data / name)]
    random.Random(25).shuffle(articles)
    return articles


def news_length(articles: Sequence[Article], body_chars: int) -> list[Article]:
    """``articles`` with each body filled up to ``body_chars`` with real sentences of the sets' bodies (of the
    same language where the sets have some): an archive's articles have bodies, and the embedding's cost grows
    with the text (half the sets' texts are headlines or a title and an abstract)."""
    sentences: dict[str | None, list[str]] = defaultdict(list)
    for article in articles:
        sentences[article.language] += [s for s in re.split(r"(?<=[.!?])\s+", article.body) if len(s) > 20]
    every = [s for found in sentences.values() for s in found]
    rng = random.Random(25)
    filled = []
    for article in articles:
        pool, body = sentences.get(article.language) or every, article.body
        while len(body) < body_chars:
            body = f"{body} {rng.choice(pool)}".strip()
        filled.append(replace(article, body=body))
    return filled


class QuarterClock:
    """The times an import's store reaches each quarter of ``total`` articles (read every 0.2 s beside it)."""

    def __init__(self, store: ArticleStore, total: int):
        self.store, self.total = store, total
        self.marks = [time.perf_counter()]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.2) and len(self.marks) < 4:
            if self.store.count() >= len(self.marks) * self.total / 4:
                self.marks.append(time.perf_counter())

    def rates(self) -> list[float]:
        """Articles/s over each quarter (the last one ends now)."""
        self._stop.set()
        self._thread.join()
        marks = [*self.marks, time.perf_counter()]
        return [self.total / 4 / (b - a) for a, b in zip(marks, marks[1:], strict=False)]


def imported(articles: Sequence[Article], data_dir: Path) -> Import:
    """``articles`` imported into a fresh ``data_dir`` as ``recommender ingest`` does, each step timed."""
    from recommender.embedpool import embedding_processes
    from recommender.engine import Recommender
    from recommender.locks import refresher_lock
    from recommender.refresher import import_processes, refresh_queued
    from recommender.settings import Settings

    settings = Settings(data_dir=data_dir)
    lock = refresher_lock(settings)
    try:
        with Recommender(settings) as engine:
            engine.embedder.encode(["warm-up"])  # the model's load is not the import's (the pool's start is)
            clock = QuarterClock(engine.store, len(articles))
            # As the ingest does: it holds the refresher lock from its first write (nothing else computes boxes).
            engine.upsert(articles, processes=embedding_processes(settings),
                          refresher=lock if lock.try_exclusive() else None)
            embedded, quarters = time.perf_counter(), clock.rates()
            started = clock.marks[0]
            engine.rebuild_index("hnswsq")  # what the ingest of a large archive does before its boxes
            indexed = time.perf_counter()
            boxes = refresh_queued(engine, processes=import_processes(settings))
            done = time.perf_counter()
    finally:
        lock.release()
    return Import(len(articles), embedded - started, quarters, indexed - embedded, done - indexed, boxes)


@dataclass(frozen=True)
class Sampled:
    """Boxes timed on a larger data dir: its articles, a box's wall time once every box process runs, and what
    a computation paid once before that (the helper processes' start: imports, opening the data dir, their rows
    parsed), fitted through two samples of its boxes."""

    articles: int
    per_box: float
    start: float


def boxes_sampled(source: Path, sample: int) -> Sampled:
    """Boxes timed on a copy of the larger data dir ``source``, its files read through first: a quarter of
    ``sample`` of its boxes deleted, queued and computed as an import computes its own (every box and member row
    inserted, into tables holding nearly all the others: an import's last boxes), then ``sample``, this process's
    rows parsed first (an import's parse is spread over a million boxes, not a sample's few thousand; the helpers
    parse theirs in the time, as an import's do). A sample's wall time is the helpers' start plus its boxes: one
    sample alone charged its start (12.9-15.2 s at 1M) to its boxes: 3.31 ms a box of 20,000, 2.27 fitted."""
    import numpy as np

    from recommender.engine import Recommender
    from recommender.refresher import import_processes, refresh_queued
    from recommender.settings import Settings
    from recommender.store.boxes import drop_boxes

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp) / "data")
        shutil.copytree(source, settings.data_dir)
        for path in settings.data_dir.iterdir():  # in the page cache, as an import's files are: it just wrote them
            with path.open("rb") as file:
                while file.read(1 << 24):
                    pass
        with Recommender(settings) as engine:
            with engine.store.transaction() as conn:  # a data dir built without its boxes has them all queued
                conn.execute("DELETE FROM refresh_queue")
            engine.warm_rows()
            keys = engine.store.published_keys()
            rng = np.random.default_rng(25)
            timed = []
            for count in (sample // 4, sample):
                chosen = rng.choice(keys, min(count, len(keys)), replace=False).tolist()
                with engine.store.transaction() as conn:  # computed afresh, as an import's are: none stored yet
                    drop_boxes(conn, chosen)
                engine.store.enqueue(chosen)
                started = time.perf_counter()
                done = refresh_queued(engine, processes=import_processes(settings))
                timed.append((done, time.perf_counter() - started))
                print(f"  {done:,} boxes of {source}: {timed[-1][1]:.1f} s", flush=True)
    (few, few_s), (many, many_s) = timed
    per_box = (many_s - few_s) / max(many - few, 1)
    return Sampled(len(keys), per_box, max(0.0, few_s - few * per_box))


def projection(large: Import, boxes: list[tuple[int, float]], archive: int,
               start: float = 0.0) -> list[tuple[str, float, str]]:
    """Each step's minutes for ``archive`` articles, with the basis of its projection; ``boxes``: (articles, a
    box's wall time) at each size measured, the power fitted through the two largest; ``start``: seconds the box
    computation pays once (``Sampled.start``)."""
    n, scale = large.articles, archive / large.articles
    (n0, box0), (n1, box1) = sorted(boxes)[-2:]
    power = max(0.0, math.log(box1 / box0) / math.log(n1 / n0))  # a box never gets cheaper with the corpus
    box_at_archive = box1 * (archive / n1) ** power
    measured = ", ".join(f"{box * 1000:.2f} ms at {size:,}" for size, box in sorted(boxes))
    # The first quarter pays the embedding processes' start, once: the rest of the import is projected from the
    # steady rate of the other three.
    steady = 3 / sum(1 / rate for rate in large.quarters[1:])
    first = large.embedding - n / steady
    return [
        ("embedding and writes", (archive / steady + first) / 60,
         f"linear at the last three quarters' {steady:.1f} articles/s, plus the {first:.1f} s the first paid more"),
        ("index (hnswsq)", large.index * scale * math.log(archive) / math.log(n) / 60,
         f"n log n: {large.index:.1f} s for {n:,}"),
        ("boxes", (archive * box_at_archive + start) / 60,
         f"a box's wall time {measured}: fitted as n^{power:.2f} through the two largest, "
         f"{box_at_archive * 1000:.2f} ms at {archive:,}, plus {start:.1f} s of the box processes' start"),
    ]


def report(run: Import) -> None:
    quarters = ", ".join(f"{rate:.0f}" for rate in run.quarters)
    print(f"{run.articles:,} articles: embedded and written in {run.embedding:.1f} s "
          f"({run.articles / run.embedding:.1f}/s; by quarter {quarters}/s), index built as hnswsq in "
          f"{run.index:.1f} s, {run.box_count:,} boxes in {run.boxes:.1f} s ({run.box_count / run.boxes:.1f}/s)",
          flush=True)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=0, help="articles imported (default: all of the shared sets')")
    parser.add_argument("--archive", type=int, default=1_000_000, help="the archive size projected to")
    parser.add_argument("--texts", choices=("news", "as-is"), default="news",
                        help="news: bodies filled to RECOMMENDER_BODY_CHARS with real sentences (default); as-is")
    parser.add_argument("--boxes-at", type=Path, metavar="DIR",
                        help="also time boxes on (a copy of) this larger data dir, e.g. benchmarks/serve.py's")
    parser.add_argument("--boxes-sample", type=int, default=20_000,
                        help="boxes timed on --boxes-at (after a quarter as many: the two fit the processes' start)")
    return parser.parse_args()


def articles_to_import(n: int, texts: str, body_chars: int) -> list[Article]:
    """The first ``n`` (0: all) of the shared sets' articles, at news length unless ``texts`` is "as-is"."""
    from recommender.article import embedding_text
    from recommender.refresher import SHARED_MIN

    articles = real_articles()
    articles = articles[:n] if n else articles
    if len(articles) // 4 < SHARED_MIN:
        raise SystemExit(f"--n {len(articles)}: a quarter under {SHARED_MIN} articles computes its boxes in one "
                         f"process, the whole in several: give --n {4 * SHARED_MIN} or more")
    articles = news_length(articles, body_chars) if texts == "news" else articles
    mean = sum(len(embedding_text(a, body_chars)) for a in articles) / len(articles)
    print(f"{len(articles):,} articles, {texts} texts (embedded: {mean:.0f} characters on average)")
    return articles


def main() -> None:
    args = arguments()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from recommender.settings import Settings

    settings = Settings()
    articles = articles_to_import(args.n, args.texts, settings.body_chars)
    print(f"model {settings.model}, {os.cpu_count()} cores, embedding processes "
          f"{settings.embed_processes or 'one per core'}, box processes {settings.box_processes or 'one per core'}")
    runs = []
    for count in (len(articles) // 4, len(articles)):
        with tempfile.TemporaryDirectory() as tmp:
            runs.append(imported(articles[:count], Path(tmp)))
        report(runs[-1])
    boxes = [(run.articles, run.boxes / max(run.box_count, 1)) for run in runs]
    start = 0.0
    if args.boxes_at:
        sampled = boxes_sampled(args.boxes_at, args.boxes_sample)
        boxes.append((sampled.articles, sampled.per_box))
        start = sampled.start
        print(f"boxes of {args.boxes_at} ({sampled.articles:,} articles): {sampled.per_box * 1000:.2f} ms a box "
              f"once every box process runs, {start:.1f} s before (fitted through the two samples)", flush=True)
    steps = projection(runs[1], boxes, args.archive, start)
    for name, minutes, basis in steps:
        print(f"  {args.archive:,} articles, {name}: {minutes:.1f} min  ({basis})")
    total = sum(minutes for _, minutes, _ in steps)
    print(f"  {args.archive:,} articles, the whole import: {total:.0f} min  (target <= {TARGET_MIN:.0f} min: "
          f"{'met' if total <= TARGET_MIN else 'NOT met'})")


if __name__ == "__main__":
    main()
