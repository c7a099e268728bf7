"""Events and experiments over HTTP: every list says its list_id and variant, readers keep their variant, a
variant's options rank its lists, cached lists never cross variants, and events are validated, capped,
rate-limited and stored before they are acknowledged."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from recommender.events import EventStore
from recommender.rank import SimilarQuery
from recommender.store.sqlite import SQLiteStore
from service.app import create_app
from tests.conftest import make_settings
from tests.service.conftest import TOKEN, private_copy

SOURCE = "N34700"
AB = {"variants": [{"name": "control", "share": 0.5},
                   {"name": "diverse", "share": 0.5, "options": {"mmr_lambda": 0.5, "group_stories": False}}]}


def events_of(body: dict, clicked: int | None = None, ts: datetime | None = None) -> list[dict]:
    when = (ts or datetime.now(UTC)).isoformat()
    shown = [{"type": "impression", "article_id": body["article_id"], "item_id": item["id"], "position": n,
              "list_id": body["list_id"], "variant": body["variant"], "ts": when}
             for n, item in enumerate(body["items"], 1)]
    return shown + ([dict(shown[clicked - 1], type="click")] if clicked else [])


def test_a_list_outside_experiments_is_the_default_variant_with_its_list_id(api):
    stored = api.get(f"/articles/{SOURCE}/similar").json()
    assert stored["variant"] == "default" and len(stored["list_id"]) == 16
    assert api.get(f"/articles/{SOURCE}/similar", params={"reader": "r1"}).json() == stored
    custom = api.get(f"/articles/{SOURCE}/similar", params={"strategy": "bm25"}).json()
    assert custom["variant"] == "custom" and custom["list_id"] != stored["list_id"]
    assert api.post("/similar", json={"title": "Marathon in the rain"}).json()["variant"] == "preview"


def test_events_are_stored_before_they_are_acknowledged(api, app):
    body = api.get(f"/articles/{SOURCE}/similar").json()
    r = api.post("/events", json=events_of(body, clicked=2))
    assert r.status_code == 200 and r.json() == {"stored": len(body["items"]) + 1}
    other = SQLiteStore(app.state.settings.db_path)  # other connections: what they read was committed
    counts = EventStore(other).counts(["default"])["default"]
    other.close()
    assert counts[2].clicks >= 1 and counts[1].impressions >= 1


@pytest.mark.parametrize("change, field", [
    ({"type": "view"}, "type"), ({"position": 0}, "position"), ({"list_id": "zz"}, "list_id"),
    ({"variant": "Bad Label"}, "variant"), ({"ts": "2026-11-26T10:00:00"}, "ts"), ({"item_id": " N1"}, "item_id"),
])
def test_a_bad_event_is_a_422_naming_it_and_nothing_of_the_batch_is_stored(api, change, field):
    good = events_of(api.get(f"/articles/{SOURCE}/similar").json())
    r = api.post("/events", json=[good[0], dict(good[1], **change)])
    assert r.status_code == 422 and ["body", 1, field] == r.json()["errors"][0]["loc"][:3], r.text


def test_times_far_off_are_refused(api):
    body = api.get(f"/articles/{SOURCE}/similar").json()
    r = api.post("/events", json=events_of(body, ts=datetime.now(UTC) + timedelta(days=1)))
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", 0, "ts"]


def test_events_are_public_but_capped_and_rate_limited(ingested_dir, tmp_path_factory, embedder):
    from fastapi.testclient import TestClient

    from recommender.engine import Recommender

    settings = make_settings(private_copy(ingested_dir, tmp_path_factory), api_token=TOKEN, events_max_batch=20,
                             events_burst=30, events_rate_per_s=1)
    with Recommender(settings, embedder=embedder) as engine, TestClient(create_app(settings, engine)) as anon:
        batch = events_of(anon.get(f"/articles/{SOURCE}/similar", params={"limit": 10}).json())
        assert anon.post("/events", json=batch * 3).status_code == 413  # 30 events, over the batch cap
        assert anon.post("/events", json=batch * 2).json() == {"stored": 20}
        refused = anon.post("/events", json=batch * 2)
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 10
        assert "events/s" in refused.json()["detail"]
        assert anon.post("/events", json=batch).status_code == 200  # the 10 left of the burst


def test_an_experiment_splits_readers_who_keep_their_variant(api, app):
    assert api.put("/experiments/ab", json=AB).json()["active"] is True
    seen = {api.get(f"/articles/{SOURCE}/similar", params={"reader": f"r{i}"}).json()["variant"]
            for i in range(40)}
    assert seen == {"ab/control", "ab/diverse"}
    again = [api.get(f"/articles/{SOURCE}/similar", params={"reader": "r7"}).json() for _ in range(3)]
    assert len({json.dumps(body) for body in again}) == 1
    by_header = api.get(f"/articles/{SOURCE}/similar", headers={"x-reader": "r7"}).json()
    assert by_header == again[0]


def test_a_variant_is_ranked_with_its_options_and_control_is_the_stored_box(api, app):
    api.put("/experiments/ab", json=AB)
    engine = app.state.recommender
    bodies = {}
    for i in range(40):
        body = api.get(f"/articles/{SOURCE}/similar", params={"reader": f"r{i}"}).json()
        bodies[body["variant"]] = body
    control, diverse = bodies["ab/control"], bodies["ab/diverse"]
    assert json.loads(engine.stored_list_json(SOURCE, 8, "ab/control")) == control
    options = SimilarQuery(mmr_lambda=0.5, group_stories=False)
    assert json.loads(engine.list_json(SOURCE, engine.similar(SOURCE, options), "ab/diverse")) == diverse
    assert control["list_id"] != diverse["list_id"]


def test_cached_lists_never_cross_variants_in_an_a_a_test(api):
    """Two variants with the same options: the same items, each under its own label and list id, whichever
    reader asked first (the response cache keys on the variant)."""
    aa = {"variants": [{"name": "a", "share": 0.5, "options": {"strategy": "bm25"}},
                       {"name": "b", "share": 0.5, "options": {"strategy": "bm25"}}]}
    api.put("/experiments/aa", json=aa)
    bodies = [api.get(f"/articles/{SOURCE}/similar", params={"reader": f"r{i}"}).json() for i in range(30)]
    labels = {b["variant"]: b["list_id"] for b in bodies}
    assert set(labels) == {"aa/a", "aa/b"} and len(set(labels.values())) == 2
    assert all(b["list_id"] == labels[b["variant"]] for b in bodies)
    assert len({json.dumps(b["items"]) for b in bodies}) == 1


def test_the_report_counts_each_variant_and_compares_it_with_control(api):
    api.put("/experiments/rep", json=AB)
    for i in range(30):
        body = api.get(f"/articles/{SOURCE}/similar", params={"reader": f"r{i}"}).json()
        assert api.post("/events", json=events_of(body, clicked=1 if i % 3 == 0 else None)).status_code == 200
    report = api.get("/experiments/rep").json()
    assert report["experiment"]["name"] == "rep" and "z-test" in report["test"]
    variants = {v["variant"]: v for v in report["variants"]}
    assert sum(v["impressions"] for v in variants.values()) == 30 * 8
    assert sum(v["clicks"] for v in variants.values()) == 10
    assert variants["rep/control"]["by_position"][0]["position"] == 1
    comparison = report["comparisons"][0]
    assert comparison["control"] == "rep/control" and "too small to say" in comparison["note"]
    assert [e["name"] for e in api.get("/experiments").json()][:1] == ["rep"]


def test_experiments_need_the_token_and_a_valid_definition(api, anon):
    assert anon.put("/experiments/x", json=AB).status_code == 401
    r = api.put("/experiments/x", json={"variants": [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.6}]})
    assert r.status_code == 422 and "add up to 1" in r.json()["detail"]
    assert api.get("/experiments/no-such").status_code == 404
    assert api.get("/experiments/rep", params={"since": "last week"}).status_code == 422


def test_stopping_the_experiment_brings_back_the_default_list(api):
    api.put("/experiments/rep", json={**AB, "active": False})  # the running one
    assert api.get(f"/articles/{SOURCE}/similar", params={"reader": "r1"}).json()["variant"] == "default"


def test_acknowledged_events_survive_a_sigkill_of_the_server(ingested_dir, tmp_path_factory):
    """Batches posted from 4 clients at once, the server SIGKILLed right after: every event answered 200 is in
    the store when it is opened again."""
    import sqlite3
    import threading

    from tests.service.conftest import Server

    server = Server(private_copy(ingested_dir, tmp_path_factory), RECOMMENDER_EVENTS_RATE_PER_S="100000",
                    RECOMMENDER_EVENTS_BURST="100000").start()
    acked: list[int] = []
    try:
        with server.client() as api:
            batch = events_of(api.get(f"/articles/{SOURCE}/similar").json(), clicked=1)

        def post(n: int) -> None:
            with server.client() as api:
                for _ in range(10):
                    acked.append(api.post("/events", json=batch).json()["stored"])

        threads = [threading.Thread(target=post, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        server.kill()
    with sqlite3.connect(server.data_dir / "articles.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM events").fetchone()[0] == sum(acked) == 40 * len(batch)


def test_events_sent_as_a_beacon_as_text_plain_are_taken_and_other_writes_are_still_json_only(api):
    body = api.get(f"/articles/{SOURCE}/similar").json()
    beacon = json.dumps(events_of(body, clicked=1)).encode()
    r = api.post("/events", content=beacon, headers={"Content-Type": "text/plain;charset=UTF-8"})
    assert r.status_code == 200 and r.json() == {"stored": len(body["items"]) + 1}
    assert api.post("/events", content=b"not json", headers={"Content-Type": "text/plain"}).status_code == 422
    r = api.post("/articles", content=b"[]", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
