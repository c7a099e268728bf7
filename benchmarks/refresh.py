"""Box refresh benchmark: how many stored boxes a second the refresher recomputes, this tree against another
git revision (``--compare``), side by side on the same data dir.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/refresh.py --data-dir DIR [--boxes 640] [--rounds 2]
        [--compare main] [--profile 25] [--processes 1,2]

DIR is a built data dir (e.g. the one ``benchmarks/serve.py`` builds) and is written to: use a copy. Each round
runs, for each tree in turn, a fresh process that opens the engine as the refresher process does (every row
parsed first, a few boxes refreshed to warm up), queues the same ``--boxes`` published articles' boxes (a fixed sample) and times
``refresh_queued`` (wall clock and the process's CPU time). Rounds alternate the trees so that both meet the
same load. A digest of the refreshed boxes (items, floor and member rows) is printed with each figure: the same digest means
byte-identical boxes. ``--profile N`` prints each tree's N costliest functions (cProfile, cumulative) once.
``--processes 1,2`` measures each tree once per value: the queue computed by that many processes sharing it, as
an import does (the helpers' start included; ``--boxes`` of at least ``refresher.SHARED_MIN``, else one process
computes them all).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _measure(data_dir: Path, boxes: int, profile: int, processes: int) -> dict[str, object]:
    """One refresh of ``boxes`` queued boxes in this process, with the code on sys.path."""
    os.environ["RECOMMENDER_DATA_DIR"] = str(data_dir)
    import numpy as np

    from recommender.engine import Recommender
    from recommender.refresher import refresh_queued
    from recommender.settings import Settings

    with Recommender(Settings()) as engine:
        engine.warm_rows()
        sample = np.random.default_rng(9).choice(engine.store.published_keys(), boxes + 32, replace=False).tolist()
        engine.store.enqueue(sample[boxes:])  # warm-up: scikit-learn's import and the lexical weights are paid
        refresh_queued(engine)  # once per process, not per box
        keys = sample[:boxes]
        engine.store.enqueue(keys)
        profiler = None
        if profile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        wall, cpu = time.perf_counter(), time.process_time()
        # An older tree (--compare) has no ``processes``: it is asked only when measured.
        done = refresh_queued(engine, processes=processes) if processes > 1 else refresh_queued(engine)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if profiler is not None:
            profiler.disable()
        marks = ",".join("?" * len(keys))
        rows = engine.store.read(f"SELECT key, items, floor FROM boxes WHERE key IN ({marks}) ORDER BY key", keys)
        members = engine.store.read(
            f"SELECT box_key, item_key FROM box_members WHERE box_key IN ({marks}) ORDER BY 1, 2", keys)
        # Boxes stored compressed are bytes (the same items give the same bytes).
        digest = hashlib.sha256(json.dumps([[tuple(r) for r in rows], [tuple(m) for m in members]],
                                           default=bytes.hex).encode())

    if profiler is not None:
        import io
        import pstats

        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(profile)
        print(out.getvalue(), file=sys.stderr)
    return {"boxes": done, "wall_s": wall, "cpu_s": cpu, "digest": digest.hexdigest()[:16], "stored": len(rows)}


def _tree_of(revision: str, into: Path) -> Path:
    """The code of ``revision`` (a git revision of this repository), exported under ``into``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def measured_trees(compare: str | None, into: Path) -> list[tuple[str, Path]]:
    """(name, code) of the trees a benchmark measures: ``compare``'s (exported under ``into``), if any, then this one."""
    return ([(compare, _tree_of(compare, into))] if compare else []) + [("this tree", ROOT)]


def child_result(script: str, tree: Path, options: list[str]) -> dict[str, Any]:
    """What ``script --child tree options`` prints last (JSON): a measurement in a fresh process importing the
    recommender from ``tree``."""
    command = [sys.executable, str(Path(script).resolve()), "--child", str(tree), *options]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(command, check=True, stdout=subprocess.PIPE, env=env, text=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _run(tree: Path, args: argparse.Namespace, profile: int, processes: int) -> dict[str, Any]:
    """``_measure`` in a fresh process importing the recommender from ``tree``."""
    return child_result(__file__, tree, ["--data-dir", str(args.data_dir), "--boxes", str(args.boxes),
                                         "--profile", str(profile), "--processes", str(processes)])


def comparison_parser(doc: str | None, data_dir_help: str) -> argparse.ArgumentParser:
    """The options of a benchmark that measures this tree against ``--compare`` in fresh processes (``--child``)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, required=True, help=data_dir_help)
    ap.add_argument("--rounds", type=int, default=2, help="measurements per tree, alternated")
    ap.add_argument("--compare", metavar="REV", help="also measure this git revision's code (e.g. main)")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    return ap


def main() -> int:
    ap = comparison_parser(__doc__, "a built data dir (written to: use a copy)")
    ap.add_argument("--boxes", type=int, default=640, help="boxes queued and refreshed per measurement")
    ap.add_argument("--profile", type=int, default=0, metavar="N", help="print the N costliest functions once")
    ap.add_argument("--processes", default="1", help="processes sharing the queue, one measurement per value")
    args = ap.parse_args()
    if args.child is not None:
        sys.path.insert(0, str(args.child))
        print(json.dumps(_measure(args.data_dir, args.boxes, args.profile, int(args.processes))))
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        trees = measured_trees(args.compare, Path(tmp))
        print(f"{args.boxes} boxes per measurement, data dir {args.data_dir}")
        runs = [(name, tree, int(n)) for name, tree in trees for n in args.processes.split(",")]
        for round_ in range(args.rounds):
            for name, tree, processes in runs:
                load = os.getloadavg()[0]
                r = _run(tree, args, args.profile if round_ == 0 else 0, processes)
                boxes, wall, cpu = int(r["boxes"]), float(r["wall_s"]), float(r["cpu_s"])
                print(f"  {name:>10}, {processes} process(es): {boxes / wall:6.1f} boxes/s wall, "
                      f"{1000 * cpu / boxes:5.2f} ms CPU per box in this process "
                      f"({boxes} boxes, {wall:.2f} s), digest {r['digest']}, load average {load:.1f} -> "
                      f"{os.getloadavg()[0]:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
