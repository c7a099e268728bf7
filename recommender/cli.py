"""The ``recommender`` command: ingest article files, rebuild the index, serve the API, evaluate strategies, migrate
a SQLite store into PostgreSQL."""

from __future__ import annotations

import argparse
import logging
import logging.config
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from index import KINDS
from recommender.evaluation.cli import add_calibrate_command, add_evaluate_command
from recommender.loaders import FORMATS, UsageError
from recommender.logs import log_config
from recommender.settings import Settings

if TYPE_CHECKING:
    import socket as sockets
    from collections.abc import Iterable

    from recommender.article import Article
    from recommender.engine import Recommender
    from recommender.processes import Supervised
    from recommender.writing import UpsertResult


log = logging.getLogger("recommender")
ARCHIVE = 1_000_000  # the archive size an ingest's rate is projected to


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _ingest(args: argparse.Namespace, settings: Settings) -> int:
    from recommender.embed import DeviceUnavailable
    from recommender.engine import Recommender
    from recommender.loaders import detect_format, raw_rows, read_articles, resolve_path

    args.format = args.format or detect_format(resolve_path(args.path))  # a usage error before the model loads
    settings = settings.model_copy(update={k: v for k, v in (("device", args.device), ("batch_size", args.batch_size))
                                           if v is not None})
    total = sum(1 for _ in raw_rows(args.path, args.format))
    try:
        engine = Recommender(settings)
    except DeviceUnavailable as exc:
        raise SystemExit(f"error: {exc}") from None
    errors: list[str] = []
    with engine:  # closed (index checkpointed) however the ingest ends
        try:
            log.info("embedding on %s", engine.embedder.device)  # loads the model: a missing GPU fails first
        except DeviceUnavailable as exc:
            raise SystemExit(f"error: {exc}") from None
        started = time.perf_counter()
        result, boxes = _ingested(engine, read_articles(args.path, args.format, errors), total)
    elapsed = time.perf_counter() - started
    print(f"ingested {total - len(errors)} articles in {elapsed:.1f}s ({(total - len(errors)) / elapsed:.1f}/s): "
          f"{result.created} new, {result.updated} updated, {result.unchanged} unchanged, "
          f"{result.embedded} embedded; {len(engine.index)} in the index; {boxes}")
    _print_scale_notes(engine, result.embedded, elapsed)
    for line in errors[:20]:
        print(f"skipped: {line}", file=sys.stderr)
    if len(errors) > 20:
        print(f"... and {len(errors) - 20} more invalid rows", file=sys.stderr)
    return 1 if errors and len(errors) == total else 0


def _print_scale_notes(engine: Recommender, embedded: int, elapsed: float) -> None:
    """The ingest's rate projected to a large archive, and whether the index should change kind."""
    if embedded:
        rate = embedded / elapsed
        print(f"{embedded} embedded on {engine.embedder.device} (batch {engine.embedder.batch_size}) at {rate:.1f} "
              f"articles/s end to end: {ARCHIVE:,} articles would take {ARCHIVE / rate / 3600:.1f} h")
    if best := engine.index_kind_due():  # left as it is: another process held the refresher lock
        print(f"the index is {engine.index.kind}; for {len(engine.index):,} articles {best} is the kind to serve: "
              f"run `recommender reindex` (no re-embedding) once the server is stopped")


def _reindex(args: argparse.Namespace, settings: Settings) -> int:
    from recommender.reindex import reindex

    started = time.perf_counter()
    try:
        meta = reindex(settings, args.kind, progress=True)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(f"rebuilt {settings.index_path} as {meta.kind}: {meta.count} articles in "
          f"{time.perf_counter() - started:.1f}s (store sequence {meta.seq})")
    return 0


