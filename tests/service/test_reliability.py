"""Crashes and concurrency: SIGKILL mid-ingest loses no acknowledged write and leaves no half state;
reads during writes never fail and never show an article after its DELETE returned."""

import json
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest

from recommender.engine import Recommender
from recommender.loaders import raw_rows
from tests.conftest import MIND_SAMPLE, SLICE, make_settings
from tests.service.conftest import READY_TIMEOUT_S, TOKEN, Server
from tests.service.killrounds import child_pids, command_of, kill_rounds, no_orphans, wait_until

KILL_ROUNDS = 3
CHUNK = 64  # articles per ingest transaction in the CLI test: small, so kills land between many chunks


@pytest.fixture(scope="module")
def fresh_rows() -> list[dict]:
    """MIND articles that are not in the ingested slice, as JSON-ready dicts."""
    rows = list(raw_rows(MIND_SAMPLE))[SLICE:]
    return [{k: v for k, v in r.items() if k in ("id", "title", "lead", "url", "section", "tags", "language")}
            for r in rows]


def assert_consistent(data_dir, embedder) -> Recommender:
    """Open the data dir as a restarted service would, and check store and index agree."""
    engine = Recommender(make_settings(data_dir), embedder=embedder)
    assert sorted(engine.index.ids().tolist()) == sorted(engine.store.published_keys().tolist())
    for _, article in engine.store.articles():
        assert engine.store.get(article.id).vector.shape == (embedder.dim,)
    return engine


def test_sigkill_during_http_writes_loses_no_acknowledged_article(data_dir, embedder, fresh_rows, capsys):
    rng = random.Random(7)
    acknowledged: list[str] = []
    batches = [fresh_rows[i:i + 10] for i in range(0, 300, 10)]
    server = Server(data_dir, RECOMMENDER_API_TOKEN=TOKEN, RECOMMENDER_INDEX_SAVE_INTERVAL_S="0.5")
    try:
        for round_no in range(KILL_ROUNDS):
            server.start()
            stop = threading.Event()

            def write(round_no: int = round_no, stop: threading.Event = stop) -> None:
                with server.client() as client:
                    for n, batch in enumerate(batches):
                        if stop.is_set():
                            return
                        batch = [{**a, "id": f"r{round_no}-{n}-{a['id']}"} for a in batch]
                        try:
                            r = client.post("/articles", json=batch)
                        except httpx.TransportError:
                            return  # killed mid-request: not acknowledged
                        if r.status_code == 200:
                            acknowledged.extend(a["id"] for a in batch)

            writer = threading.Thread(target=write)
            writer.start()
            # Kill at a random point after at least one more write was acknowledged (else the round proves nothing).
            before, deadline = len(acknowledged), time.monotonic() + READY_TIMEOUT_S
            while len(acknowledged) == before and writer.is_alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(rng.uniform(0, 1.5))
            server.kill()
            stop.set()
            writer.join()
            engine = assert_consistent(data_dir, embedder)
            missing = [i for i in acknowledged if engine.store.get(i) is None]
            engine.close()
            assert not missing, f"round {round_no}: acknowledged but lost: {missing[:5]}"
        with server.start().client() as client:  # and the service comes back and answers
            assert client.get(f"/articles/{acknowledged[-1]}/similar").status_code == 200
        server.stop()
    finally:
        server.kill()  # never leak a server when an assertion above fails
    with capsys.disabled():
        print(f"\nHTTP kill rounds: {KILL_ROUNDS} survived, {len(acknowledged)} acknowledged writes checked")
    assert acknowledged, "no write was acknowledged before the kills: the test proved nothing"


