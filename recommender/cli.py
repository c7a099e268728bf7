"""The ``recommender`` command: ingest article files, serve the API, evaluate strategies."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from pydantic import ValidationError

from recommender.evaluation.cli import add_evaluate_command
from recommender.loaders import FORMATS, UsageError
from recommender.settings import Settings


def _ingest(args: argparse.Namespace, settings: Settings) -> int:
    from recommender.engine import Recommender
    from recommender.loaders import detect_format, raw_rows, read_articles, resolve_path

    args.format = args.format or detect_format(resolve_path(args.path))  # a usage error before the model loads
    total = sum(1 for _ in raw_rows(args.path, args.format))
    errors: list[str] = []
    started = time.perf_counter()
    with Recommender(settings) as engine:  # closed (index checkpointed) however the ingest ends
        result = engine.upsert(read_articles(args.path, args.format, errors), progress=True, total=total)
        indexed = len(engine.index)
    elapsed = time.perf_counter() - started
    print(f"ingested {total - len(errors)} articles in {elapsed:.1f}s ({(total - len(errors)) / elapsed:.1f}/s): "
          f"{result.created} new, {result.updated} updated, {result.unchanged} unchanged, "
          f"{result.embedded} embedded; {indexed} in the index")
    for line in errors[:20]:
        print(f"skipped: {line}", file=sys.stderr)
    if len(errors) > 20:
        print(f"... and {len(errors) - 20} more invalid rows", file=sys.stderr)
    return 1 if errors and len(errors) == total else 0


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from service.app import OpenWritesRefused, create_app
    from service.protocol import server_options

    host = args.host or settings.host
    port = args.port or settings.port
    try:
        app = create_app(settings.model_copy(update={"host": host, "port": port}))
    except OpenWritesRefused as exc:
        raise SystemExit(f"error: {exc}") from None
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False, **server_options(settings))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="recommender", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    ingest = sub.add_parser("ingest", help="load articles from JSONL, CSV or MIND news.tsv (idempotent upserts)")
    ingest.add_argument("path", type=Path, help="a file, or a directory holding news.tsv / articles.jsonl / .csv")
    ingest.add_argument("--format", choices=FORMATS, help="default: from the file name")
    ingest.set_defaults(run=_ingest)

    serve = sub.add_parser("serve", help="serve the HTTP API")
    serve.add_argument("--host", help="default RECOMMENDER_HOST (127.0.0.1)")
    serve.add_argument("--port", type=int, help="default RECOMMENDER_PORT (8000)")
    serve.set_defaults(run=_serve)

    add_evaluate_command(sub)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings()
    except ValidationError as exc:
        for error in exc.errors():
            name = "RECOMMENDER_" + "_".join(map(str, error["loc"])).upper()
            print(f"error: {name}: {error['msg']}", file=sys.stderr)
        return 2
    try:
        return args.run(args, settings)
    except (FileNotFoundError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
