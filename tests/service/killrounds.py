"""Kill rounds against `recommender serve --workers 2`: each round SIGKILLs one process at random (the server
itself, a read worker, the writer or the refresher) under read, write and event load, then checks that a
working server answers on the same port, that no acknowledged write or event was lost, and that no process was
orphaned. Used by tests/service/test_reliability.py (3 rounds) and benchmarks/kill.py (20)."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from tests.service.conftest import CLIENT_TIMEOUT, READY_TIMEOUT_S, Server

ROLES = ("server", "worker", "writer", "refresher")
READ = "N34700"  # an article of the ingested MIND slice: its list is what the readers ask for
MARKS = {"writer": "service.writer", "refresher": "recommender.refresher"}
FORK_SERVER = "multiprocessing.forkserver"  # it forks the read workers (recommender.processes.workers_forked)


@dataclass
class Tally:
    kills: Counter[str] = field(default_factory=Counter)
    writes: list[str] = field(default_factory=list)  # ids of acknowledged articles
    events: list[str] = field(default_factory=list)  # list ids of acknowledged event batches
    reads: Counter[str] = field(default_factory=Counter)  # "ok" or what went wrong

    def line(self) -> str:
        return (f"{sum(self.kills.values())} rounds ({', '.join(f'{r} {n}' for r, n in sorted(self.kills.items()))}"
                f"): {len(self.writes)} acknowledged writes and {len(self.events)} acknowledged event batches, 0 "
                f"lost, no orphan process; reads {dict(self.reads)}")


def child_pids(pid: int) -> list[int]:
    return [int(p) for p in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()]


def command_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except FileNotFoundError:
        return ""


def children(server: Server) -> list[int]:
    """Every process the server started: its children (its multiprocessing resource tracker and fork server
    included) and the read workers its fork server forked."""
    assert server.proc is not None
    direct = child_pids(server.proc.pid)
    return direct + [worker for pid in direct if FORK_SERVER in command_of(pid) for worker in child_pids(pid)]


def roles(server: Server) -> dict[str, list[int]]:
    """The server's processes by role: the read workers, the fork server that forked them, the writer, the
    refresher."""
    assert server.proc is not None
    out: dict[str, list[int]] = {role: [] for role in ("worker", "fork server", *MARKS)}
    for pid in child_pids(server.proc.pid):
        command = command_of(pid)
        if FORK_SERVER in command:
            out["fork server"].append(pid)
            out["worker"] += child_pids(pid)
        out.update({role: [*out[role], pid] for role, mark in MARKS.items() if mark in command})
    return out


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def wait_until(predicate, timeout: float, what: str) -> None:  # noqa: ANN001 - a no-argument predicate
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def complete(server: Server) -> bool:
    """Two workers, a writer and a refresher, and /readyz a 200 (the writer answers)."""
    found = roles(server)
    if not (len(found["worker"]) == 2 and found["writer"] and found["refresher"]):
        return False
    try:
        return httpx.get(server.url + "/readyz", timeout=10).status_code == 200  # ready, not fast
    except httpx.TransportError:
        return False


class Load:
    """Readers, a writer (PUT of new articles) and an event sender, each recording what was acknowledged."""

    def __init__(self, server: Server, token: str, rows: list[dict], tally: Tally, round_no: int):
        self.server, self.token, self.rows, self.tally, self.round_no = server, token, rows, tally, round_no
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=t, daemon=True) for t in (self.read, self.write, self.send_events)]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(120)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, headers={"Authorization": f"Bearer {self.token}"},
                            timeout=CLIENT_TIMEOUT)

    def read(self) -> None:
        with self.client() as client:
            while not self.stop.is_set():
                try:
                    r = client.get(f"/articles/{READ}/similar")
                    self.tally.reads["ok" if r.status_code == 200 else str(r.status_code)] += 1
                except httpx.TransportError:
                    self.tally.reads["connection lost (kill)"] += 1
                    time.sleep(0.1)

    def write(self) -> None:
        with self.client() as client:
            for n, row in enumerate(self.rows):
                if self.stop.is_set():
                    return
                article = {**row, "id": f"k{self.round_no}-{n}-{row['id']}"}
                try:
                    if client.put(f"/articles/{article['id']}", json=article).status_code == 200:
                        self.tally.writes.append(article["id"])
                except httpx.TransportError:
                    time.sleep(0.1)  # cut off by the kill: not acknowledged

    def send_events(self) -> None:
        with self.client() as client:
            n = 0
            while not self.stop.is_set():
                n += 1
                list_id = f"{self.round_no:04x}{n:012x}"
                now = datetime.now(UTC).isoformat()
                batch = [{"type": "impression", "article_id": self.rows[0]["id"], "item_id": self.rows[1]["id"],
                          "position": p, "list_id": list_id, "variant": "default", "ts": now} for p in (1, 2, 3)]
                try:
                    if client.post("/events", json=batch).status_code == 200:
                        self.tally.events.append(list_id)
                except httpx.TransportError:
                    pass
                time.sleep(0.05)


def kill_one(server: Server, role: str, rng: random.Random) -> list[int]:
    """SIGKILL one process of ``role``; the server's child processes as they were before it."""
    before = children(server)
    assert server.proc is not None
    victim = server.proc.pid if role == "server" else rng.choice(roles(server)[role])
    os.kill(victim, signal.SIGKILL)
    if role == "server":
        server.proc.wait()
    return before