def test_sigkill_during_cli_ingest_leaves_whole_chunks_only(tmp_path, embedder, fresh_rows, capsys):
    rows = fresh_rows[: CHUNK * 5 + 20]
    source = tmp_path / "articles.jsonl"
    source.write_text("\n".join(json.dumps(r) for r in rows))
    data_dir = tmp_path / "data"
    env = {**Server(data_dir).env, "RECOMMENDER_INGEST_CHUNK": str(CHUNK), "RECOMMENDER_EMBED_PROCESSES": "2"}
    rng = random.Random(11)
    counts: list[int] = []
    for _ in range(KILL_ROUNDS):
        shutil.rmtree(data_dir, ignore_errors=True)
        proc = subprocess.Popen([sys.executable, "-m", "recommender.cli", "ingest", str(source)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Kill at a random point once the first chunk is in (before that there is nothing to lose).
        deadline = time.monotonic() + READY_TIMEOUT_S
        while stored_count(data_dir) == 0 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        # Its embedding processes: the next chunks are theirs while the first is written.
        helpers = [pid for pid in child_pids(proc.pid) if "spawn_main" in command_of(pid)]
        assert len(helpers) == 2, [command_of(pid) for pid in child_pids(proc.pid)]
        time.sleep(rng.uniform(0, 5) if counts else 0)  # the first kill lands while they embed
        proc.kill()
        proc.wait()
        wait_until(lambda pids=helpers: no_orphans(pids), 60, "the ingest's embedding processes to end with it")
        engine = assert_consistent(data_dir, embedder)
        counts.append(engine.store.count())
        engine.close()
        assert counts[-1] % CHUNK == 0 or counts[-1] == len(rows), f"half a chunk is visible: {counts[-1]}"
    # Re-running the ingest after a crash completes it.
    done = subprocess.run([sys.executable, "-m", "recommender.cli", "ingest", str(source)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    engine = assert_consistent(data_dir, embedder)
    assert engine.store.count() == len(rows)
    engine.close()
    with capsys.disabled():
        print(f"\nCLI kill rounds: {KILL_ROUNDS} survived, articles visible after each kill: {counts}")


def test_an_ingest_killed_while_embedding_resumes_embedding_only_the_rest(tmp_path, embedder, fresh_rows):
    """A 1M import is resumable: after a SIGKILL, running the same ingest again keeps every chunk committed
    before the kill as it was (nothing re-embedded) and embeds only the rest."""
    rows = fresh_rows[: CHUNK * 5]
    source = tmp_path / "articles.jsonl"
    source.write_text("\n".join(json.dumps(r) for r in rows))
    data_dir = tmp_path / "data"
    env = {**Server(data_dir).env, "RECOMMENDER_INGEST_CHUNK": str(CHUNK)}
    proc = subprocess.Popen([sys.executable, "-m", "recommender.cli", "ingest", str(source)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Killed as soon as the first chunk is committed: while the next one is being embedded.
    deadline = time.monotonic() + READY_TIMEOUT_S
    while stored_count(data_dir) == 0 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    engine = assert_consistent(data_dir, embedder)
    committed = {s.article.id: s for s in engine.store.stored(r["id"] for r in rows).values()}
    engine.close()
    assert 0 < len(committed) < len(rows) and len(committed) % CHUNK == 0, f"{len(committed)} stored at the kill"
    done = subprocess.run([sys.executable, "-m", "recommender.cli", "ingest", str(source)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rest = len(rows) - len(committed)
    assert f"{rest} new, 0 updated, {len(committed)} unchanged, {rest} embedded" in done.stdout, done.stdout
    engine = assert_consistent(data_dir, embedder)
    assert engine.store.count() == len(rows)
    after = engine.store.stored(committed)
    assert all(after[i].content_hash == s.content_hash and np.array_equal(after[i].vector, s.vector)
               for i, s in committed.items())
    engine.close()


def stored_count(data_dir) -> int:
    import sqlite3

    try:
        with sqlite3.connect(f"file:{data_dir / 'articles.sqlite3'}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT count(*) FROM articles").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_reads_during_writes_and_deletes_never_fail_nor_show_deleted(server, fresh_rows, capsys):
    sources = ["N34700", "N16278", "N35354"]
    with server.client() as client:
        lists = {s: [i["id"] for i in client.get(f"/articles/{s}/similar", params={"limit": 20}).json()["items"]]
                 for s in sources}
    victims = [ids[i] for ids in lists.values() for i in (0, 2)]
    deleted_at: dict[str, float] = {}
    reads: list[tuple[float, int, list[str]]] = []
    errors: list[str] = []
    stop = threading.Event()

    def read(seed: int):
        rng = random.Random(seed)
        with server.client(token=None) as client:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    r = client.get(f"/articles/{rng.choice(sources)}/similar", params={"limit": 20})
                except httpx.HTTPError as exc:
                    errors.append(repr(exc))
                    continue
                if r.status_code != 200:
                    errors.append(f"{r.status_code} {r.text[:200]}")
                else:
                    reads.append((started, r.status_code, [i["id"] for i in r.json()["items"]]))

    readers = [threading.Thread(target=read, args=(n,)) for n in range(6)]
    for t in readers:
        t.start()
    with server.client() as client:
        for n in range(6):
            batch = [{**a, "id": f"c{n}-{a['id']}"} for a in fresh_rows[n * 20:(n + 1) * 20]]
            assert client.post("/articles", json=batch).status_code == 200
            victim = victims[n]
            assert client.delete(f"/articles/{victim}").status_code == 204
            deleted_at[victim] = time.monotonic()
    time.sleep(0.5)
    stop.set()
    for t in readers:
        t.join()
    assert not errors, errors[:5]
    late = [(v, ids) for started, _, ids in reads for v, t in deleted_at.items() if started > t and v in ids]
    assert not late, f"deleted article listed after its DELETE returned: {late[:1]}"
    with capsys.disabled():
        print(f"\nconcurrent reads: {len(reads)} served, 0 errors, 6 batches and 6 deletes interleaved")
    assert len(reads) > 50


def test_an_http_batch_is_one_transaction_all_or_nothing(data_dir, fresh_rows, capsys):
    """A batch larger than the ingest chunk is never seen (nor left after a SIGKILL) half written."""
    import sqlite3

    def stored(prefix: str) -> int:
        with sqlite3.connect(data_dir / "articles.sqlite3", timeout=30) as conn:
            return conn.execute("SELECT count(*) FROM articles WHERE id LIKE ?", (prefix + "%",)).fetchone()[0]

    server = Server(data_dir, RECOMMENDER_API_TOKEN=TOKEN, RECOMMENDER_INGEST_CHUNK="8").start()
    try:
        batch = [{**a, "id": f"whole-{a['id']}"} for a in fresh_rows[:64]]
        answers: list[int] = []  # the writer loads the model, then embeds the batch: as long as that takes
        writer = threading.Thread(target=lambda: answers.append(_post(server, batch)))
        writer.start()
        seen = set()
        while writer.is_alive():
            seen.add(stored("whole-"))
            time.sleep(0.005)  # leave the cores to the server: a half-written batch would stay visible far longer
        seen.add(stored("whole-"))
        assert answers == [200], f"the batch was not acknowledged: {answers}"
        assert seen <= {0, len(batch)} and len(batch) in seen, f"counts seen while the batch was written: {seen}"

        batch = [{**a, "id": f"killed-{a['id']}"} for a in fresh_rows[64:192]]
        writer = threading.Thread(target=lambda: _post_ignoring_the_kill(server, batch))
        writer.start()
        time.sleep(random.Random(3).uniform(0.4, 0.9))
        server.kill()
        writer.join()
        assert stored("killed-") in (0, len(batch))
    finally:
        server.kill()
    with capsys.disabled():
        print(f"\nbatch of {len(batch)} killed mid-write: {stored('killed-')} stored (all or nothing)")


def _post(server: Server, batch: list[dict]) -> int:
    with server.client() as client:
        return client.post("/articles", json=batch).status_code


def _post_ignoring_the_kill(server: Server, batch: list[dict]) -> None:
    try:
        _post(server, batch)
    except httpx.TransportError:
        pass


def writer_of(server: Server) -> int:
    for pid in subprocess.run(["pgrep", "-P", str(server.proc.pid)], capture_output=True, text=True).stdout.split():
        if b"service.writer" in open(f"/proc/{pid}/cmdline", "rb").read():
            return int(pid)
    raise AssertionError("no writer process")


def test_a_full_disk_and_a_locked_database_are_503s_that_say_so_and_writes_resume_after(data_dir, fresh_rows):
    server = Server(data_dir, RECOMMENDER_API_TOKEN=TOKEN).start()
    try:
        with server.client() as client:  # the lock test's PUT waits out the store's 30 s busy timeout
            rows = iter({**row, "id": f"s-{row['id']}"} for row in fresh_rows)
            row = next(rows)
            assert client.put(f"/articles/{row['id']}", json=row).status_code == 200  # the writer is up
            writer = writer_of(server)
            unlimited = resource.prlimit(writer, resource.RLIMIT_FSIZE)
            resource.prlimit(writer, resource.RLIMIT_FSIZE, (1, unlimited[1]))  # no file may grow past 1 byte
            try:
                row = next(rows)
                r = client.put(f"/articles/{row['id']}", json=row)
            finally:
                resource.prlimit(writer, resource.RLIMIT_FSIZE, unlimited)
            assert r.status_code == 503 and r.headers["retry-after"], r.text
            assert "file size limit" in r.json()["detail"] or "disk" in r.json()["detail"], r.text
            assert client.get(f"/articles/{row['id']}").status_code == 404  # nothing of it stored
            assert client.put(f"/articles/{row['id']}", json=row).status_code == 200  # space again: stored
            with sqlite3.connect(data_dir / "articles.sqlite3", isolation_level=None) as lock:
                lock.execute("BEGIN IMMEDIATE")  # another process holds the write lock past the 30 s timeout
                row = next(rows)
                r = client.put(f"/articles/{row['id']}", json=row)
                lock.execute("ROLLBACK")
            assert r.status_code == 503 and r.headers["retry-after"], r.text
            assert "locked by another process" in r.json()["detail"], r.text
            assert client.put(f"/articles/{row['id']}", json=row).status_code == 200
    finally:
        server.stop()


def test_kill_rounds_of_any_process_under_load_lose_nothing_and_leave_a_working_server_on_the_port(
        data_dir, fresh_rows, capsys):
    # benchmarks/kill.py runs 20 such rounds.
    server = Server(data_dir, RECOMMENDER_API_TOKEN=TOKEN, RECOMMENDER_WORKERS="2",
                    RECOMMENDER_EVENTS_RATE_PER_S="10000", RECOMMENDER_EVENTS_FLUSH_INTERVAL_S="0.05").start()
    try:
        tally = kill_rounds(server, TOKEN, fresh_rows, victims=("server", "writer", "worker"))
    finally:
        server.kill()
    with capsys.disabled():
        print(f"\nkill rounds: {tally.line()}")
    assert tally.writes and tally.events and tally.reads["ok"]
