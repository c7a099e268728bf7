"""Replicas benchmark: two `recommender serve` processes on one PostgreSQL database against one.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/replicas.py [--n 3000] [--duration 5] [--clients 32]
        [--writes 100] [--takedowns 1000]

Builds (once, cached like benchmarks/serve.py, whose builder it uses) a SQLite data dir of --n articles with every
box stored, starts a throwaway PostgreSQL server (initdb + pg_ctl, as the tests do), moves the store into it with
`recommender.migrate`, and starts replica A and replica B (`recommender serve`, one worker each, each with its
own copy of the data dir for its index files). Then it prints:

1. read throughput of default lists (`GET /articles/{id}/similar`, uniform ids, keep-alive clients): one SQLite
   server on the same data (the embedded default), replica A alone with --clients, and A and B together with
   --clients split between them; phases alternated twice;
2. write-to-visible lag: --writes PUTs of new articles through A under a read load on both; for each, from A's
   acknowledgement to B answering the article's own default list (B reads the database: no poll in between),
   and to every box the write queued being stored again (the refresher, one replica for both);
3. takedowns: --takedowns DELETEs through A of items shown in the boxes the readers read, under that read load on
   A and B; every list any reader got whose request started after a DELETE was acknowledged is checked for the
   deleted item: how many still showed it and how late, and the violations: shown more than --bound seconds
   (the stated bound: a replica follows the database every RECOMMENDER_REFRESH_POLL_S) after the
   acknowledgement. Zero violations is the target. (Sources deleted meanwhile answer 404: counted apart.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from serve import MIND, cached_data_dir, drive, free_port, start_server, summary  # noqa: E402


class Readers:
    """Keep-alive clients reading default lists on several ports, recording when each request started and
    which ids its list showed (items and the reports folded into them)."""

    def __init__(self, ports: list[int], ids: list[str], clients: int):
        self.ports, self.ids, self.clients = ports, ids, clients
        self.seen: list[tuple[float, int, str, set[str]]] = []  # (started, port, source, ids shown)
        self.errors = self.gone = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()))

    def start(self) -> Readers:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    async def _run(self) -> None:
        await asyncio.gather(*(self._client(self.ports[i % len(self.ports)], i) for i in range(self.clients)))

    async def _client(self, port: int, seed: int) -> None:
        pick = random.Random(seed)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while not self._stop.is_set():
                source = self.ids[pick.randrange(len(self.ids))]
                started = time.perf_counter()
                writer.write(f"GET /articles/{source}/similar HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                body = await reader.readexactly(length)
                if head[9:12] != b"200":
                    self.gone += head[9:12] == b"404"  # a source taken down meanwhile
                    self.errors += head[9:12] != b"404"
                    continue
                items = json.loads(body)["items"]
                self.seen.append((started, port, source, {i["id"] for i in items}
                                  | {a["id"] for i in items for a in i.get("also", [])}))
        finally:
            writer.close()


def read_phases(ports: dict[str, list[int]], ids: list[str], duration: float, clients: int) -> None:
    """Throughput of each setup in ``ports`` (name -> servers), phases alternated twice."""
    runs: dict[str, list[dict]] = {name: [] for name in ports}
    paths = lambda pick: f"/articles/{ids[pick.randrange(len(ids))]}/similar".encode()  # noqa: E731

    async def together(servers: list[int]) -> list[dict]:
        share = clients // len(servers)
        return list(await asyncio.gather(*(drive(p, paths, duration, share) for p in servers)))

    for _ in range(2):
        for name, servers in ports.items():
            runs[name] += asyncio.run(together(servers))
    base = None
    print(f"\n1. read throughput, default lists, uniform ids, {clients} clients, 2 x {duration:g}s per setup")
    for name, setup_runs in runs.items():
        rps = sum(r["n"] for r in setup_runs) / (2 * duration)
        _, p50, p99, errors = summary(setup_runs)
        base = base or rps
        print(f"  {name:<34}{rps:>9.0f} req/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  {errors} errors  "
              f"({rps / base:.2f}x the first)")


def write_lags(a: int, b: int, db_url: str, texts: list[dict], count: int) -> None:
    import httpx
    import psycopg

    visible, stored = [], []
    with httpx.Client(base_url=f"http://127.0.0.1:{a}", timeout=60) as to_a, \
            httpx.Client(base_url=f"http://127.0.0.1:{b}", timeout=60) as to_b, \
            psycopg.connect(db_url, autocommit=True) as db:
        for i in range(count + 3):  # the first writes load the model: not measured
            text = texts[i % len(texts)]
            article_id = f"replica-write-{i}"
            r = to_a.put(f"/articles/{article_id}", json={**text, "title": f"{text['title']} (write {i})"})
            acked = time.perf_counter()
            assert r.status_code == 200, r.text
            [(value,)] = db.execute("SELECT value FROM meta WHERE name = 'seq'").fetchall()
            seq = int(value)
            while to_b.get(f"/articles/{article_id}/similar").status_code != 200:
                time.sleep(0.001)
            seen = time.perf_counter()
            while db.execute("SELECT 1 FROM refresh_queue WHERE since <= %s LIMIT 1", (seq,)).fetchone():
                time.sleep(0.005)
            if i >= 3:
                visible.append(seen - acked)
                stored.append(time.perf_counter() - acked)
    v, s = np.array(visible) * 1000, np.array(stored) * 1000
    print(f"\n2. write-to-visible lag, {count} PUTs of new articles through A, one at a time, under the read load")
    print(f"  A acknowledged -> B answers its list:      p50 {np.percentile(v, 50):7.1f} ms  p99 "
          f"{np.percentile(v, 99):7.1f} ms  max {v.max():7.1f} ms")
    print(f"  A acknowledged -> every queued box stored: p50 {np.percentile(s, 50):7.1f} ms  p99 "
          f"{np.percentile(s, 99):7.1f} ms  max {s.max():7.1f} ms")


def takedowns(a: int, readers: Readers, count: int, bound: float) -> None:
    import httpx

    deleted: dict[str, float] = {}
    with httpx.Client(base_url=f"http://127.0.0.1:{a}", timeout=60) as to_a:
        while len(deleted) < count:
            shown = [ids for _, _, _, ids in readers.seen[-200:]]
            candidates = [i for ids in shown for i in ids if i not in deleted]
            if not candidates:
                time.sleep(0.01)
                continue
            victim = random.choice(candidates)
            r = to_a.delete(f"/articles/{victim}")
            assert r.status_code in (204, 404), r.text
            deleted[victim] = time.perf_counter()
    time.sleep(1)  # reads after the last takedown
    readers.stop()
    checked = [(started, port, ids) for started, port, _, ids in readers.seen]
    late = [(started - deleted[victim], port) for started, port, ids in checked for victim in ids
            if victim in deleted and started > deleted[victim]]
    violations = [delay for delay, _ in late if delay > bound]
    after = sum(1 for started, _, _ in checked if started > min(deleted.values()))
    print(f"\n3. takedowns: {len(deleted)} DELETEs through A under the read load on A and B; {after} lists read "
          f"after the first one, each checked against every acknowledged takedown")
    print(f"  lists requested after a DELETE returned that still showed its item: {len(late)} (through A: "
          f"{sum(1 for _, port in late if port == a)}), the latest {max((d for d, _ in late), default=0) * 1000:.0f} "
          f"ms after it")
    print(f"  violations (shown more than {bound:g} s after the DELETE returned): {len(violations)} "
          f"(target 0: {'met' if not violations else 'NOT met'}); read errors {readers.errors}, "
          f"{readers.gone} reads of sources taken down meanwhile (404)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=3000, help="articles (default 3000: 2000 real MIND + 1000 synthetic)")
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per read phase")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--writes", type=int, default=100)
    ap.add_argument("--takedowns", type=int, default=1000)
    ap.add_argument("--bound", type=float, default=1.0, help="seconds after a takedown within which a replica may "
                    "still show the item (default 1.0)")
    ap.add_argument("--data-dir", type=Path, help="default: <tmp>/similar-news-bench/serve-<n> (reused)")
    args = ap.parse_args()
    data_dir = cached_data_dir(args.data_dir, args.n)

    from recommender.loaders import raw_rows
    from recommender.migrate import migrate
    from recommender.store.sqlite import SQLiteStore
    from tests.pgcluster import PostgresCluster

    store = SQLiteStore(data_dir / "articles.sqlite3")
    ids = [r[0] for r in store.read("SELECT id FROM articles WHERE status = 'published' ORDER BY key")]
    store.close()
    texts = [{k: r[k] for k in ("title", "lead", "section") if k in r} for r in list(raw_rows(MIND))[:200]]
    cluster = PostgresCluster()
    servers = []
    work = Path(tempfile.mkdtemp(prefix="replicas-", dir=data_dir.parent))
    try:
        cluster.start()
        url = cluster.database()
        t0 = time.perf_counter()
        migrate(data_dir / "articles.sqlite3", url)
        print(f"{len(ids)} articles; store migrated into PostgreSQL in {time.perf_counter() - t0:.1f}s")
        ports = []
        for name in ("sqlite", "a", "b"):
            copy = work / name
            shutil.copytree(data_dir, copy)
            if name != "sqlite":
                os.environ["RECOMMENDER_DATABASE_URL"] = url
            ports.append(free_port())
            server, ready = start_server(copy, ports[-1], 1)
            servers.append(server)
            print(f"{name}: ready in {ready:.1f}s")
        sqlite, a, b = ports
        read_phases({"one SQLite server (the default)": [sqlite], "one replica on PostgreSQL (A)": [a],
                     "two replicas on PostgreSQL (A + B)": [a, b]}, ids, args.duration, args.clients)
        servers.pop(0).terminate()
        readers = Readers([a, b], ids, 8).start()
        write_lags(a, b, url, texts, args.writes)
        takedowns(a, readers, args.takedowns, args.bound)
    finally:
        for server in servers:
            server.terminate()
            server.wait(60)
        cluster.stop()
        cluster.remove()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
