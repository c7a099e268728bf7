"""CPU cost of observing the hot path: a default `GET /articles/{id}/similar` through the app's whole ASGI stack,
in-process (no sockets, no uvicorn), with and without `service.observe.Observed` (metrics, request id, access
line), in microseconds of this process's CPU time per request: a figure the machine's other jobs move less than
wall-clock rates.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/observe_cost.py [--n 20000] [--requests 20000] [--data-dir D]

The data dir is the one benchmarks/serve.py builds (and caches) for --n; it is copied first. Ids are spread
over every article (as serve.py's uniform mode)."""

from __future__ import annotations

import argparse
import asyncio
import io
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from serve import build_data_dir  # noqa: E402  (benchmarks/serve.py, beside this script)


def per_request_us(app: Any, ids: list[str], n: int) -> float:
    async def call(path: str) -> None:
        scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(), "query_string": b"",
                 "headers": [(b"host", b"x"), (b"accept", b"*/*")], "http_version": "1.1", "scheme": "http",
                 "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1), "root_path": "", "app": app}

        async def receive() -> dict:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict) -> None:
            pass

        await app.middleware_stack(scope, receive, send)

    async def run() -> float:
        app.middleware_stack = app.build_middleware_stack()
        started = time.process_time()
        for i in range(n):
            await call(f"/articles/{ids[(i * 7919) % len(ids)]}/similar")
        return (time.process_time() - started) / n * 1e6

    return asyncio.run(run())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--requests", type=int, default=20_000)
    ap.add_argument("--data-dir", type=Path, help="default: <tmp>/similar-news-bench/serve-<n> (reused)")
    args = ap.parse_args()
    source = args.data_dir or Path(tempfile.gettempdir()) / "similar-news-bench" / f"serve-{args.n}"
    build_data_dir(source, args.n)
    data = Path(tempfile.mkdtemp(prefix="observe-cost-")) / "data"
    shutil.copytree(source, data)

    import service.app
    from recommender.engine import Recommender
    from recommender.settings import Settings

    factory: Any = service.app  # its Observed is swapped for a pass-through in the "without" rows
    observed = factory.Observed
    settings = Settings(data_dir=data)
    with Recommender(settings) as engine:
        ids = [a.id for _, a in engine.store.articles() if a.is_published]
        rows = []
        for label, middleware in (("with Observed", observed), ("without", lambda app, **_: app)) * 2:
            factory.Observed = middleware
            app = factory.create_app(settings, recommender=engine)
            app.state.recommender = engine
            app.state.access_log.stream = io.StringIO()  # the lines are made, not printed
            rows.append((label, per_request_us(app, ids, args.requests)))
        factory.Observed = observed
    shutil.rmtree(data.parent, ignore_errors=True)
    for label, us in rows:
        print(f"{label:14s} {us:6.1f} µs CPU per default request")
    cost = [a - b for (_, a), (_, b) in zip(rows[::2], rows[1::2], strict=True)]
    print(f"Observed costs {min(cost):.1f}–{max(cost):.1f} µs per request")
    return 0


if __name__ == "__main__":
    sys.exit(main())
