"""CDN benchmark: what a cache in front of the service saves, through a real Varnish (README "Behind a CDN").

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/cdn.py [--n 1000] [--views 1000] [--zipf 1.1] [--takedowns 10]

Builds (once, cached like benchmarks/serve.py, whose builder it uses) a data dir of --n articles with every box
stored, starts `recommender serve` (one worker) purging through a throwaway Varnish with the README's VCL
(`docs/cdn/varnish.vcl`, as tests/service/test_varnish.py runs it), and prints:

1. origin requests per 1,000 page views, without a cache (every view asks the service) and through Varnish, for
   page views spread uniformly over the articles and by a Zipf law (--zipf: a few stories take most views, as
   on a news site), and Zipf with --takedowns DELETEs of shown items during the views (each one purges the
   lists that show the item); counted by the service itself (`recommender_lists_total`), a fresh cache each;
2. bytes of a list on the wire, identity, gzip and brotli, from the service: the JSON list (default limit), the
   HTML box, and the script.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from serve import cached_data_dir, free_port, start_server  # noqa: E402

from tests.varnish import Varnish  # noqa: E402

_LISTS = re.compile(r"^recommender_lists_total\{[^}]*\} ([0-9.e+]+)$", re.M)


def lists_answered(origin: str) -> float:
    return sum(float(v) for v in _LISTS.findall(httpx.get(origin + "/metrics", timeout=60).text))


def page_views(ids: list[str], views: int, zipf: float | None, seed: int = 0) -> list[str]:
    """The article of each page view: uniform over ``ids``, or Zipf-distributed (rank r drawn ~ 1/r^s)."""
    rng = np.random.default_rng(seed)
    if zipf is None:
        return [ids[i] for i in rng.integers(0, len(ids), views)]
    weights = 1.0 / np.arange(1, len(ids) + 1) ** zipf
    order = rng.permutation(len(ids))
    return [ids[order[i]] for i in rng.choice(len(ids), views, p=weights / weights.sum())]


def run_views(base: str, origin: str, views: list[str], takedowns: int, token_headers: dict[str, str]
              ) -> tuple[float, int, float]:
    """Origin lists answered, takedowns done and seconds taken for ``views`` through ``base``."""
    every = len(views) // (takedowns + 1) if takedowns else 0
    before = lists_answered(origin)
    started = time.perf_counter()
    done = 0
    with httpx.Client(base_url=base, timeout=60) as client, httpx.Client(base_url=origin, timeout=60,
                                                                         headers=token_headers) as writer:
        for n, article_id in enumerate(views, 1):
            r = client.get(f"/articles/{article_id}/similar")
            if r.status_code != 200:  # an article taken down meanwhile
                continue
            if every and n % every == 0 and done < takedowns:
                items = r.json()["items"]
                if items and writer.delete(f"/articles/{items[0]['id']}").status_code == 204:
                    done += 1
                    time.sleep(0.3)  # the purge reaches the cache (README: 0.1-0.3 s)
    seconds = time.perf_counter() - started
    return lists_answered(origin) - before, done, seconds


def wire_bytes(origin: str, ids: list[str]) -> None:
    """Mean bytes of the JSON list, the HTML box and the script: identity, gzip and brotli, from the service."""
    sizes: dict[str, list[tuple[int, ...]]] = {"JSON list": [], "HTML box": [], "script": []}
    paths = [("JSON list", f"/articles/{article_id}/similar") for article_id in ids] + \
        [("HTML box", f"/articles/{article_id}/similar.html") for article_id in ids] + [("script", "/similar-news.js")]
    with httpx.Client(base_url=origin, timeout=60) as client:
        for name, path in paths:
            sent = [client.get(path, headers={"Accept-Encoding": coding}) for coding in ("identity", "gzip", "br")]
            assert [r.headers.get("content-encoding") for r in sent] == [None, "gzip", "br"], path
            assert len({r.content for r in sent}) == 1, path  # httpx decoded them: the same list
            sizes[name].append(tuple(int(r.headers["content-length"]) for r in sent))
    print(f"\nbytes on the wire (means over {len(ids)} articles' default lists; the script once):")
    print("| response | identity | gzip | brotli |\n|---|---|---|---|")
    for name, rows in sizes.items():
        plain, gz, br = (statistics.mean(row[i] for row in rows) for i in range(3))
        print(f"| {name} | {plain:,.0f} | {gz:,.0f} ({gz / plain:.2f}) | {br:,.0f} ({br / plain:.2f}) |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="articles in the data dir")
    parser.add_argument("--views", type=int, default=1000, help="page views per scenario")
    parser.add_argument("--zipf", type=float, default=1.1, help="the Zipf exponent of the skewed scenarios")
    parser.add_argument("--takedowns", type=int, default=10, help="DELETEs during the last scenario")
    args = parser.parse_args()

    source = cached_data_dir(None, args.n)
    work = Path(tempfile.mkdtemp(prefix="similar-news-cdn-"))
    data = work / "data"
    shutil.copytree(source, data)  # the takedowns write: the cached data dir stays as it was
    port, cache_port, token = free_port(), free_port(), "cdn-benchmark-token-0123"
    os.environ.update(RECOMMENDER_PURGE_URL=f"http://127.0.0.1:{cache_port}/", RECOMMENDER_PURGE_METHOD="PURGE",
                      RECOMMENDER_API_TOKEN=token, RECOMMENDER_LIST_MAX_AGE_S="3600")
    server, ready_s = start_server(data, port, workers=1)
    origin = f"http://127.0.0.1:{port}"
    try:
        with sqlite3.connect(data / "articles.sqlite3") as db:
            ids = [r[0] for r in db.execute("SELECT article_id FROM boxes ORDER BY key")]
        httpx.get(f"{origin}/articles/{ids[0]}/similar", params={"limit": 30}, timeout=120)  # warm the worker
        print(f"{len(ids)} articles with a stored box; server ready in {ready_s:.1f}s")
        wire_bytes(origin, ids[:200])  # before the takedowns: every list as stored
        print(f"\norigin requests per 1,000 page views, over {args.views:,} (each: GET /articles/{{id}}/similar):")
        print("| page views | no cache | through Varnish | saved |\n|---|---|---|---|")
        scenarios = (("uniform", None, 0), (f"Zipf {args.zipf}", args.zipf, 0),
                     (f"Zipf {args.zipf}, {args.takedowns} takedowns", args.zipf, args.takedowns))
        for name, zipf, takedowns in scenarios:
            views = page_views(ids, args.views, zipf)
            direct, _, _ = run_views(origin, origin, views, 0, {})
            with Varnish(port, cache_port) as cache:
                cached, done, _ = run_views(cache.url, origin, views, takedowns, {"Authorization": f"Bearer {token}"})
            label = f"{name} ({len(set(views))} articles{f', {done} deleted' if takedowns else ''})"
            direct_1000, cached_1000 = 1000 * direct / len(views), 1000 * cached / len(views)
            print(f"| {label} | {direct_1000:,.0f} | {cached_1000:,.0f} | {1 - cached_1000 / direct_1000:.1%} |")
    finally:
        server.terminate()
        server.wait(60)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