def _ingested(engine: Recommender, articles: Iterable[Article], total: int) -> tuple[UpsertResult, str]:
    """Write ``articles``, then compute the queued boxes here, holding the refresher lock throughout (no box is
    stored by another process meanwhile: ``Recommender.upsert``'s ``refresher``); where another process holds it
    (a running server's refresher), that computes them. An index whose kind no longer fits the corpus size is
    rebuilt first: the boxes search it."""
    from recommender.embedpool import embedding_processes
    from recommender.locks import refresher_lock
    from recommender.refresher import import_processes, refresh_queued

    settings, before = engine.settings, len(engine.index)
    lock = refresher_lock(settings)
    try:
        result = engine.upsert(articles, progress=True, total=total, processes=embedding_processes(settings),
                               refresher=lock if lock.try_exclusive() else None)
        if not lock.try_exclusive():  # held elsewhere from the start, or lost meanwhile (a PostgreSQL session)
            return result, (f"{engine.store.queue_length()} boxes queued for the process that holds the refresher "
                            "lock (a running server's refresher computes them)")
        if kind := engine.index_kind_due():
            # A flat index of a million articles scans 2 GB a box: hours of boxes, against minutes to rebuild.
            print(f"the index of {len(engine.index):,} articles (from {before:,}) is {engine.index.kind}: "
                  f"rebuilding it as {kind} before the boxes (no re-embedding)", flush=True)
            engine.rebuild_index(kind, progress=True)
        boxes = refresh_queued(engine, progress=True, processes=import_processes(settings))
        return result, f"{boxes} boxes computed"
    finally:
        lock.release()  # a PostgreSQL lock not taken still holds its connection


def _report(args: argparse.Namespace, settings: Settings) -> int:
    """An experiment's report from the store alone (no index, no model): the running one unless named."""
    import json
    from dataclasses import asdict

    from recommender.events import EventStore
    from recommender.experiments import ExperimentStore, named, running
    from recommender.report import experiment_report, format_report, parse_since
    from recommender.store import open_store
    from recommender.store.sql import now_ms

    if settings.database_url is None and not settings.db_path.exists():
        raise SystemExit(f"error: no store at {settings.db_path} (RECOMMENDER_DATA_DIR)")
    store = open_store(settings)
    experiments, events = ExperimentStore(store), EventStore(store)
    try:
        experiment = named(experiments, settings.experiment, args.experiment) if args.experiment else \
            running(experiments.active(), settings.experiment)
        if experiment is None:
            raise SystemExit(f"error: no experiment {'named ' + repr(args.experiment) if args.experiment else 'runs'}"
                             "; name one with --experiment (see GET /experiments)")
        try:
            since = parse_since(args.since, now_ms()) if args.since else None
        except ValueError as exc:
            raise SystemExit(f"error: --since: {exc}") from None
        report = experiment_report(experiment, events, since)
    finally:
        store.close()
    print(json.dumps(asdict(report), indent=2) if args.json else format_report(report))
    return 0


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    from recommender.migrate import migrate

    url = args.to or (settings.database_url.get_secret_value() if settings.database_url else None)
    if url is None:
        raise SystemExit("error: name the PostgreSQL database: --to postgresql://... or RECOMMENDER_DATABASE_URL")
    source = (args.source / "articles.sqlite3") if args.source else settings.db_path
    started = time.perf_counter()
    try:
        copied = migrate(source, url, progress=True)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(f"migrated {source} in {time.perf_counter() - started:.1f}s: "
          + ", ".join(f"{rows} {table}" for table, rows in copied.items()))
    return 0


def _compress_boxes(args: argparse.Namespace, settings: Settings) -> int:
    from recommender.store import open_store

    if settings.database_url is None and not settings.db_path.is_file():
        raise FileNotFoundError(f"no SQLite store at {settings.db_path}: point RECOMMENDER_DATA_DIR at the data dir")
    store = open_store(settings)
    started = time.perf_counter()
    try:
        done = store.compress_stored_boxes(progress=True)
    finally:
        store.close()
    where = "PostgreSQL compresses its boxes itself" if settings.database_url else \
        "the file keeps its size until a VACUUM (sqlite3 articles.sqlite3 VACUUM, with the service stopped)"
    print(f"compressed {done} boxes stored as text in {time.perf_counter() - started:.1f}s; {where}")
    return 0


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    # Before prometheus-client is first imported (it picks its multiprocess mode then): the workers, the writer
    # and the refresher all count into this directory, and the worker answering a scrape sums them.
    from recommender.processes import shared_metrics_dir

    with shared_metrics_dir():
        return _serve_processes(args, settings)


