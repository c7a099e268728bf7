"""Scale benchmark: flat, HNSW and IVF-PQ indexes of --n synthetic articles × 384 dims.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/scale.py [--n 1000000] [--hnsw-n 200000] [--queries 300]

Vectors are clustered (unit vectors scattered around --clusters topic centres; queries are held-out points from
the same clusters), which gives more realistic recall than uniform random vectors. Per kind it prints: build
time, file size, time to open (flat: memory-mapped), the opening process's RSS after the searches, search p50/p99
(one query at a time, one thread, as a request does), recall@10 against exact (flat) search, and recall@10 after
re-scoring the index's top 100 exactly (what the engine does: it fetches 100 candidates and scores them with the
stored vectors). Open, RSS and search are measured in a fresh process per kind so that RSS is that kind's alone.
HNSW build time grows ~n log n (about 20 min for 1M on 2 cores), so by default it is built on --hnsw-n articles;
--hnsw-n 0 builds it on all --n.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGETS = "targets: open <= 3 s, RSS <= 1.5 GB, p99 <= 2 ms, recall@10 >= 0.95"


def clustered(n: int, dim: int, clusters: int, seed: int, spread: float = 0.6) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(12345).standard_normal((clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = np.empty((n, dim), dtype=np.float32)
    for lo in range(0, n, 100_000):
        hi = min(n, lo + 100_000)
        x = centres[rng.integers(0, clusters, hi - lo)]
        x += rng.standard_normal((hi - lo, dim)).astype(np.float32) * (spread / np.sqrt(dim))
        out[lo:hi] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def probe(path: str, queries_path: str, k: int, out_path: str) -> None:
    """Child process: open the index, search each query alone, report open time, latencies, RSS, results."""
    import faiss

    from index import load_index

    faiss.omp_set_num_threads(1)
    queries = np.load(queries_path)
    t = time.perf_counter()
    index, meta = load_index(Path(path), mmap=True)
    open_s = time.perf_counter() - t
    found, latencies = [], []
    for q in queries:
        t = time.perf_counter()
        _, keys = index.search(q, k)
        latencies.append(time.perf_counter() - t)
        found.append(keys[0])
    status = Path("/proc/self/status").read_text()
    rss = int(status.split("VmRSS:")[1].split()[0]) * 1024
    np.save(out_path, np.stack(found))
    print(json.dumps({"open_s": open_s, "lat": latencies, "rss": rss, "kind": meta.kind, "mapped": index.read_only}))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--hnsw-n", type=int, default=200_000, help="articles for the HNSW build (0 = --n)")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--clusters", type=int, default=2000)
    ap.add_argument("--kinds", default="flat,hnsw,ivfpq")
    ap.add_argument("--nprobe", default="8,16,32,64", help="IVF-PQ nprobe values to report")
    ap.add_argument("--dir", type=Path, help="where index files go (default: a temp dir, removed)")
    ap.add_argument("--probe", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.probe:
        probe(args.probe[0], args.probe[1], int(args.probe[2]), args.probe[3])
        return 0

    import faiss

    from index import VectorIndex, index_kind_for
    from index.vector_index import _new_ivfpq

    faiss.omp_set_num_threads(os.cpu_count() or 1)
    t = time.perf_counter()
    base = clustered(args.n, args.dim, args.clusters, seed=0)
    queries = clustered(args.queries, args.dim, args.clusters, seed=1)
    keys = np.arange(args.n, dtype=np.int64)
    print(f"{args.n} clustered vectors × {args.dim} dims ({base.nbytes / 2**30:.2f} GiB float32) generated in "
          f"{time.perf_counter() - t:.1f}s; {args.queries} held-out queries; {os.cpu_count()} cores")
    print(TARGETS)

    workdir = args.dir or Path(tempfile.mkdtemp(prefix="similar-news-scale-"))
    workdir.mkdir(parents=True, exist_ok=True)
    qpath = str(workdir / "queries.npy")
    np.save(qpath, queries)
    k, k_candidates = 10, 100

    def truth_for(n: int) -> np.ndarray:
        exact = faiss.IndexFlatIP(args.dim)
        exact.add(base[:n])
        return exact.search(queries, k)[1]

    truths: dict[int, np.ndarray] = {}
    rows = []

    def measure(label: str, index: VectorIndex, n: int, build_s: float) -> None:
        path = workdir / f"{label}.faiss"
        index.save(path, seq=1)
        size = path.stat().st_size
        del index
        out = str(workdir / f"{label}.found.npy")
        child = subprocess.run([sys.executable, __file__, "--probe", str(path), qpath, str(k_candidates), out],
                               capture_output=True, text=True, cwd=ROOT)
        if child.returncode:
            print(child.stderr[-2000:], file=sys.stderr)
            raise SystemExit(f"probe of {label} failed")
        r = json.loads(child.stdout.strip().splitlines()[-1])
        found = np.load(out)
        if n not in truths:
            truths[n] = truth_for(n)
        truth = truths[n]
        recall = np.mean([len(set(found[i, :k]) & set(truth[i])) / k for i in range(len(truth))])
        # Exact re-scoring of the top 100, as the engine scores its candidates with the stored vectors.
        rescored = []
        for i, cand in enumerate(found):
            cand = cand[cand >= 0]
            top = cand[np.argsort(-(base[cand] @ queries[i]))[:k]]
            rescored.append(len(set(top) & set(truth[i])) / k)
        lat = np.array(r["lat"]) * 1000
        rows.append((label, n, build_s, size, r["open_s"], r["rss"], np.percentile(lat, 50), np.percentile(lat, 99),
                     recall, float(np.mean(rescored)), r["mapped"]))
        os.remove(path)

    kinds = args.kinds.split(",")
    if "flat" in kinds:
        t = time.perf_counter()
        index = VectorIndex(args.dim, "flat")
        index.add(keys, base)
        measure("flat", index, args.n, time.perf_counter() - t)
    if "hnsw" in kinds:
        n = args.hnsw_n or args.n
        n = min(n, args.n)
        t = time.perf_counter()
        index = VectorIndex(args.dim, "hnsw")
        for lo in range(0, n, 100_000):
            index.add(keys[lo:lo + 100_000][: n - lo], base[lo:min(n, lo + 100_000)])
        measure("hnsw", index, n, time.perf_counter() - t)
    if "ivfpq" in kinds:
        t = time.perf_counter()
        trained = _new_ivfpq(base)
        trained.add_with_ids(base, keys)
        build_s = time.perf_counter() - t
        for nprobe in [int(x) for x in args.nprobe.split(",")]:
            trained.nprobe = min(nprobe, trained.nlist)
            index = VectorIndex(args.dim, "ivfpq", _index=trained)
            measure(f"ivfpq-nprobe{nprobe}", index, args.n, build_s)

    print(f"\n{'index':<18}{'n':>9}{'build s':>9}{'file MB':>9}{'open s':>8}{'RSS MB':>8}{'p50 ms':>8}"
          f"{'p99 ms':>8}{'rec@10':>8}{'rec@10*':>9}  targets met")
    for label, n, build_s, size, open_s, rss, p50, p99, recall, rescored, mapped in rows:
        met = [("open", open_s <= 3), ("RSS", rss <= 1.5e9), ("p99", p99 <= 2), ("recall", recall >= 0.95)]
        print(f"{label:<18}{n:>9}{build_s:>9.1f}{size / 1e6:>9.0f}{open_s:>8.2f}{rss / 1e6:>8.0f}{p50:>8.3f}"
              f"{p99:>8.3f}{recall:>8.3f}{rescored:>9.3f}  "
              + " ".join(f"{name}:{'yes' if ok else 'NO'}" for name, ok in met) + (" (mmap)" if mapped else ""))
    if not args.dir:
        shutil.rmtree(workdir, ignore_errors=True)
    print("rec@10* = recall@10 after exact re-scoring of the index's top 100 (what the engine's ranking sees)")
    print(f"default kind by index_kind_for(): n=10k {index_kind_for(10_000)}, 100k {index_kind_for(100_000)}, "
          f"1M {index_kind_for(1_000_000)}, 5M {index_kind_for(5_000_000)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
