"""The HTTP API, in-process (``TestClient`` of ``create_app``): lists, previews, writes, takedowns, auth and
errors. ``test_e2e.py`` runs the same app as a real server."""

import inspect
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from service.routes import similar
from service.schemas import ErrorBody

SOURCE = "N34700"


def test_health_and_readiness(api):
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz").json()
    assert ready["status"] == "ready" and ready["articles"] > 0


def test_similar_list_for_a_known_article(api):
    body = api.get(f"/articles/{SOURCE}/similar").json()
    assert body["article_id"] == SOURCE
    items = body["items"]
    assert 0 < len(items) <= 8
    assert SOURCE not in [i["id"] for i in items]
    assert set(items[0]) >= {"id", "title", "url", "published_at", "section", "image_url", "score"}


def test_limit_strategy_explain_and_exclude(api):
    first = api.get(f"/articles/{SOURCE}/similar", params={"limit": 3, "explain": "true"}).json()["items"]
    assert len(first) == 3 and set(first[0]["explanation"]) == {"semantic", "lexical", "recency", "diversity_penalty",
                                                                   "popularity"}
    skipped = api.get(f"/articles/{SOURCE}/similar", params={"limit": 3, "exclude": first[0]["id"]}).json()["items"]
    assert first[0]["id"] not in [i["id"] for i in skipped]
    for strategy in ("embedding", "tfidf", "bm25"):
        assert api.get(f"/articles/{SOURCE}/similar", params={"strategy": strategy}).json()["items"]


def test_section_filter(api):
    items = api.get(f"/articles/{SOURCE}/similar", params={"section": "sports"}).json()["items"]
    assert items and {i["section"] for i in items} == {"sports"}


def _blocking_calls(dependant: Dependant) -> list[str]:
    """The plain functions in ``dependant``'s tree, which FastAPI runs in the thread pool."""
    call = dependant.call
    runs_in_loop = call is None or inspect.iscoroutinefunction(call if inspect.isroutine(call) else type(call).__call__)
    return ([] if runs_in_loop else [getattr(call, "__name__", repr(call))]) + [
        name for sub in dependant.dependencies for name in _blocking_calls(sub)]


def test_a_list_request_goes_to_the_thread_pool_once_for_the_list_alone():
    lists = [r for r in similar.router.routes if isinstance(r, APIRoute) and "GET" in r.methods
             and r.path.startswith("/articles/{article_id}/similar")]
    assert len(lists) == 2  # JSON and HTML
    for route in lists:
        assert _blocking_calls(route.dependant) == [], route.path


def test_lists_ranked_on_demand_take_turns_in_a_server_process(app, api, monkeypatch):
    """RECOMMENDER_RANKING_THREADS, 1 by default: requests that arrive together for lists no stored box answers are
    ranked one after the other, and each is answered."""
    engine, lock = app.state.recommender, threading.Lock()
    ranking, most = 0, 0
    list_body = engine.list_body

    def counted(*args):
        nonlocal ranking, most
        with lock:
            ranking += 1
            most = max(most, ranking)
        try:
            time.sleep(0.05)  # the other requests arrive meanwhile
            return list_body(*args)
        finally:
            with lock:
                ranking -= 1

    monkeypatch.setattr(engine, "list_body", counted)
    lambdas = [0.5 + i / 100 for i in range(6)]  # six option sets: no response cached for another
    with ThreadPoolExecutor(len(lambdas)) as pool:
        responses = list(pool.map(lambda mmr: api.get(f"/articles/{SOURCE}/similar", params={"mmr_lambda": mmr}),
                                  lambdas))
    assert [r.status_code for r in responses] == [200] * len(lambdas)
    assert most == 1


def test_a_stored_html_box_takes_no_turn_and_a_box_ranked_on_demand_waits_for_one(app, api):
    """A page view embedding the HTML box is answered from its stored box while every turn is taken by lists
    ranked on demand (as the JSON list is, before routing)."""
    turns, ranking = app.state.ranking_turns, object()
    api.portal.call(turns.acquire_on_behalf_of, ranking)  # RECOMMENDER_RANKING_THREADS: 1, taken
    pool = ThreadPoolExecutor(2)
    try:
        stored = pool.submit(api.get, f"/articles/{SOURCE}/similar.html")
        ranked = pool.submit(api.get, f"/articles/{SOURCE}/similar.html", params={"mmr_lambda": 0.42})
        assert stored.result(timeout=60).status_code == 200
        assert not ranked.done()  # in the queue for the turn
    finally:
        api.portal.call(turns.release_on_behalf_of, ranking)
        pool.shutdown(wait=False)
    assert ranked.result(timeout=60).status_code == 200


