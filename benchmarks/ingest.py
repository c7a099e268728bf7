"""Ingest benchmark: the full ingest path (`Recommender.upsert`, then every box computed as `recommender ingest`
does) against raw `model.encode` of the same texts.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/ingest.py [--n 2000] [--batch-sizes 16,32,64,128]

Texts are the MIND sample's articles as the engine embeds them (`embedding_text`). Prints, in one run:
raw encode rate per batch size (to choose RECOMMENDER_BATCH_SIZE by measurement), raw rate at the configured
batch size, the full path's rate into a fresh data dir without and with the stored boxes, the ratios (targets
>= 90 % without boxes, >= 80 % with them), and the rate of re-ingesting the same, unchanged articles.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MIND = ROOT.parent / "shared" / "data" / "mind-sample"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="articles (the MIND sample has 2,000)")
    ap.add_argument("--batch-sizes", default="16,32,64,128", help="raw encode batch sizes to compare ('' = none)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from recommender.article import embedding_text
    from recommender.embed import Embedder, load_embedder
    from recommender.engine import Recommender
    from recommender.loaders import read_articles
    from recommender.refresher import refresh_queued
    from recommender.settings import Settings

    settings = Settings()
    articles = list(read_articles(MIND))[: args.n]
    texts = [embedding_text(a, settings.body_chars) for a in articles]
    embedder = load_embedder(settings.model, settings.batch_size)
    if not isinstance(embedder, Embedder):
        raise SystemExit(f"{settings.model} is not a sentence-transformers model: this benchmark times model.encode")
    model = embedder.model
    model.encode(texts[:64], batch_size=64)  # warm-up: first-call allocations are not ingest cost

    def raw(batch_size: int) -> float:
        t = time.perf_counter()
        model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)
        return len(texts) / (time.perf_counter() - t)

    print(f"{len(texts)} MIND articles, mean embedded text {sum(map(len, texts)) / len(texts):.0f} chars, "
          f"torch threads {__import__('torch').get_num_threads()}")
    for size in [int(s) for s in args.batch_sizes.split(",") if s]:
        print(f"  raw model.encode, batch {size:>4}: {raw(size):7.1f} articles/s")

    raw_rate = raw(settings.batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        engine = Recommender(Settings(data_dir=Path(tmp)), embedder=embedder)
        t = time.perf_counter()
        result = engine.upsert(articles)
        upserted = time.perf_counter()
        full_rate = len(articles) / (upserted - t)
        assert result.embedded == len(articles), result
        boxes = refresh_queued(engine)
        boxes_rate = len(articles) / (time.perf_counter() - t)
        box_s = time.perf_counter() - upserted
        assert boxes == len(articles) and engine.store.queue_length() == 0
        t = time.perf_counter()
        again = engine.upsert(articles)
        unchanged_rate = len(articles) / (time.perf_counter() - t)
        assert again.embedded == 0 and again.unchanged == len(articles), again
        engine.close()
    # Raw again after the full path, and the mean of both, so drift on a shared machine hits both sides.
    raw_rate = (raw_rate + raw(settings.batch_size)) / 2
    print(f"raw model.encode (batch {settings.batch_size}):   {raw_rate:7.1f} articles/s")
    print(f"full ingest (Recommender.upsert): {full_rate:7.1f} articles/s")
    print(f"ratio full/raw: {full_rate / raw_rate:.1%}  (target >= 90%: {'met' if full_rate / raw_rate >= 0.9 else 'NOT met'})")
    print(f"full ingest with every box computed: {boxes_rate:7.1f} articles/s "
          f"(boxes alone: {boxes / box_s:.0f}/s, {1000 * box_s / boxes:.1f} ms each)")
    print(f"ratio with boxes/raw: {boxes_rate / raw_rate:.1%}  "
          f"(target >= 80%: {'met' if boxes_rate / raw_rate >= 0.8 else 'NOT met'})")
    print(f"re-ingest of unchanged articles:  {unchanged_rate:7.1f} articles/s (0 embedded)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