def lost(data_dir: Path, tally: Tally) -> tuple[list[str], list[str]]:
    """Acknowledged article ids and event list ids that are not in the store."""
    with sqlite3.connect(f"file:{data_dir / 'articles.sqlite3'}?mode=ro", uri=True, timeout=30) as conn:
        ids = {r[0] for r in conn.execute("SELECT id FROM articles")}
        lists = {r[0] for r in conn.execute("SELECT DISTINCT list_id FROM events")}
    return [i for i in tally.writes if i not in ids], [i for i in tally.events if i not in lists]


def kill_rounds(server: Server, token: str, rows: list[dict], victims: Sequence[str], seed: int = 24) -> Tally:
    """A kill round on a started ``server`` for each role of ``victims`` (stopped at the end, every process it
    ever had checked gone); raises AssertionError at the first round that fails."""
    rng, tally = random.Random(seed), Tally()
    seen: set[int] = set()
    for round_no, role in enumerate(victims):
        wait_until(lambda: complete(server), READY_TIMEOUT_S, f"a complete, ready server before round {round_no}")
        with Load(server, token, rows[round_no * 40:(round_no + 1) * 40], tally, round_no):
            wait_until(grown(tally.writes), READY_TIMEOUT_S, "a write acknowledged under load")
            time.sleep(rng.uniform(0, 1.0))
            before = kill_one(server, role, rng)
            seen.update(before)
            tally.kills[role] += 1
            if role == "server":
                wait_until(lambda pids=before: no_orphans(pids), 60, "every process to end with the server")
                server.start()  # the same port
            wait_until(lambda: complete(server), READY_TIMEOUT_S, f"the server to recover from the kill of its {role}")
            time.sleep(rng.uniform(0.5, 1.5))  # load on the recovered server
        articles, events = lost(server.data_dir, tally)
        assert not articles and not events, f"round {round_no} ({role}): lost {articles[:5]} {events[:5]}"
    seen.update(children(server))
    server.stop()
    wait_until(lambda: no_orphans(list(seen)), 60, "no process of the server left after its stop")
    return tally


def grown(items: list[str]) -> Callable[[], bool]:
    """Whether ``items`` has grown since this call."""
    size = len(items)
    return lambda: len(items) > size


def no_orphans(pids: list[int]) -> bool:
    return not any(alive(pid) for pid in pids)
