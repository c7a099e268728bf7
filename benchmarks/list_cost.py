"""What a list costs in one process, stage by stage: lists ranked on demand (an option set no stored box answers)
and default boxes ranked as the refresher ranks them (not written), this tree against another git revision
(``--compare``), on the same data dir, in fresh processes whose rounds alternate.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/list_cost.py --data-dir DIR [--lists 200] [--rounds 2]
        [--compare REV]

DIR is a built data dir (``benchmarks/serve.py``'s cache, e.g. /tmp/similar-news-bench/serve-1000000); it is only
read (the engine opens it with ``saves=False``). Its files are read through the OS's cache: warm it first (``cat
DIR/candidates.rows DIR/index.faiss DIR/lexical.weights > /dev/null``) for figures from cached pages. Each process
ranks ``?mmr_lambda=0.7&limit=6`` for ``--lists`` random published articles twice (the second pass finds the
articles it parsed kept, as a warm worker does) and prints the second pass: wall and CPU per list, p50 and p99,
and the wall time of each stage (the articles a list shows are read inside ``rank``: that stage includes
them); then ``--lists`` other articles' default boxes, 64 a batch as the refresher ranks them.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from refresh import child_result, comparison_parser, measured_trees  # noqa: E402

BATCH = 64


def _timed(owner: Any, name: str, stage: str, spent: dict[str, float]) -> None:
    """``owner.name`` adding its wall time to ``spent[stage]`` (a stage a tree lacks is left out)."""
    inner: Callable[..., Any] | None = getattr(owner, name, None)
    if inner is None:
        return

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            spent[stage] += time.perf_counter() - start

    setattr(owner, name, timed)


def _measure(data_dir: Path, lists: int) -> dict[str, Any]:
    """Both measurements in this process, with the code of the tree on sys.path."""
    import numpy as np

    import recommender.lexical as lexical
    import recommender.lists as lists_module
    from recommender.engine import Recommender
    from recommender.rank import SimilarQuery
    from recommender.settings import Settings

    engine = Recommender(Settings(data_dir=data_dir), saves=False)
    following, store = engine.following, engine.store
    rng = np.random.default_rng(7)
    keys = rng.choice(store.published_keys(), 2 * lists, replace=False).tolist()
    ids = [article.id for article, _ in store.by_keys(keys[:lists]).values()]
    spent: dict[str, float] = defaultdict(float)
    for owner, name, stage in ((following.index, "search", "FAISS search"), (following.rows, "gather", "rows gather"),
                               (following.rows, "articles", "articles shown"), (lists_module, "rank", "rank"),
                               (following.lexical, "scorer", "lexical scorer"),
                               (lexical.Scorer, "search", "lexical search")):
        _timed(owner, name, stage, spent)
    query = SimilarQuery(mmr_lambda=0.7, limit=6)
    for article_id in ids:  # the first pass: rows parsed, pages faulted in
        engine.similar(article_id, query)
    spent.clear()
    latencies, cpu = [], time.process_time()
    for article_id in ids:
        start = time.perf_counter()
        engine.similar(article_id, query)
        latencies.append(time.perf_counter() - start)
    cpu = time.process_time() - cpu
    return {"wall_ms": 1000 * sum(latencies) / len(ids), "cpu_ms": 1000 * cpu / len(ids),
            "p50_ms": 1000 * float(np.percentile(latencies, 50)), "p99_ms": 1000 * float(np.percentile(latencies, 99)),
            "stages_ms": {stage: 1000 * s / len(ids) for stage, s in sorted(spent.items(), key=lambda kv: -kv[1])},
            "box_cpu_ms": _box_cpu_ms(engine, keys[lists:])}


def _box_cpu_ms(engine: Any, keys: list[int]) -> float:
    """CPU per default box ranked as ``Boxes.refresh`` ranks a batch (one FAISS search for it), not written."""
    import numpy as np

    from recommender.rank import SimilarQuery

    lists, following = engine.lists, engine.following
    query = SimilarQuery(limit=engine.settings.box_depth)
    ranked, cpu = 0, time.process_time()
    for start in range(0, len(keys), BATCH):
        rows = engine.store.by_keys(keys[start:start + BATCH])
        live = [key for key in rows if rows[key][0].is_published]
        k = lists.candidate_count(len(following.blocked_everywhere))
        found = following.index.search(np.stack([rows[key][1] for key in live]), k)[1]
        for key, neighbours in zip(live, found, strict=True):
            article, vector = rows[key]
            lists.rank_list(article, vector, lists.overrides.box(article.id), query, neighbours)
        ranked += len(live)
    return 1000 * (time.process_time() - cpu) / max(ranked, 1)


def _run(tree: Path, args: argparse.Namespace) -> dict[str, Any]:
    """``_measure`` in a fresh process importing the recommender from ``tree``."""
    return child_result(__file__, tree, ["--data-dir", str(args.data_dir), "--lists", str(args.lists)])


def main() -> int:
    ap = comparison_parser(__doc__, "a built data dir (only read)")
    ap.add_argument("--lists", type=int, default=200, help="lists ranked on demand, and boxes ranked, per process")
    args = ap.parse_args()
    if args.child is not None:
        sys.path.insert(0, str(args.child))
        print(json.dumps(_measure(args.data_dir, args.lists)))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        trees = measured_trees(args.compare, Path(tmp))
        print(f"{args.lists} lists ranked on demand (second pass) and {args.lists} boxes per process, {args.data_dir}")
        for _ in range(args.rounds):
            for name, tree in trees:
                r = _run(tree, args)
                stages = ", ".join(f"{stage} {ms:.2f}" for stage, ms in r["stages_ms"].items())
                print(f"  {name:>10}: a list {r['cpu_ms']:.2f} ms CPU, {r['wall_ms']:.2f} wall (p50 {r['p50_ms']:.2f}, "
                      f"p99 {r['p99_ms']:.2f}); a box {r['box_cpu_ms']:.2f} ms CPU\n{'':>14}stages (ms wall a list, rank "
                      f"including the articles shown): "
                      f"{stages}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