def _serve_processes(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from recommender.processes import fork_server_stopped, workers_forked
    from service.serving import run_workers, server_options
    from service.writer_socket import socket_path

    host = args.host or settings.host
    port = args.port or settings.port
    workers = args.workers or settings.workers or os.cpu_count() or 1
    threads = settings.embed_threads or 1
    # A server embeds an article a write: bfloat16 would save it little and cost the writer torch (~1.3 s on its
    # first write, ~200 MB).
    bfloat16 = "off" if settings.embed_bfloat16 == "auto" else settings.embed_bfloat16
    socket = socket_path(settings.data_dir)
    settings = settings.model_copy(update={"host": host, "port": port, "embed_threads": threads,
                                           "embed_bfloat16": bfloat16, "writer_socket": socket})
    logs = log_config(settings.log_format)  # the access log is ours (service.observe), not uvicorn's
    claim = _checked_before_start(settings, workers)
    # N read workers, one writer, one refresher, all following one store (README, "Processes"), each reading
    # these settings from the environment.
    os.environ.update(RECOMMENDER_HOST=host, RECOMMENDER_PORT=str(port), RECOMMENDER_EMBED_THREADS=str(threads),
                      RECOMMENDER_EMBED_BFLOAT16=bfloat16, RECOMMENDER_WRITER_SOCKET=str(socket))
    if workers > 1:  # its imports start now, beside the writer's, not after this process's own
        workers_forked(["service.app"])
    helpers = _start_helpers(host, port, socket, settings)
    # uvicorn re-raises the SIGTERM it shut down on once it restored the previous handler: this one, so that the
    # helpers below are stopped cleanly (not killed with this process).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        if workers == 1:
            from service.app import create_app

            uvicorn.run(create_app(settings), host=host, port=port, log_config=logs, access_log=False,
                        **server_options(settings))
        else:  # each worker process builds its app from the environment
            run_workers(uvicorn.Config("service.app:app_from_env", factory=True, workers=workers, host=host,
                                       port=port, log_config=logs, access_log=False, **server_options(settings)))
    finally:
        for helper in helpers:
            helper.stop()
        fork_server_stopped()
        socket.unlink(missing_ok=True)
        claim.close()
    return 0


def _checked_before_start(settings: Settings, workers: int) -> sockets.socket:
    """The server's port, claimed until this process ends (``service.serving.port_claim``); ``SystemExit`` saying
    what to do where the server would not serve: open writes without a token, a missing template, a port that
    anything listens on or another server claims. Checked before any process starts, and without importing the
    app (it starts the processes)."""
    from service.html import TemplateMissing
    from service.refusals import OpenWritesRefused, box_renderer
    from service.serving import listening_socket, port_claim

    try:
        box_renderer(settings)
        if workers > 1 and settings.port == 0:
            raise SystemExit("error: --port 0 would give each read worker a port of its own: choose a port")
        claim = port_claim(settings.port)
        listening_socket(settings.host, settings.port).close()
    except (OpenWritesRefused, TemplateMissing, OSError) as exc:
        raise SystemExit(f"error: {exc}") from None
    return claim


def _start_helpers(host: str, port: int, socket: Path, settings: Settings) -> list[Supervised]:
    """The writer and the refresher, supervised, from threads started before this one is niced (a read worker's
    lifespan), so they are not. The writer starts at once when there is an index to map: /readyz waits for it,
    and the read workers map the index rather than read it, so starting beside them costs them little (ready at
    100k articles: docs/benchmarks.md); without one (a first start) it waits for a worker to have built and saved
    it (on 2 cores, four processes building or loading the index at once doubled the start). The refresher waits
    for the writer to answer: its open and its parse of the rows took the CPU the writer's open needed (1M
    articles: ready 9.0-9.6 s -> 6.8-7.5 s with the other changes of that step). A writer that takes its
    connections but does not answer its health
    check within ``writer_health_timeout_s`` (stopped, hung), or does not listen ``writer_start_timeout_s`` after
    its start, is killed and started again."""
    from index import saved_at
    from recommender.processes import Supervised
    from service.writer_socket import writer_state

    def ready() -> None:
        _wait_ready(host, port)

    def writer_ready() -> None:
        _wait_ready(host, port, writer_too=True)

    def writer_healthy(age_s: float) -> bool:
        state = writer_state(socket, settings.writer_health_timeout_s)
        return state == "answers" or (state == "absent" and age_s < settings.writer_start_timeout_s)

    writer_first = ready if saved_at(settings.index_path) is None else (lambda: None)
    return [Supervised("writer", [sys.executable, "-m", "service.writer", str(socket)], dict(os.environ),
                       writer_first, writer_healthy).start(),
            Supervised("refresher", [sys.executable, "-m", "recommender.refresher"], dict(os.environ),
                       writer_ready).start()]


def _wait_ready(host: str, port: int, timeout_s: float = 60.0, writer_too: bool = False) -> None:
    """Until a read worker has loaded: its /readyz is a 200, or (unless ``writer_too``) a 503 only for want of
    the writer (or ``timeout_s`` passed: start the helpers anyway)."""
    import http.client
    import json

    from service.writer_socket import WRITES_UNAVAILABLE

    host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection(host, port, timeout=1)
        try:
            conn.request("GET", "/readyz")
            response = conn.getresponse()
            if response.status == 200 or (not writer_too
                                           and json.loads(response.read()).get("status") == WRITES_UNAVAILABLE):
                return
        except (OSError, ValueError):
            pass
        finally:
            conn.close()
        time.sleep(0.1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="recommender", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    ingest = sub.add_parser("ingest", help="load articles from JSONL, CSV or MIND news.tsv (idempotent upserts)")
    ingest.add_argument("path", type=Path, help="a file, or a directory holding news.tsv / articles.jsonl / .csv")
    ingest.add_argument("--format", choices=FORMATS, help="default: from the file name")
    ingest.add_argument("--device", help="where the model runs: cpu, cuda, cuda:1 ... (default RECOMMENDER_DEVICE, "
                        "else the first GPU if there is one)")
    ingest.add_argument("--batch-size", type=_positive_int, help="texts per model batch (default RECOMMENDER_BATCH_SIZE, 32; "
                        "a GPU wants 256)")
    ingest.set_defaults(run=_ingest)

    reindex = sub.add_parser("reindex", help="rebuild the vector index from the stored vectors, into any kind "
                             "(nothing is re-embedded); stop the service first, it would save its own index over it")
    reindex.add_argument("--kind", choices=KINDS, help="default: the kind index_kind_for picks for the corpus size")
    reindex.set_defaults(run=_reindex)

    serve = sub.add_parser("serve", help="serve the HTTP API")
    serve.add_argument("--host", help="default RECOMMENDER_HOST (127.0.0.1)")
    serve.add_argument("--port", type=int, help="default RECOMMENDER_PORT (8000)")
    serve.add_argument("--workers", type=int, help="read workers (default RECOMMENDER_WORKERS, else one per core); "
                       "a writer process beside them takes every write, a refresher process keeps the stored boxes fresh")
    serve.set_defaults(run=_serve)

    report = sub.add_parser("report", help="an experiment's report: impressions, clicks, CTR per variant and "
                            "position, each variant against the control (95 %% interval, z-test)")
    report.add_argument("--experiment", help="its name (default: the running experiment)")
    report.add_argument("--since", help="7d, 12h, or an ISO 8601 date or time (default: the experiment's start)")
    report.add_argument("--json", action="store_true", help="the report as JSON")
    report.set_defaults(run=_report)

    migrate = sub.add_parser("migrate", help="copy a SQLite data dir's store into an empty PostgreSQL database "
                             "(keys, sequence, boxes kept: the data dir's index stays valid)")
    migrate.add_argument("--from", dest="source", type=Path, help="the data dir (default RECOMMENDER_DATA_DIR)")
    migrate.add_argument("--to", help="postgresql://user:password@host:port/dbname (default RECOMMENDER_DATABASE_URL)")
    migrate.set_defaults(run=_migrate)

    compress = sub.add_parser("compress-boxes", help="compress the boxes a SQLite store holds from before boxes "
                              "were stored compressed (a third of the disk and page cache); safe beside a running "
                              "service")
    compress.set_defaults(run=_compress_boxes)

    add_evaluate_command(sub)
    add_calibrate_command(sub)

    args = parser.parse_args(argv)
    try:
        settings = Settings()
        logging.config.dictConfig(log_config(settings.log_format))
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