def test_a_list_whose_client_is_gone_by_its_turn_is_not_ranked_and_is_logged_499(app, api, monkeypatch):
    """A box script or a CDN that gave up (and may have asked again) is not ranked for: the readers queued behind
    it would wait for a list nobody receives."""
    engine, ranked, sent = app.state.recommender, [], []
    list_body = engine.list_body

    def counted(*args):
        ranked.append(args)
        return list_body(*args)

    monkeypatch.setattr(engine, "list_body", counted)

    async def gone() -> dict:  # the connection closed while the request waited for its turn
        return {"type": "http.disconnect"}

    async def record(message: dict) -> None:
        sent.append(message)

    path = f"/articles/{SOURCE}/similar"
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"mmr_lambda=0.43",
             "headers": [(b"host", b"testserver")], "client": ("127.0.0.1", 50000), "server": ("testserver", 80)}
    api.portal.call(app, scope, gone, record)
    assert ranked == [] and sent[0]["status"] == 499
    assert api.get(path, params={"mmr_lambda": 0.43}).status_code == 200 and len(ranked) == 1  # a client that waits


def test_a_health_check_never_reads_the_store(app, anon, monkeypatch):
    """Only a list reads the store's sequence before routing (its cache's generation): a probe must not wait on a
    database that does not answer."""
    engine, reads = app.state.recommender, []
    current = engine.current_generation

    def counted():
        reads.append(1)
        return current()

    monkeypatch.setattr(engine, "current_generation", counted)
    assert anon.get("/healthz").status_code == 200 and reads == []
    assert anon.get(f"/articles/{SOURCE}/similar", params={"mmr_lambda": 0.44}).status_code == 200 and reads


def test_unknown_article_is_404_with_a_reason(api):
    r = api.get("/articles/no-such-id/similar")
    assert r.status_code == 404 and "no-such-id" in r.json()["detail"]


@pytest.mark.parametrize("params, field", [({"limit": 0}, "limit"), ({"limit": 51}, "limit"),
                                            ({"strategy": "magic"}, "strategy"), ({"window_days": -1}, "window_days")])
def test_bad_parameters_are_422_naming_the_field(api, params, field):
    r = api.get(f"/articles/{SOURCE}/similar", params=params)
    assert r.status_code == 422
    assert field in [e["loc"][-1] for e in r.json()["errors"]]


def test_preview_for_unindexed_text(api):
    r = api.post("/similar", json={"title": "Marine Corps Marathon", "text": "A runner won the race in the rain"})
    assert r.status_code == 200 and r.json()["items"][0]["section"] == "sports"


def test_writes_need_the_token(app, anon):
    wrong = TestClient(app, headers={"Authorization": "Bearer wrong"})
    basic = TestClient(app, headers={"Authorization": "Basic dGVzdA=="})
    for client in (anon, wrong, basic):
        for r in (client.put("/articles/x1", json={"title": "t"}),
                  client.post("/articles", json=[{"id": "x1", "title": "t"}]),
                  client.delete(f"/articles/{SOURCE}")):
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert anon.get(f"/articles/{SOURCE}/similar").status_code == 200  # reads are public
    assert anon.get(f"/articles/{SOURCE}").status_code == 200


