"""The lexical index at scale: what the writer's checkpoint costs, and what a reading process holds and pays, the
weights derived in the process (counts mapped from ``lexical.counts``) against the weights mapped from the writer's
``lexical.weights`` file, side by side in one run.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/lexical.py [--n 100000]

The corpus (cached under --cache, default /tmp/similar-news-lexical/<n>): --n news-length texts (a real title, then
~1,000 characters of real sentences drawn from the shared corpora's bodies: the vocabulary and the word
frequencies of real news), counted into a ``LexicalIndex`` and saved as the writer saves it. Printed: the counts'
and the weights' save (the writer's checkpoint) and their file sizes; then, each in a fresh process (two at once
for the mapped weights, to show the sharing): open time, the first query (where the in-process weights are
derived), the RSS and PSS the process gained, and the latency of 300 BM25 queries (a corpus text each:
search of the top 201, then the scores of 200 keys: what a list ranked on demand asks).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"
CORPORA = ("mind-sample", "ecbplus-dev", "allsides-dev")
BODY_CHARS = 1000


def corpus_texts(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """(``n`` synthetic news texts, 300 query texts drawn from them)."""
    from recommender.loaders import read_articles

    articles = [a for corpus in CORPORA for a in read_articles(SHARED / corpus)]
    sentences = [s for a in articles if a.body for s in re.split(r"(?<=[.!?])\s+", a.body) if len(s) > 20]
    titles = [a.title for a in articles]
    rng = np.random.default_rng(seed)
    texts = []
    for i in range(n):
        picked = rng.integers(0, len(sentences), 12)
        body = " ".join(sentences[j] for j in picked)[:BODY_CHARS]
        texts.append(f"{titles[i % len(titles)]}\n\n{body}")
    return texts, [texts[i] for i in rng.integers(0, n, 300)]


def build(cache: Path, n: int) -> None:
    from tqdm import tqdm

    from recommender.lexical import LexicalIndex

    if (cache / "lexical.counts").exists():
        print(f"reusing {cache}")
        return
    cache.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    texts, queries = corpus_texts(n)
    print(f"composed {n} texts in {time.perf_counter() - t:.1f}s")
    t = time.perf_counter()
    chunk = 10_000
    index = LexicalIndex()
    index.build_from(tqdm(((list(range(lo, min(n, lo + chunk))), texts[lo:lo + chunk]) for lo in range(0, n, chunk)),
                          total=-(-n // chunk), unit="chunk", desc="counting"))
    print(f"counted {n} texts in {time.perf_counter() - t:.1f}s")
    (cache / "queries.json").write_text(json.dumps(queries))
    index.save(cache / "lexical.counts", seq=1)


def checkpoint(cache: Path) -> None:
    """The writer's checkpoint: the counts' save, then the weights' (timed apart)."""
    from recommender.lexical import LexicalIndex, save_counts, save_weights

    index, _ = LexicalIndex.load(cache / "lexical.counts")
    t = time.perf_counter()
    live = index.live_counts()
    save_counts(cache / "saved.counts", live, seq=1)
    t_counts = time.perf_counter() - t
    t = time.perf_counter()
    save_weights(cache / "lexical.weights", live, seq=1)
    t_weights = time.perf_counter() - t
    nnz = live.counts.nnz
    print(f"\n{len(live.keys)} texts, {nnz:,} term counts ({nnz / max(1, len(live.keys)):.0f} a text), "
          f"{len(live.terms):,} terms")
    print(f"writer's checkpoint: counts saved in {t_counts:.2f}s ({(cache / 'saved.counts').stat().st_size / 2**20:.0f} "
          f"MiB), weights derived and saved in {t_weights:.2f}s "
          f"({(cache / 'lexical.weights').stat().st_size / 2**20:.0f} MiB)")


CHILD = """
import json, sys, time
from pathlib import Path
import numpy as np
from recommender.lexical import LexicalIndex, warm_up

def memory():
    fields = {}
    for line in open("/proc/self/smaps_rollup"):
        parts = line.split()
        if parts[0] in ("Rss:", "Pss:"):
            fields[parts[0][:-1]] = int(parts[1]) / 1024
    return fields

mode, cache = sys.argv[1], Path(sys.argv[2])
queries = json.loads((cache / "queries.json").read_text())
warm_up()  # scikit-learn's import is every process's, not the weights'
before = memory()
t = time.perf_counter()
index = LexicalIndex.map_weights(cache / "lexical.weights")[0] if mode == "mapped" else \\
    LexicalIndex.load(cache / "lexical.counts")[0]
opened = time.perf_counter() - t
t = time.perf_counter()
index.search(queries[0], 201, "bm25")
first = time.perf_counter() - t
keys = np.arange(200)
times = []
for text in queries:
    t = time.perf_counter()
    scorer = index.scorer(text, "bm25")
    scorer.search(201)
    scorer.scores_for(keys)
    times.append(time.perf_counter() - t)
after = memory()
print(json.dumps({"open": opened, "first": first, "p50": float(np.percentile(times, 50)),
                  "p99": float(np.percentile(times, 99)), "rss": after["Rss"] - before["Rss"],
                  "pss": after["Pss"] - before["Pss"]}), flush=True)
sys.stdin.readline()  # held until the other process of the pair has measured too
"""


def measured(mode: str, cache: Path, processes: int) -> list[dict[str, float]]:
    """``processes`` fresh processes reading the index ``mode``'s way at once, each one's figures."""
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, mode, str(cache)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=ROOT) for _ in range(processes)]
    out = []
    for proc in procs:
        assert proc.stdout is not None
        out.append(json.loads(proc.stdout.readline()))
    for proc in procs:
        proc.communicate("\n", timeout=60)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--cache", type=Path, help="default: /tmp/similar-news-lexical/<n>")
    args = ap.parse_args()
    cache = args.cache or Path("/tmp/similar-news-lexical") / str(args.n)
    build(cache, args.n)
    checkpoint(cache)
    print(f"\n{'a reading process':<36}{'open s':>8}{'first query s':>15}{'p50 ms':>8}{'p99 ms':>8}"
          f"{'+RSS MiB':>10}{'+PSS MiB':>10}")
    for mode, processes in (("in-memory", 1), ("mapped", 2), ("in-memory", 1), ("mapped", 2)):
        for i, m in enumerate(measured(mode, cache, processes)):
            label = f"{mode} (counts, weights derived)" if mode == "in-memory" else f"mapped weights, process {i + 1}/2"
            print(f"{label:<36}{m['open']:>8.2f}{m['first']:>15.2f}{m['p50'] * 1e3:>8.2f}{m['p99'] * 1e3:>8.2f}"
                  f"{m['rss']:>10.0f}{m['pss']:>10.0f}")


if __name__ == "__main__":
    main()
