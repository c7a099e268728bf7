"""The ``recommender`` command: ingest article files, serve the API, evaluate strategies."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from recommender.settings import Settings


def _ingest(args: argparse.Namespace, settings: Settings) -> int:
    from recommender.engine import Recommender
    from recommender.loaders import FORMATS, raw_rows, read_articles

    if args.format and args.format not in FORMATS:
        raise SystemExit(f"--format must be one of {', '.join(FORMATS)}")
    total = sum(1 for _ in raw_rows(args.path, args.format))
    engine = Recommender(settings)
    errors: list[str] = []
    started = time.perf_counter()
    result = engine.upsert(read_articles(args.path, args.format, errors), progress=True, total=total)
    boxes = _refresh_boxes(engine)
    engine.close()
    elapsed = time.perf_counter() - started
    print(f"ingested {total - len(errors)} articles in {elapsed:.1f}s ({(total - len(errors)) / elapsed:.1f}/s): "
          f"{result.created} new, {result.updated} updated, {result.unchanged} unchanged, "
          f"{result.embedded} embedded; {len(engine.index)} in the index; {boxes}")
    for line in errors[:20]:
        print(f"skipped: {line}", file=sys.stderr)
    if len(errors) > 20:
        print(f"... and {len(errors) - 20} more invalid rows", file=sys.stderr)
    return 1 if errors and len(errors) == total else 0


def _refresh_boxes(engine) -> str:
    """Compute the queued boxes here, unless a running server's refresher holds the lock (it does them)."""
    from recommender.locks import FileLock
    from recommender.refresher import refresh_queued

    lock = FileLock(engine.settings.data_dir / "refresher.lock")
    if not lock.try_exclusive():
        return f"{engine.store.queue_length()} boxes queued for the running server's refresher"
    try:
        return f"{refresh_queued(engine, progress=True)} boxes computed"
    finally:
        lock.release()


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from service.app import OpenWritesRefused, create_app

    host = args.host or settings.host
    port = args.port or settings.port
    workers = args.workers or settings.workers or os.cpu_count() or 1
    threads = settings.embed_threads or 1
    settings = settings.model_copy(update={"host": host, "port": port, "embed_threads": threads})
    try:
        app = create_app(settings)
    except OpenWritesRefused as exc:
        raise SystemExit(f"error: {exc}") from None
    if workers == 1:
        uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)
        return 0
    # Each worker process builds its app from the environment; they follow one store (README, Concurrency).
    os.environ.update(RECOMMENDER_HOST=host, RECOMMENDER_PORT=str(port), RECOMMENDER_EMBED_THREADS=str(threads))
    uvicorn.run("service.app:app_from_env", factory=True, workers=workers, host=host, port=port,
                log_level="info", access_log=False)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="recommender", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    ingest = sub.add_parser("ingest", help="load articles from JSONL, CSV or MIND news.tsv (idempotent upserts)")
    ingest.add_argument("path", type=Path, help="a file, or a directory holding news.tsv / articles.jsonl / .csv")
    ingest.add_argument("--format", choices=("jsonl", "csv", "mind"), help="default: from the file name")
    ingest.set_defaults(run=_ingest)

    serve = sub.add_parser("serve", help="serve the HTTP API")
    serve.add_argument("--host", help="default RECOMMENDER_HOST (127.0.0.1)")
    serve.add_argument("--port", type=int, help="default RECOMMENDER_PORT (8000)")
    serve.add_argument("--workers", type=int, help="server processes (default RECOMMENDER_WORKERS, else one per core)")
    serve.set_defaults(run=_serve)

    try:
        from recommender.evaluation.cli import add_evaluate_command
    except ImportError:
        pass
    else:
        add_evaluate_command(sub)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.run(args, Settings())
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
