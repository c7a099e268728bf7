"""An import's embedding in one process against several (RECOMMENDER_EMBED_PROCESSES), side by side:

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/embed_processes.py --n 3000 --processes 1,2 --rounds 2

``Recommender.upsert`` of ``--n`` news-length articles (the ECB+ dev set's, title + 1,000 characters of body,
repeated under fresh ids) into a fresh data dir, with each process count in turn, ``--rounds`` times alternated;
the boxes are queued, not computed (``benchmarks/ingest.py`` times those). The time includes the pool's start.
Prints articles/s of each round, and each count's best against one process's best."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ECBPLUS = ROOT.parent / "shared" / "data" / "ecbplus-dev"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--processes", default="1,2", help="process counts, compared with the first")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from recommender.engine import Recommender
    from recommender.loaders import read_articles
    from recommender.settings import Settings

    base = list(read_articles(ECBPLUS))
    articles = [replace(base[i % len(base)], id=f"{base[i % len(base)].id}#{i // len(base)}") for i in range(args.n)]
    counts = [int(p) for p in args.processes.split(",")]
    best = dict.fromkeys(counts, 0.0)
    print(f"{len(articles)} ECB+ articles, model {Settings().model}, {os.cpu_count()} cores")
    for round_ in range(1, args.rounds + 1):
        for processes in counts:
            with tempfile.TemporaryDirectory() as tmp, Recommender(Settings(data_dir=Path(tmp))) as engine:
                engine.embedder.encode(["warm-up"])  # the model loaded here: the pool's own start is counted
                started = time.perf_counter()
                result = engine.upsert(articles, processes=processes)
                rate = len(articles) / (time.perf_counter() - started)
                assert result.embedded == len(articles), result
            best[processes] = max(best[processes], rate)
            print(f"round {round_}: {processes} process(es) {rate:7.1f} articles/s", flush=True)
    first = best[counts[0]]
    for processes in counts:
        print(f"best of {args.rounds}, {processes} process(es): {best[processes]:7.1f} articles/s  "
              f"{best[processes] / first:5.2f}x")


if __name__ == "__main__":
    main()
