"""GET /metrics: Prometheus counters of requests by route and status, latencies, where each list came from
(stored box, cache, ranked, preview), writes, and the store's queue and articles at scrape time."""

from prometheus_client.parser import text_string_to_metric_families

from tests.service.conftest import CLIENT_TIMEOUT, TOKEN, Server

SOURCE = "N34700"
SIMILAR = "/articles/{article_id}/similar"


def scrape(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_each_list_is_counted_by_where_it_came_from(api, anon):
    before = scrape(api)
    assert anon.get(f"/articles/{SOURCE}/similar").status_code == 200  # its stored box, before routing
    for _ in range(2):  # ranked on demand, then the same bytes from the cache (options no other test asks for;
        params = {"strategy": "bm25", "exclude": "metrics-probe"}  # a reader's: the editor's are never cached)
        assert anon.get(f"/articles/{SOURCE}/similar", params=params).status_code == 200
    assert api.post("/similar", json={"title": "Marathon in the rain"}).status_code == 200
    after = scrape(api)
    for source in ("stored", "ranked", "cached", "preview"):
        assert value(after, "recommender_lists_total", source=source) == \
            value(before, "recommender_lists_total", source=source) + 1, source


def test_requests_are_counted_by_route_template_method_and_status_with_their_latency(api):
    before = scrape(api)
    api.get(f"/articles/{SOURCE}/similar")
    api.get("/articles/no-such-id/similar", params={"limit": 3})
    api.get("/no/such/route")
    after = scrape(api)
    ok = {"route": SIMILAR, "method": "GET", "status": "200"}
    assert value(after, "recommender_http_requests_total", **ok) == value(before, "recommender_http_requests_total", **ok) + 1
    missing = dict(ok, status="404")
    assert value(after, "recommender_http_requests_total", **missing) == \
        value(before, "recommender_http_requests_total", **missing) + 1
    unmatched = {"route": "(unmatched)", "method": "GET", "status": "404"}  # no label per probed path
    assert value(after, "recommender_http_requests_total", **unmatched) == \
        value(before, "recommender_http_requests_total", **unmatched) + 1
    count = "recommender_http_request_duration_seconds_count"
    assert value(after, count, route=SIMILAR) == value(before, count, route=SIMILAR) + 2
    assert value(after, "recommender_http_request_duration_seconds_bucket", route=SIMILAR, le="+Inf") == \
        value(after, count, route=SIMILAR)


def test_writes_and_the_store_are_counted(api):
    before = scrape(api)
    article = {"title": "Metrics marathon", "lead": "A runner counted.", "section": "sports"}
    assert api.put("/articles/metrics-1", json=article).json()["created"] == 1
    assert api.put("/articles/metrics-1", json=article).json()["unchanged"] == 1
    assert api.delete("/articles/metrics-1").status_code == 204
    after = scrape(api)
    for name, labels in (("recommender_articles_written_total", {"result": "created"}),
                         ("recommender_articles_written_total", {"result": "unchanged"}),
                         ("recommender_articles_embedded_total", {}), ("recommender_articles_deleted_total", {})):
        assert value(after, name, **labels) == value(before, name, **labels) + 1, name
    assert value(after, "recommender_articles_indexed") == value(before, "recommender_articles_indexed") > 300
    assert value(after, "recommender_articles_stored") >= value(after, "recommender_articles_indexed")
    assert ("recommender_refresh_queue_length", ()) in after and ("recommender_refresh_lag_writes", ()) in after


def test_the_refresh_queue_and_its_lag_in_writes(engine):
    from dataclasses import replace

    from recommender.refresher import refresh_queued

    assert (engine.store.queue_length(), engine.store.refresh_lag()) == (0, 0)
    first = engine.get(SOURCE)
    engine.upsert([replace(first, id="lag-1")])
    engine.upsert([replace(first, id="lag-2", title="Another title")])
    assert engine.store.queue_length() > 0 and engine.store.refresh_lag() == 2  # the oldest entry: 2 writes old
    refresh_queued(engine)
    assert (engine.store.queue_length(), engine.store.refresh_lag()) == (0, 0)


def test_several_workers_are_summed_and_the_json_log_never_holds_the_token(data_dir):
    """Two worker processes (prometheus-client's multiprocess mode): /metrics, from either worker, counts the
    requests both answered; the JSON access log holds one line per request and no token, right or wrong."""
    import json

    import httpx

    server = Server(data_dir, RECOMMENDER_API_TOKEN=TOKEN, RECOMMENDER_WORKERS="2",
                    RECOMMENDER_LOG_FORMAT="json").start()
    try:
        ids = [f"probe-{n}" for n in range(40)]
        for request_id in ids:  # a new connection each: the kernel spreads them over the workers
            response = httpx.get(f"{server.url}/articles/{SOURCE}/similar", headers={"X-Request-ID": request_id},
                                 timeout=CLIENT_TIMEOUT)
            assert response.status_code == 200 and response.headers["x-request-id"] == request_id
        with server.client() as writer:
            assert writer.put("/articles/log-1", json={"title": "Logged marathon"}).status_code == 200
        with server.client(token="wrong-token-987654321") as intruder:
            assert intruder.put("/articles/log-2", json={"title": "Refused"}).status_code == 401
        scrapes = [scrape(httpx.Client(base_url=server.url, timeout=CLIENT_TIMEOUT)) for _ in range(6)]
        totals = [value(samples, "recommender_http_requests_total", route=SIMILAR, method="GET", status="200")
                  for samples in scrapes]
        assert set(totals) == {40.0}  # whichever worker answered the scrape
        for samples in scrapes:  # a series per process with the app: only the writer, which took the write, loaded
            loads = sorted(v for (name, _), v in samples.items() if name == "recommender_model_load_seconds")
            assert len(loads) >= 3 and loads[-2] == 0 < loads[-1]
    finally:
        server.stop()
    lines = [json.loads(line) for line in server.log.read_text().splitlines() if line.startswith("{")]
    access = [line for line in lines if line["logger"] == "recommender.access"]
    probes = [line for line in access if line["request_id"] in ids]
    assert len(probes) == 40 and len({line["process"] for line in probes}) == 2
    assert {(p["method"], p["path"], p["status"]) for p in probes} == {("GET", f"/articles/{SOURCE}/similar", 200)}
    assert all(p["duration_ms"] >= 0 for p in probes)
    assert {line["status"] for line in access if line["path"].startswith("/articles/log-")} == {200, 401}
    text = server.log.read_text()
    assert TOKEN not in text and "wrong-token-987654321" not in text
    assert any(line["logger"].startswith("uvicorn") for line in lines)  # the server's own lines are JSON too
