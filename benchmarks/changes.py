"""Reading a store's changes: time and peak memory of ``changes_since`` over an --n article store, the old read
(one ``fetchall`` of every changed row, bodies and vectors included) against the paged one (``CHANGES_CHUNK`` rows
per read), side by side in one run.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/changes.py [--n 20000] [--rounds 3] [--body-chars 4000]

The store (SQLite, cached under --cache, default /tmp/similar-news-changes): --n articles with the shared corpora's
real titles and leads, bodies of real news text (ECB+ bodies joined to about --body-chars characters) and random
unit 512-d vectors, written 1,000 per transaction; then 1 % of them deleted and one more written alone. Two reads
are timed: everything (``changes_since(0)``: what a rebuild reads) and the last write alone (what a follow
reads). Each read runs in a fresh process that consumes the changes one by one and keeps none of them, so the
peak is what the read itself holds: the peak RSS (VmHWM, reset just before) minus the RSS before the read. Rounds alternate
the two reads; time is the median, memory the largest.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"
CORPORA = ("mind-sample", "ecbplus-dev", "allsides-dev")
DIM = 512


def build_store(path: Path, n: int, body_chars: int) -> None:
    """The --n article store described in the module's docstring, written at ``path``."""
    from dataclasses import replace

    from recommender.loaders import read_articles
    from recommender.store.sqlite import SQLiteStore

    articles = [a for corpus in CORPORA for a in read_articles(SHARED / corpus)]
    texts = [a.body for a in articles if a.body]
    rng = np.random.default_rng(0)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    store = SQLiteStore(tmp)
    for lo in range(0, n, 1000):
        rows = []
        for i in range(lo, min(n, lo + 1000)):
            body, j = "", i
            while len(body) < body_chars:
                body += texts[j % len(texts)] + "\n\n"
                j += 7
            vector = rng.standard_normal(DIM).astype(np.float32)
            rows.append((replace(articles[i % len(articles)], id=f"x{i}", body=body[:body_chars]), "bench",
                         vector / np.linalg.norm(vector)))
        store.upsert(rows)
    for i in range(0, n, 100):
        store.delete(f"x{i}")
    store.upsert([(replace(articles[0], id="last"), "bench", np.ones(DIM, dtype=np.float32) / DIM ** 0.5)])
    store.close()
    tmp.replace(path)


def old_changes_since(store, seq: int) -> Iterator:
    """``changes_since`` as it was: every changed row fetched at once, then turned into changes."""
    from recommender.store.articles import _COLUMNS, Change, _row_article, _vector

    rows = store._reader.execute(
        f"SELECT {_COLUMNS}, vector FROM articles WHERE seq > ? ORDER BY +key", (seq,)).fetchall()
    deleted = store._reader.execute("SELECT key FROM tombstones WHERE seq > ? ORDER BY key", (seq,)).fetchall()
    for row in rows:
        yield Change(row["key"], row["status"] == "published", _vector(row["vector"]), _row_article(row))
    for row in deleted:
        yield Change(row[0], False, None)


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(field + ":"))


def _reset_peak() -> None:
    """Start the process's peak RSS (VmHWM) over from its RSS now (Linux 4.0 and later), so that the peak after a
    read is the read's own, not the imports' before it."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def probe(path: str, how: str, which: str) -> None:
    """One read in this process; prints its figures as JSON."""
    from recommender.store.sqlite import SQLiteStore

    store = SQLiteStore(Path(path))
    seq = 0 if which == "all" else store.seq - 1
    changes = old_changes_since(store, seq) if how == "old" else store.changes_since(seq)
    _reset_peak()
    before = _status_kb("VmRSS")
    started = time.perf_counter()
    count, total = 0, 0.0
    for change in changes:  # used and dropped, as a rebuild adds a batch and drops it
        count += 1
        if change.vector is not None:
            total += float(change.vector[0]) + len(change.live_article.body)
    elapsed = time.perf_counter() - started
    peak = _status_kb("VmHWM")
    print(json.dumps({"s": elapsed, "mb": max(0, peak - before) / 1024, "count": count}))


def measure(path: Path, how: str, which: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--probe", str(path), how, which], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000, help="articles in the store")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--body-chars", type=int, default=4000, help="characters of each body")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/similar-news-changes"))
    parser.add_argument("--probe", nargs=3, metavar=("STORE", "HOW", "WHICH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        probe(*args.probe)
        return 0
    from recommender.store.articles import CHANGES_CHUNK

    args.cache.mkdir(parents=True, exist_ok=True)
    path = args.cache / f"changes-{args.n}-{args.body_chars}.sqlite3"
    if not path.exists():
        started = time.perf_counter()
        build_store(path, args.n, args.body_chars)
        print(f"built {path} in {time.perf_counter() - started:.0f}s")
    print(f"{args.n:,} articles (bodies {args.body_chars:,} chars, {DIM}-d vectors), store "
          f"{path.stat().st_size / 2**20:.0f} MB; {args.rounds} rounds, time the median, memory the largest")
    results: dict[tuple[str, str], list[dict]] = {}
    for _ in range(args.rounds):
        for which in ("all", "last"):
            for how in ("old", "paged"):
                results.setdefault((which, how), []).append(measure(path, how, which))
    print(f"{'read':<28}{'old (one fetchall)':>26}{f'paged ({CHANGES_CHUNK:,} rows a read)':>32}")
    for which, label in (("all", "everything (seq 0)"), ("last", "the last write (a follow)")):
        cells = []
        for how in ("old", "paged"):
            runs = results[(which, how)]
            seconds = statistics.median(r["s"] for r in runs)
            time_text = f"{seconds:.2f} s" if seconds >= 0.1 else f"{seconds * 1000:.1f} ms"
            cells.append(f"{runs[0]['count']:,} in {time_text}, +{max(r['mb'] for r in runs):.0f} MB")
        print(f"{label:<28}{cells[0]:>26}{cells[1]:>32}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