def test_the_openapi_document_declares_the_bearer_scheme_on_writes_reports_and_editors_histories_only(api):
    spec = api.get("/openapi.json").json()
    scheme = spec["components"]["securitySchemes"]["writer"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    private_reads = ("/experiments/{name}", "/articles/{article_id}/overrides/history", "/blocked/history")
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            public = (method == "get" and path not in private_reads) or \
                (method, path) in (("post", "/similar"), ("post", "/events"))
            assert ("security" in operation) != public, (method, path)


def test_put_then_list_then_takedown(api):
    article = {"title": "Marine Corps Marathon winner speaks about the rain", "lead": "Jordan Tropf won again.",
               "section": "sports", "published_at": "2019-10-28T10:00:00Z"}
    r = api.put("/articles/e2e-1", json=article)
    assert r.status_code == 200 and r.json()["created"] == 1 and r.json()["embedded"] == 1
    assert api.put("/articles/e2e-1", json=article).json() == {"created": 0, "updated": 0, "unchanged": 1,
                                                               "embedded": 0}
    assert "e2e-1" in [i["id"] for i in api.get("/articles/N16278/similar", params={"limit": 20}).json()["items"]]
    assert api.delete("/articles/e2e-1").status_code == 204
    assert "e2e-1" not in [i["id"] for i in api.get("/articles/N16278/similar", params={"limit": 20}).json()["items"]]
    assert api.get("/articles/e2e-1").status_code == 404
    assert api.delete("/articles/e2e-1").status_code == 404


def test_batch_is_all_or_nothing_and_names_the_bad_article(api):
    r = api.post("/articles", json=[{"id": "b-ok", "title": "fine"}, {"id": "b-bad", "title": ""}])
    assert r.status_code == 422 and r.json()["article_id"] == "b-bad"
    assert api.get("/articles/b-ok").status_code == 404


def test_duplicate_ids_in_one_batch_last_one_wins(api):
    r = api.post("/articles", json=[{"id": "dup", "title": "first version"}, {"id": "dup", "title": "second"}])
    assert r.status_code == 200 and r.json()["created"] == 1
    assert api.get("/articles/dup").json()["title"] == "second"


def test_body_id_must_match_the_url(api):
    r = api.put("/articles/a-1", json={"id": "a-2", "title": "t"})
    assert r.status_code == 422 and "a-2" in r.json()["detail"]


def test_wrong_content_type_is_415(api):
    r = api.put("/articles/x", content=b"title=t", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415 and "application/json" in r.json()["detail"]


def test_oversized_article_is_413(api):
    r = api.put("/articles/big", json={"title": "t", "body": "x" * 1_100_000})
    assert r.status_code == 413 and "limit" in r.json()["detail"]
    assert api.get("/articles/big").status_code == 404


def test_odd_unicode_and_html_are_accepted_and_cleaned(api):
    r = api.put("/articles/uni", json={"title": "Київ \u202eRTL\u202c 🇺🇦 <b>bold</b>\x00", "body": "<p>текст</p>"})
    assert r.status_code == 200
    stored = api.get("/articles/uni").json()
    assert "\x00" not in stored["title"] and "🇺🇦" in stored["title"]


def test_openapi_docs_are_served_from_the_app_itself(api):
    page = api.get("/docs")
    assert page.status_code == 200 and "/articles/{article_id}/similar" in api.get("/openapi.json").json()["paths"]
    assert "https://" not in page.text  # no CDN: the page must work on an intranet
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert f'"/static-offline-docs/{asset}"' in page.text
        r = api.get(f"/static-offline-docs/{asset}")
        assert r.status_code == 200 and len(r.content) > 10_000


def test_unpublishing_hides_an_article(api):
    top = api.get(f"/articles/{SOURCE}/similar").json()["items"][0]
    stored = api.get(f"/articles/{top['id']}").json()
    assert api.put(f"/articles/{top['id']}", json={**stored, "status": "unpublished"}).status_code == 200
    assert top["id"] not in [i["id"] for i in api.get(f"/articles/{SOURCE}/similar").json()["items"]]
    assert api.put(f"/articles/{top['id']}", json=stored).status_code == 200


def test_cors_allows_only_configured_origins(api):
    r = api.options(f"/articles/{SOURCE}/similar",
                    headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in r.headers


def test_editorial_overrides_over_http(api, anon):
    top = api.get(f"/articles/{SOURCE}/similar").json()["items"]
    body = {"pins": [{"id": "N16278", "position": 1}], "blocks": [top[0]["id"]]}
    assert anon.put(f"/articles/{SOURCE}/overrides", json=body).status_code == 401
    assert api.put(f"/articles/{SOURCE}/overrides", json=body).status_code == 200
    assert api.get(f"/articles/{SOURCE}/overrides").json() == body
    items = api.get(f"/articles/{SOURCE}/similar").json()["items"]
    assert items[0]["id"] == "N16278" and items[0]["pinned"] is True
    assert top[0]["id"] not in [i["id"] for i in items]
    assert api.put(f"/articles/{SOURCE}/overrides", json={"pins": [], "blocks": []}).status_code == 200
    assert api.put("/articles/nope/overrides", json=body).status_code == 404
    assert api.put(f"/articles/{SOURCE}/overrides", json={"pins": [{"id": "x", "position": 0}]}).status_code == 422


def test_a_new_pin_of_an_article_that_does_not_exist_is_refused_and_a_kept_one_is_not(api):
    url = "/articles/N16278/overrides"
    refused = api.put(url, json={"pins": [{"id": "N16278x", "position": 1}], "blocks": []})
    _assert_json_4xx(refused, 422, "N16278x")
    assert refused.json()["errors"][0]["loc"] == ["body", "pins", 0, "id"]
    assert api.get(url).json() == {"pins": [], "blocks": []}  # nothing changed
    api.put("/articles/pin-gone", json={"title": "Marathon runners pinned then taken down"})
    assert api.put(url, json={"pins": [{"id": "pin-gone", "position": 2}], "blocks": []}).status_code == 200
    assert api.delete("/articles/pin-gone").status_code == 204
    kept = {"pins": [{"id": "pin-gone", "position": 2}], "blocks": [SOURCE]}
    assert api.put(url, json=kept).status_code == 200  # the box's other changes can still be saved
    api.put(url, json={"pins": [], "blocks": []})


def test_block_everywhere_over_http(api):
    top = api.get(f"/articles/{SOURCE}/similar").json()["items"][0]["id"]
    assert api.put(f"/blocked/{top}", json={"reason": "legal"}).status_code == 204
    assert api.get("/blocked").json() == {top: "legal"}
    assert top not in [i["id"] for i in api.get(f"/articles/{SOURCE}/similar").json()["items"]]
    assert api.delete(f"/blocked/{top}").status_code == 204
    assert api.delete(f"/blocked/{top}").status_code == 404
    assert top in [i["id"] for i in api.get(f"/articles/{SOURCE}/similar").json()["items"]]


def test_newsroom_controls_as_query_parameters(api):
    params = {"group_stories": "false", "mmr_lambda": 1, "same_language_only": "false", "window_days": 0,
              "recency_half_life_days": 3, "group_pick": "freshest", "explain": "true"}
    items = api.get(f"/articles/{SOURCE}/similar", params=params).json()["items"]
    assert items and all(i["group_size"] == 1 for i in items)
    assert api.get(f"/articles/{SOURCE}/similar", params={"mmr_lambda": 2}).status_code == 422


def test_the_settings_names_are_the_parameters_names_and_old_names_are_refused(api):
    from recommender.rank import PER_REQUEST
    from recommender.settings import Settings

    spec = api.get("/openapi.json").json()["paths"]["/articles/{article_id}/similar"]["get"]
    assert set(PER_REQUEST) <= {p["name"] for p in spec["parameters"]} & set(Settings.model_fields)
    r = api.get(f"/articles/{SOURCE}/similar", params={"diversity": 0.8, "max_age_days": 0})
    _assert_json_4xx(r, 422, "mmr_lambda")
    assert [e["loc"] for e in r.json()["errors"]] == [["query", "max_age_days"], ["query", "diversity"]]


def _raw_json(value) -> bytes:
    """JSON as a careless client sends it: NaN allowed, lone surrogates as \\ud800 escapes."""
    import json

    return json.dumps(value).encode()


def _assert_json_4xx(r: httpx.Response, status: int, field: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    assert set(r.json()) == set(ErrorBody.model_fields) and ErrorBody.model_validate(r.json())
    assert field in r.text


@pytest.mark.parametrize("method, path, body, field", [
    ("PUT", "/articles/h-1", {"title": "t", "published_at": "2024-01-01T10:00:00"}, "published_at"),
    ("POST", "/articles", [{"id": "h-2", "title": "fine"}, {"id": "a/b", "title": "t"}], "id"),
    ("PUT", "/articles/h-3", {"title": float("nan")}, "title"),
    ("PUT", "/articles/h-4", {"title": "t", "lead": "\ud800"}, "lead"),
    ("POST", "/articles", [{"id": "h-5", "title": "t", "tags": ["x", "\udfff"]}], "tags"),
    ("POST", "/articles", [{"id": float("nan"), "title": "t"}], "id"),
    ("POST", "/similar", {"title": "\ud800"}, "title"),
    ("POST", "/similar", {"title": "t", "text": float("inf")}, "text"),
    ("PUT", f"/articles/{SOURCE}/overrides", {"pins": [{"id": "N16278", "position": 1},
                                                       {"id": "N16278", "position": 2}]}, "pinned twice"),
    ("PUT", f"/articles/{SOURCE}/overrides", {"pins": [{"id": "N16278", "position": 1}], "blocks": ["N16278"]},
     "pinned and blocked"),
    ("PUT", f"/articles/{SOURCE}/overrides", {"blocks": ["\ud800"]}, "blocks"),
    ("PUT", "/blocked/N16278", {"reason": "\udc80"}, "reason"),
])
def test_bad_input_is_a_json_422_naming_the_field_and_writes_nothing(api, method, path, body, field):
    before = api.get(f"/articles/{SOURCE}/overrides").json()
    r = api.request(method, path, content=_raw_json(body), headers={"Content-Type": "application/json"})
    _assert_json_4xx(r, 422, field)
    for article_id in ("h-1", "h-2", "h-3", "h-4", "h-5"):
        assert api.get(f"/articles/{article_id}").status_code == 404
    assert api.get(f"/articles/{SOURCE}/overrides").json() == before
    assert "N16278" not in api.get("/blocked").json()
    assert api.get("/healthz").status_code == 200  # the same keep-alive connection still serves


@pytest.mark.parametrize("path", ["/articles/%20N9", "/articles/N9%20", "/articles/I%00D", "/articles/a%09b"])
def test_an_id_is_never_cleaned_the_same_rule_on_every_path(api, path):
    original = api.get(f"/articles/{SOURCE}").json()
    calls = [("GET", path), ("GET", path + "/similar"), ("GET", path + "/overrides"), ("PUT", path),
             ("PUT", path + "/overrides"), ("DELETE", path)]
    for method, target in calls:
        r = api.request(method, target, json={"title": "overwritten?"} if method == "PUT" else None)
        _assert_json_4xx(r, 422, "id")
    assert api.put("/blocked/%20N9", json={}).status_code == 422
    assert api.get(f"/articles/{SOURCE}").json() == original


@pytest.mark.parametrize("title", [" ", "\u200b", "\u200e\u00a0", "\x00"])
def test_preview_with_a_blank_title_is_422(api, title):
    _assert_json_4xx(api.post("/similar", json={"title": title, "text": "some text"}), 422, "title")


@pytest.mark.parametrize("url", ["javascript:alert(1)", "JaVaScRiPt:alert(1)", "java\tscript:alert(1)",
                                 "data:text/html,<script>x</script>", "//evil.example/x", "vbscript:x", "http://"])
def test_only_http_urls_and_site_paths_are_links(api, url):
    for field in ("url", "image_url"):
        _assert_json_4xx(api.put("/articles/link-1", json={"title": "t", field: url}), 422, field)
    assert api.get("/articles/link-1").status_code == 404
    ok = {"title": "t", "url": "https://news.example/a?b=1#c", "image_url": "/img/1.jpg"}
    assert api.put("/articles/link-2", json=ok).status_code == 200


@pytest.mark.parametrize("url", ['https://news.example/a"onmouseover="alert(1)', "https://news.example/<script>",
                                 "/news/a>b"])
def test_links_with_quotes_or_angle_brackets_are_422_and_nothing_is_stored(api, url):
    path = f"/articles/link-q{len(url)}"
    for field in ("url", "image_url"):
        response = api.put(path, json={"title": "t", field: url})
        _assert_json_4xx(response, 422, field)
        assert "%22" in response.json()["detail"]
    assert api.get(path).status_code == 404
    assert api.put(path, json={"title": "t", "url": "https://news.example/a%22%3C%3E"}).status_code == 200


def test_a_put_that_adds_only_a_photo_a_credit_and_a_date_is_unchanged_text_but_stores_them(api):
    source = api.get(f"/articles/{SOURCE}/similar").json()["items"][0]["id"]
    article = api.get(f"/articles/{source}").json()
    extra = {"image_url": "https://img.example/p.jpg", "image_credit": "Reuters",
             "published_at": "2019-11-02T08:00:00Z"}
    assert api.put(f"/articles/{source}", json={**article, **extra}).json() == {
        "created": 0, "updated": 0, "unchanged": 1, "embedded": 0}  # same text: not embedded again
    stored = api.get(f"/articles/{source}").json()
    assert {k: stored[k] for k in extra} == {**extra, "published_at": stored["published_at"]}
    assert stored["published_at"].startswith("2019-11-02T08:00:00")
    item = next(i for i in api.get(f"/articles/{SOURCE}/similar").json()["items"] if i["id"] == source)
    assert (item["image_url"], item["image_credit"]) == (extra["image_url"], extra["image_credit"])


def test_no_redirect_trusts_the_host_header(api):
    for path in (f"/articles/{SOURCE}/similar/", "/articles/", "/healthz/", "/docs/"):
        r = api.get(path, headers={"Host": "evil.example"})
        assert r.status_code == 404 and "location" not in r.headers


def test_preview_body_is_capped_and_a_hostile_text_is_cut_first(api):
    r = api.post("/similar", json={"title": "t", "text": "<" * 999_000})
    _assert_json_4xx(r, 413, "limit")
    r = api.post("/similar", json={"title": "Marine Corps Marathon", "text": "<" * 190_000})
    assert r.status_code == 200


def test_folded_reports_of_a_story_are_listed_under_its_item(api):
    # The same wire report twice, its headline's style edited by a second desk: a near-copy, folded (a report with
    # words of its own, even ", mayor says", is a follow-up shown as an item: see the novelty rule).
    lead = "The worst tide in fifty years flooded Venice on Tuesday night, submerging St Mark's Square."
    reports = {
        "e2e-r1": ("Storm floods Venice: St Mark's Square under water", lead),
        "e2e-r2": ("Storm floods Venice: St. Mark's Square under water", lead),
    }
    for article_id, (title, lead) in reports.items():
        assert api.put(f"/articles/{article_id}", json={"title": title, "lead": lead}).status_code == 200
    try:
        preview = {"title": "Venice mayor blames climate change as city counts flood damage",
                   "text": "After the tide, the mayor of Venice asked Rome for help with the damage."}
        items = api.post("/similar", json=preview).json()["items"]
        [item] = [i for i in items if i["id"] in reports]  # one item for the story, not two
        assert item["group_size"] == 2
        [other] = item["also"]
        assert other["id"] == ({*reports} - {item["id"]}).pop()
        assert set(other) == {"id", "title", "url", "published_at"}
        assert other["title"] == reports[other["id"]][0]
    finally:
        for article_id in reports:
            api.delete(f"/articles/{article_id}")


def test_who_changed_a_box_and_a_block_when_and_why_is_kept_and_listed_for_the_editor(api, anon):
    body = {"pins": [{"id": "N16278", "position": 3}], "blocks": [], "editor": "Olena", "reason": "a follow-up"}
    assert api.put(f"/articles/{SOURCE}/overrides", json=body).status_code == 200
    assert api.get(f"/articles/{SOURCE}/overrides").json() == {"pins": body["pins"], "blocks": []}
    [change] = api.get(f"/articles/{SOURCE}/overrides/history", params={"limit": 1}).json()
    assert {k: change[k] for k in ("box", "item_id", "action", "position", "editor", "reason")} == {
        "box": SOURCE, "item_id": "N16278", "action": "pin", "position": 3, "editor": "Olena", "reason": "a follow-up"}
    assert change["at"].endswith("Z") or change["at"].endswith("+00:00")
    assert api.put("/blocked/N35354", json={"reason": "legal", "editor": "Ivan"}).status_code == 204
    assert api.delete("/blocked/N35354", params={"editor": "Ivan", "reason": "cleared"}).status_code == 204
    assert [(c["action"], c["editor"], c["reason"]) for c in api.get("/blocked/history").json()[:2]] == [
        ("unblock", "Ivan", "cleared"), ("block", "Ivan", "legal")]
    assert anon.get(f"/articles/{SOURCE}/overrides/history").status_code == 401  # it names editors
    assert api.get("/articles/nope/overrides/history").status_code == 404
    api.put(f"/articles/{SOURCE}/overrides", json={"pins": [], "blocks": []})


def test_the_stored_boxs_state_says_when_it_was_computed(api):
    state = api.get(f"/articles/{SOURCE}/box").json()
    assert state["stored"] and state["items"] >= 8 and state["computed_at"] is not None
    assert api.get("/articles/nope/box").status_code == 404
