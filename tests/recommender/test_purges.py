"""Purges for a CDN: every write that changes or removes an article queues its purge in the write's own
transaction (on both backends), the sender hands them to a real HTTP endpoint on loopback (PURGE or POST, keys in a
header or a JSON body), a failure is retried with backoff, and nothing queued is lost across a restart."""

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from recommender.engine import Recommender
from recommender.overrides import BoxOverrides, Pin
from recommender.purges import PurgeQueue, PurgeSender, purge_key
from recommender.refresher import Refresher
from recommender.store.sql import now_ms
from service.metrics import exposition
from tests.conftest import make_settings, on_postgres
from tests.service.conftest import free_port

SOURCE, OTHER, THIRD = "N34700", "N16278", "N35354"


class PurgeEndpoint:
    """A real HTTP server on a free loopback port that records the purges it gets (method, headers, body) and
    answers ``status``."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.status = 200
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def _take(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                endpoint.requests.append((self.command, {k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(endpoint.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_PURGE = do_POST = _take

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/purge"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def keys(self, header: str = "surrogate-key") -> set[str]:
        return {k for _, headers, _ in self.requests for k in headers.get(header, "").split()}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint() -> Iterator[PurgeEndpoint]:
    e = PurgeEndpoint()
    yield e
    e.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def purging(request, data_dir, embedder, endpoint) -> Iterator[Recommender]:
    """The engine with purges on (RECOMMENDER_PURGE_URL at the endpoint, PURGE with the keys in a header, sent
    without delay), on each backend."""
    options = {"purge_url": endpoint.url, "purge_method": "PURGE", "purge_delay_s": 0}
    settings = make_settings(data_dir, **options) if request.param == "sqlite" else \
        on_postgres(data_dir, request.getfixturevalue("database_url"), **options)
    with Recommender(settings, embedder=embedder) as engine:
        yield engine


def queued(engine: Recommender) -> set[str]:
    return {article_id for article_id, _, _ in PurgeQueue(engine.store).due(1000, now_ms() + 10**9)}


def test_every_write_that_changes_or_removes_an_article_queues_its_purge(purging):
    engine = purging
    assert queued(engine) == set()
    article = engine.get(OTHER)
    engine.upsert_all([replace(article, title=article.title + " (updated)")])
    assert queued(engine) == {OTHER}
    engine.upsert_all([replace(article, status="unpublished")])
    engine.delete(THIRD)
    assert queued(engine) == {OTHER, THIRD}
    engine.block_everywhere("N1256", "legal")
    engine.set_box_overrides(SOURCE, BoxOverrides(pins=(Pin(OTHER, 1),), blocks=frozenset({"N9999"})))
    assert queued(engine) == {OTHER, THIRD, "N1256", SOURCE}


def test_without_a_purge_url_nothing_is_queued(engine):
    engine.delete(THIRD)
    engine.block_everywhere("N1256")
    assert queued(engine) == set() and PurgeQueue(engine.store).pending() == 0


def test_the_sender_purges_the_articles_keys_and_takes_them_off_the_queue(purging, endpoint):
    engine = purging
    engine.delete(THIRD)
    engine.block_everywhere("N1256")
    sender = PurgeSender(PurgeQueue(engine.store), engine.settings)
    assert sender.send_due() == 2
    [(method, headers, _)] = endpoint.requests
    assert method == "PURGE" and set(headers["surrogate-key"].split(" ")) == {purge_key(THIRD), purge_key("N1256")}
    assert queued(engine) == set() and PurgeQueue(engine.store).counts() == (2, 0)
    assert sender.send_due() == 0 and len(endpoint.requests) == 1


def test_keys_in_a_json_body_by_post_with_the_configured_headers_in_batches(data_dir, embedder, endpoint):
    settings = make_settings(data_dir, purge_url=endpoint.url, purge_keys_in="json", purge_batch=2,
                             purge_headers={"Authorization": "Bearer cf-token"})
    with Recommender(settings, embedder=embedder) as engine:
        for article_id in (SOURCE, OTHER, THIRD):
            engine.delete(article_id)
        assert PurgeSender(PurgeQueue(engine.store), settings).send_due() == 3
    assert [m for m, _, _ in endpoint.requests] == ["POST", "POST"]
    assert all(h["authorization"] == "Bearer cf-token" and h["content-type"] == "application/json"
               for _, h, _ in endpoint.requests)
    tags = [json.loads(body)["tags"] for _, _, body in endpoint.requests]
    assert sorted(len(t) for t in tags) == [1, 2]
    assert {k for t in tags for k in t} == {purge_key(i) for i in (SOURCE, OTHER, THIRD)}


def test_a_failed_purge_stays_queued_and_is_retried_with_a_doubling_delay(purging, endpoint):
    engine = purging
    engine.delete(THIRD)
    queue, sender = PurgeQueue(engine.store), PurgeSender(PurgeQueue(engine.store), engine.settings)
    endpoint.status = 503
    now = now_ms()
    assert sender.send_due(now) == 0
    assert queue.due(10, now + 999) == [] and queue.due(10, now + 1000) == [(THIRD, engine.store.seq, 1)]
    assert sender.send_due(now + 1000) == 0
    assert queue.due(10, now + 1000 + 1999) == [] and queue.due(10, now + 3000)[0][2] == 2
    assert queue.counts() == (0, 2)
    endpoint.status = 200
    assert sender.send_due(now + 3000) == 1 and queue.pending() == 0 and queue.counts() == (1, 2)
    metrics = exposition(engine).decode()
    assert "recommender_purges_pending 0.0" in metrics and "recommender_purges_sent_total 1.0" in metrics
    assert "recommender_purges_failed_total 2.0" in metrics


def test_a_write_after_a_purge_was_read_keeps_its_own_purge(purging):
    engine = purging
    engine.delete(THIRD)
    queue = PurgeQueue(engine.store)
    rows = queue.due(10, now_ms())
    engine.block_everywhere(THIRD)  # written while the purge of the delete is on its way
    queue.sent(rows)
    assert queued(engine) == {THIRD}


def test_queued_purges_survive_a_restart(data_dir, embedder, endpoint):
    dead = f"http://127.0.0.1:{free_port()}/purge"  # nothing listens: every purge fails
    settings = make_settings(data_dir, purge_url=dead, purge_method="PURGE")
    with Recommender(settings, embedder=embedder) as engine:
        engine.delete(THIRD)
        assert PurgeSender(PurgeQueue(engine.store), settings).send_due() == 0
    settings = make_settings(data_dir, purge_url=endpoint.url, purge_method="PURGE")
    with Recommender(settings, embedder=embedder) as engine:
        assert PurgeSender(PurgeQueue(engine.store), settings).send_due(now_ms() + 60_000) == 1
    assert endpoint.keys() == {purge_key(THIRD)}


def test_the_refresher_sends_purges_by_itself(data_dir, embedder, endpoint):
    settings = make_settings(data_dir, purge_url=endpoint.url, purge_method="PURGE")
    with Recommender(settings, embedder=embedder) as engine:
        refresher = Refresher(engine).start()
        try:
            engine.delete(THIRD)
            deadline = time.monotonic() + 30
            while purge_key(THIRD) not in endpoint.keys() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert endpoint.keys() == {purge_key(THIRD)}
        finally:
            refresher.stop()


def test_purges_wait_the_delay_after_their_write_one_second_by_default_with_postgresql(engine, endpoint):
    settings = replace_settings(engine, purge_url=endpoint.url, purge_delay_s=0.5)
    engine.store.purges = True
    before = now_ms()
    engine.delete(THIRD)
    sender = PurgeSender(PurgeQueue(engine.store), settings)
    assert sender.send_due(before + 499) == 0 and endpoint.requests == []  # due at the write's time, or later
    assert sender.send_due(now_ms() + 500) == 1 and endpoint.keys() == {purge_key(THIRD)}
    assert PurgeSender(sender.queue, replace_settings(engine, purge_url=endpoint.url)).delay_ms == 0
    on_postgres_settings = replace_settings(engine, purge_url=endpoint.url, database_url="postgresql://u@127.0.0.1/d")
    assert PurgeSender(sender.queue, on_postgres_settings).delay_ms == 1000


def replace_settings(engine: Recommender, **changes):
    return engine.settings.model_copy(update=changes)


def test_a_purge_url_that_is_not_http_is_refused_with_what_to_do(tmp_path):
    with pytest.raises(ValueError, match="must be an http:// or https:// URL"):
        make_settings(tmp_path, purge_url="varnish.internal:6081")
