"""Several processes on one data dir: every worker follows the store's write sequence, a CLI ingest beside a
running server loses nothing, and the refresher's queue survives a SIGKILL."""

import json
import sqlite3
import subprocess
import sys
import time

from index import load_index
from tests.service.conftest import TOKEN, Server

SOURCE = "N34700"


def query(data_dir, sql: str, *args):
    with sqlite3.connect(f"file:{data_dir / 'articles.sqlite3'}?mode=ro", uri=True, timeout=30) as conn:
        return conn.execute(sql, args).fetchall()


def wait_until(predicate, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def listed(client, article_id: str, **params) -> list[str]:
    r = client.get(f"/articles/{article_id}/similar", params=params)
    assert r.status_code == 200, r.text
    return [i["id"] for i in r.json()["items"]]


def test_a_delete_through_one_worker_is_seen_by_the_other_at_once(data_dir):
    one = Server(data_dir, RECOMMENDER_API_TOKEN=TOKEN).start()
    two = Server(data_dir, RECOMMENDER_API_TOKEN=TOKEN).start()
    try:
        with one.client() as a, two.client() as b:
            sources = [SOURCE, "N16278", "N35354"]
            victims = {listed(b, s)[0] for s in sources}
            for victim in victims:
                assert a.delete(f"/articles/{victim}").status_code == 204
                for _ in range(20):
                    for client in (a, b):
                        for s in sources:
                            assert victim not in listed(client, s)
                            assert victim not in listed(client, s, limit=20)
                            assert victim not in listed(client, s, strategy="bm25")
    finally:
        one.stop()
        two.stop()


def test_serve_with_two_workers_shares_one_data_dir(data_dir):
    server = Server(data_dir, RECOMMENDER_API_TOKEN=TOKEN, RECOMMENDER_WORKERS="2").start()
    try:
        with server.client() as writer:
            victim = listed(writer, SOURCE)[0]
            assert writer.delete(f"/articles/{victim}").status_code == 204
        for _ in range(40):  # a fresh connection each time: the kernel spreads them over both workers
            with server.client(token=None) as reader:
                assert victim not in listed(reader, SOURCE)
        pids = subprocess.run(["pgrep", "-P", str(server.proc.pid)], capture_output=True, text=True).stdout.split()
        assert len(pids) >= 2, "expected two worker processes"
    finally:
        server.stop()


def test_cli_ingest_beside_a_running_server_loses_nothing(data_dir, fresh_rows, tmp_path):
    source = tmp_path / "more.jsonl"
    source.write_text("\n".join(json.dumps(r) for r in fresh_rows[:30]))
    server = Server(data_dir, RECOMMENDER_API_TOKEN=TOKEN, RECOMMENDER_INDEX_SAVE_INTERVAL_S="0.2").start()
    try:
        done = subprocess.run([sys.executable, "-m", "recommender.cli", "ingest", str(source)], env=server.env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "queued for the running server's refresher" in done.stdout
        with server.client() as client:
            assert listed(client, fresh_rows[0]["id"])  # the server ranks what the CLI wrote
            wait_until(lambda: not query(data_dir, "SELECT 1 FROM refresh_queue LIMIT 1"))
            assert listed(client, fresh_rows[1]["id"], limit=20)
        time.sleep(1)  # let a checkpoint or two happen while running
    finally:
        server.stop()
    index, meta = load_index(data_dir / "index.faiss")
    published = [r[0] for r in query(data_dir, "SELECT key FROM articles WHERE status = 'published'")]
    assert sorted(index.ids().tolist()) == sorted(published)
    assert meta.seq == int(query(data_dir, "SELECT value FROM meta WHERE name = 'seq'")[0][0])


def test_sigkill_during_refresh_then_restart_finishes_the_queue(data_dir, fresh_rows):
    server = Server(data_dir, RECOMMENDER_API_TOKEN=TOKEN, RECOMMENDER_REFRESH_BATCH="2").start()
    try:
        with server.client() as client:
            batch = [{**a, "id": f"k-{a['id']}"} for a in fresh_rows[:60]]
            assert client.post("/articles", json=batch).status_code == 200
        wait_until(lambda: query(data_dir, "SELECT count(*) FROM boxes b JOIN articles a ON a.key = b.key "
                                           "WHERE a.id LIKE 'k-%'")[0][0] > 0, timeout=60)
        server.kill()  # mid-refresh: some boxes stored, the rest still queued
        left = query(data_dir, "SELECT count(*) FROM refresh_queue")[0][0]
        assert left > 0, "the refresher finished before the kill: the test proved nothing"
        server.start()
        wait_until(lambda: not query(data_dir, "SELECT 1 FROM refresh_queue LIMIT 1"))
        missing = query(data_dir, "SELECT id FROM articles WHERE status = 'published' AND key NOT IN "
                                  "(SELECT key FROM boxes)")
        assert not missing
        with server.client() as client:
            assert listed(client, batch[0]["id"])
    finally:
        server.stop()
