"""A takedown's latency while public previews flood the writer: ``--previews`` clients each send
``POST /similar`` (a full-length, 256-token text) again and again while takedowns (``DELETE /articles/{id}``)
go one after another; prints the takedowns' latency and how the previews were answered (200, or 503 beyond
``RECOMMENDER_MAX_PREVIEWS``). Run it once with the cap (default 4) and once with ``--cap 1000`` (no cap: the
previous behaviour).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/previews.py [--previews 200] [--cap 4] [--port 18772]

Starts `recommender serve --workers 2` (the code of the current directory) on an empty data dir with a token."""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hostile import wait_ready  # noqa: E402  (benchmarks/hostile.py, beside this script)

TOKEN = "bench-token"
PROSE = "The runner crossed the line in the rain after a long race through the city streets. " * 20


async def previews(client: httpx.AsyncClient, stop: asyncio.Event, answers: Counter[int]) -> None:
    while not stop.is_set():
        try:
            r = await client.post("/similar", json={"title": "A race", "text": PROSE})
            answers[r.status_code] += 1
            if r.status_code == 503:
                await asyncio.sleep(float(r.headers.get("retry-after", "1")))
        except httpx.TransportError as exc:
            answers[type(exc).__name__] += 1  # type: ignore[index]


async def flood(url: str, clients: int, takedowns: int) -> tuple[list[float], Counter[int]]:
    limits = httpx.Limits(max_connections=clients + 10)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits, headers=headers) as client:
        for n in range(takedowns):
            r = await client.put(f"/articles/t{n}", json={"title": f"Story number {n} about the city council"})
            r.raise_for_status()
        stop, answers = asyncio.Event(), Counter[int]()
        tasks = [asyncio.create_task(previews(client, stop, answers)) for _ in range(clients)]
        await asyncio.sleep(10)  # every preview client has sent its first request
        latencies = []
        for n in range(takedowns):
            started = time.perf_counter()
            r = await client.delete(f"/articles/t{n}")
            latencies.append(time.perf_counter() - started)
            assert r.status_code in (200, 204), r.text
            await asyncio.sleep(0.5)
        stop.set()
        await asyncio.gather(*tasks)
    return latencies, answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=18772)
    parser.add_argument("--previews", type=int, default=200)
    parser.add_argument("--cap", type=int, default=4)
    parser.add_argument("--takedowns", type=int, default=20)
    args = parser.parse_args()
    env = {**os.environ, "RECOMMENDER_DATA_DIR": tempfile.mkdtemp(), "RECOMMENDER_API_TOKEN": TOKEN,
           "RECOMMENDER_MAX_PREVIEWS": str(args.cap)}
    proc = subprocess.Popen([sys.executable, "-m", "recommender.cli", "serve", "--workers", "2", "--port",
                             str(args.port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{args.port}"
    try:
        wait_ready(url, timeout=300)
        latencies, answers = asyncio.run(flood(url, args.previews, args.takedowns))
    finally:
        proc.terminate()
        proc.wait(60)
    print(f"{args.previews} preview clients, RECOMMENDER_MAX_PREVIEWS={args.cap}: {args.takedowns} takedowns, "
          f"latency p50 {statistics.median(latencies):.2f}s, max {max(latencies):.2f}s; previews answered "
          + ", ".join(f"{status}: {count}" for status, count in sorted(answers.items(), key=str)))


if __name__ == "__main__":
    main()
