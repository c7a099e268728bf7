"""What hostile requests cost the real server: an unauthenticated 48 MB batch, and previews with a body of
``<`` characters, next to short and full-length (256-token) previews measured in the same run.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/hostile.py [--port 18771]

Starts `recommender serve` (the code of the current directory) on an empty data dir with one article and a token.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import httpx

TOKEN = "bench-token"


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        return int(fh.read().split("VmRSS:")[1].split()[0]) / 1024


def wait_ready(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server not ready")


def timed(call) -> tuple[httpx.Response, float]:  # noqa: ANN001 - a no-argument request
    started = time.perf_counter()
    response = call()
    return response, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=18771)
    args = parser.parse_args()
    env = {**os.environ, "RECOMMENDER_DATA_DIR": tempfile.mkdtemp(), "RECOMMENDER_API_TOKEN": TOKEN}
    proc = subprocess.Popen([sys.executable, "-m", "recommender.cli", "serve", "--port", str(args.port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{args.port}"
    try:
        wait_ready(url)
        httpx.put(url + "/articles/a1", json={"title": "Marathon in the rain"},
                  headers={"Authorization": f"Bearer {TOKEN}"})
        before = rss_mb(proc.pid)
        body = b"[" + b",".join([b'{"id": "x", "title": "' + b"y" * 1000 + b'"}'] * 47_000) + b"]"
        r, seconds = timed(lambda: httpx.post(url + "/articles", content=body, timeout=60,
                                              headers={"Content-Type": "application/json"}))
        print(f"unauthenticated {len(body) / 1e6:.0f} MB batch: {r.status_code} in {seconds:.2f}s, "
              f"RSS {before:.0f} -> {rss_mb(proc.pid):.0f} MB")
        prose = "The runner crossed the line in the rain after a long race through the city streets. " * 20
        for label, text in [("short", "A runner won the race in the rain."), ("short", "A runner won the race."),
                            ("1,700-character prose (256 tokens, the model's most)", prose),
                            ("190,000 '<'", "<" * 190_000), ("999,000 '<'", "<" * 999_000)]:
            r, seconds = timed(lambda text=text: httpx.post(url + "/similar", json={"title": "t", "text": text},
                                                            timeout=60))
            print(f"POST /similar, {label} text: {r.status_code} in {seconds:.3f}s")
    finally:
        proc.kill()


if __name__ == "__main__":
    main()
