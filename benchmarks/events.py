"""Events benchmark: does reporting impressions and clicks slow the box? The real server on the data dir of
``serve.py`` (built and cached the same way), `GET /articles/{id}/similar` (uniform ids) driven by --clients
keep-alive connections alone, while `POST /events` batches arrive at --event-rate events/s (batches of
--batch, the impressions of one box each, from --posters connections), and while as many `GET /healthz` arrive
instead (what any extra request of that rate costs the server and this client on the same cores); phases
alternated twice. Prints the box's throughput and p99 in each, the event load's acknowledged rate and latency, and checks that every acknowledged
event is in the store.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/events.py [--n 20000] [--duration 5] [--event-rate 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve import build_data_dir, drive, free_port, start_server, summary  # noqa: E402

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--n", type=int, default=20_000, help="articles (default 20000)")
ap.add_argument("--duration", type=float, default=5.0, help="seconds per phase (4 phases)")
ap.add_argument("--clients", type=int, default=32, help="connections reading lists")
ap.add_argument("--event-rate", type=float, default=2000.0, help="events/s offered during the event phases")
ap.add_argument("--batch", type=int, default=8, help="events per POST (a box's impressions)")
ap.add_argument("--posters", type=int, default=64, help="connections posting events (each waits for its answer)")
ap.add_argument("--data-dir", type=Path, help="default: <tmp>/similar-news-bench/serve-<n> (reused)")


async def post_events(port: int, body: bytes | None, rate: float, duration: float, posters: int, batch: int) -> dict:
    """``posters`` keep-alive connections posting ``body`` at ``rate`` events/s in all (``body`` None: a
    ``GET /healthz`` instead of each POST, the same request rate of no-op requests); latencies of the 200s."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration
    interval = posters * batch / rate
    request = (b"POST /events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n%s" % (len(body), body)) if body is not None else \
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

    async def poster(n: int) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.sleep(interval * n / posters)
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                writer.write(request)
                answer = await reader.readuntil(b"\r\n\r\n")
                length = int(answer.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                if answer[9:12] == b"200":
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1
                await asyncio.sleep(max(0.0, started + interval - time.perf_counter()))
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(poster(n) for n in range(posters)))
    return {"acked": len(latencies) * batch, "s": time.perf_counter() - started, "lat": latencies, "errors": errors}


def events_body(port: int, article_id: str, batch: int) -> bytes:
    """``batch`` impressions of the article's real list (its list_id and variant as served)."""
    import httpx

    shown = httpx.get(f"http://127.0.0.1:{port}/articles/{article_id}/similar", params={"limit": batch}).json()
    when = datetime.now(UTC).isoformat()
    return json.dumps([{"type": "impression", "article_id": article_id, "item_id": item["id"], "position": n,
                        "list_id": shown["list_id"], "variant": shown["variant"], "ts": when}
                       for n, item in enumerate(shown["items"], 1)]).encode()


def phases(port: int, ids: list[str], args: argparse.Namespace) -> dict[str, list[dict]]:
    """Lists alone, beside no-op GETs, beside events: each phase twice, alternated."""
    body = events_body(port, ids[0], args.batch)
    paths = lambda pick: f"/articles/{ids[pick.randrange(len(ids))]}/similar".encode()  # noqa: E731
    runs: dict[str, list[dict]] = {"alone": [], "noop": [], "loaded": [], "posted": []}

    async def both(payload: bytes | None) -> tuple[dict, dict]:
        return await asyncio.gather(drive(port, paths, args.duration, args.clients), post_events(
            port, payload, args.event_rate, args.duration, args.posters, args.batch))

    for _ in range(2):
        runs["alone"].append(asyncio.run(drive(port, paths, args.duration, args.clients)))
        runs["noop"].append(asyncio.run(both(None))[0])
        reads, events = asyncio.run(both(body))
        runs["loaded"].append(reads)
        runs["posted"].append(events)
    return runs


def print_figures(runs: dict[str, list[dict]], stored: int, articles: int, args: argparse.Namespace) -> None:
    a_rps, _, a_p99, a_err = summary(runs["alone"])
    n_rps, _, n_p99, n_err = summary(runs["noop"])
    l_rps, _, l_p99, l_err = summary(runs["loaded"])
    posted = runs["posted"]
    acked = sum(p["acked"] for p in posted)
    lat = np.concatenate([np.array(p["lat"]) for p in posted]) * 1000
    print(f"\n{articles} articles, 1 worker, {args.clients} readers, {args.duration:g}s x 2 phases each")
    print(f"  lists alone:            {a_rps:8.0f} req/s, p99 {a_p99:6.2f} ms, {a_err} errors")
    print(f"  lists under no-op GETs: {n_rps:8.0f} req/s, p99 {n_p99:6.2f} ms, {n_err} errors "
          f"({n_rps / a_rps:.1%} of alone; /healthz at the request rate of the events below)")
    print(f"  lists under events:     {l_rps:8.0f} req/s, p99 {l_p99:6.2f} ms, {l_err} errors "
          f"({l_rps / a_rps:.1%} of alone, {l_rps / n_rps:.1%} of under no-op GETs)")
    print(f"  events offered {args.event_rate:g}/s in batches of {args.batch}: acknowledged "
          f"{acked / sum(p['s'] for p in posted):.0f}/s, ack p50 {np.percentile(lat, 50):.1f} ms, "
          f"p99 {np.percentile(lat, 99):.1f} ms, {sum(p['errors'] for p in posted)} errors")
    print(f"  stored: {stored} events for {acked} acknowledged ({'every one' if stored >= acked else 'MISSING'})")


def main() -> int:
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # One benchmark client stands for a site's many readers: the per-client rate is lifted.
    os.environ.update(RECOMMENDER_EVENTS_RATE_PER_S="1e9", RECOMMENDER_EVENTS_BURST="1000000000")
    data_dir = args.data_dir or Path(tempfile.gettempdir()) / "similar-news-bench" / f"serve-{args.n}"
    build_data_dir(data_dir, args.n)
    with sqlite3.connect(data_dir / "articles.sqlite3") as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM articles WHERE status='published' ORDER BY key")]
    run_dir = Path(tempfile.mkdtemp(prefix="events-run-", dir=data_dir.parent))
    shutil.copytree(data_dir, run_dir, dirs_exist_ok=True)
    port = free_port()
    server, _ = start_server(run_dir, port, 1)
    try:
        runs = phases(port, ids, args)
        time.sleep(1)
        with sqlite3.connect(f"file:{run_dir / 'articles.sqlite3'}?mode=ro", uri=True) as db:
            stored = db.execute("SELECT count(*) FROM events").fetchone()[0]
    finally:
        server.terminate()
        server.wait(60)
        shutil.rmtree(run_dir, ignore_errors=True)
    print_figures(runs, stored, len(ids), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
