"""Who may read and send what, against real servers with a writer's token: an unpublished article (taken down,
or not out yet) is a 404 for everyone but the editor, on every read that shows it; behind trusted proxies the
events rate limit keys on the address a proxy appended, never on one the client wrote."""

import pytest

from tests.service.conftest import TOKEN, Server, private_copy
from tests.service.test_events_api import SOURCE, events_of

HIDDEN = {"title": "Zqxwv takedown notice", "lead": "An article its site has unpublished.", "status": "unpublished"}
SHOWN = {"title": "Zqxwv published notice", "lead": "An article its site has published."}


@pytest.fixture(scope="module")
def stored(server):
    """'hidden-1' unpublished from the start, 'hidden-2' published, given overrides, then taken down."""
    with server.client() as editor:
        assert editor.put("/articles/hidden-1", json=HIDDEN).status_code == 200
        assert editor.put("/articles/shown-1", json=SHOWN).status_code == 200
        assert editor.put("/articles/hidden-2", json=SHOWN).status_code == 200
        overrides = {"pins": [{"id": "shown-1", "position": 1}], "blocks": []}
        assert editor.put("/articles/hidden-2/overrides", json=overrides).status_code == 200
        assert editor.put("/articles/hidden-2", json={**SHOWN, "status": "unpublished"}).status_code == 200
    return server


@pytest.mark.parametrize("article_id", ["hidden-1", "hidden-2"])
def test_an_unpublished_article_is_a_404_for_the_public(stored, article_id):
    with stored.client(token=None) as public:
        for path in (f"/articles/{article_id}", f"/articles/{article_id}/overrides",
                     f"/articles/{article_id}/similar", f"/articles/{article_id}/similar?limit=3&explain=true",
                     f"/articles/{article_id}/similar.html"):
            answer = public.get(path)
            assert answer.status_code == 404, (path, answer.text)
            assert answer.json()["detail"] and "takedown" not in answer.text
        assert public.get("/articles", params={"q": article_id}).json() == []
        with stored.client(token="wrong-token") as wrong:
            assert wrong.get(f"/articles/{article_id}").status_code == 404
            assert wrong.get(f"/articles/{article_id}/similar").status_code == 404


def test_the_editors_view_of_an_unpublished_list_is_never_served_to_the_public(stored):
    with stored.client() as editor, stored.client(token=None) as public:
        for _ in range(2):  # the editor's list first, then the public asks the same URL: still a 404
            assert editor.get("/articles/hidden-2/similar", params={"limit": 4}).status_code == 200
            assert public.get("/articles/hidden-2/similar", params={"limit": 4}).status_code == 404


def test_a_search_by_title_lists_only_published_articles_for_the_public(stored):
    with stored.client(token=None) as public:
        assert [a["id"] for a in public.get("/articles", params={"q": "Zqxwv"}).json()] == ["shown-1"]
        assert public.get("/articles/shown-1").status_code == 200


def test_the_editor_still_finds_an_unpublished_article(stored):
    with stored.client() as editor:
        assert editor.get("/articles/hidden-1").json()["status"] == "unpublished"
        listed = editor.get("/articles/hidden-2/similar", params={"limit": 3})
        assert listed.json()["items"][0]["id"] == "shown-1"
        assert listed.headers["cache-control"] == "private, no-store"  # never kept by a CDN
        assert editor.get("/articles/hidden-1/similar.html").status_code == 200
        assert editor.get("/articles/hidden-2/overrides").json()["pins"] == [{"id": "shown-1", "position": 1}]
        found = {a["id"] for a in editor.get("/articles", params={"q": "Zqxwv"}).json()}
        assert found == {"hidden-1", "hidden-2", "shown-1"}
        assert [a["id"] for a in editor.get("/articles", params={"q": "hidden-1"}).json()] == ["hidden-1"]


@pytest.fixture(scope="module")
def proxied(ingested_dir, tmp_path_factory):
    """A server behind two trusted proxies that append to X-Forwarded-For, with a small events budget."""
    srv = Server(private_copy(ingested_dir, tmp_path_factory), RECOMMENDER_API_TOKEN=TOKEN,
                 RECOMMENDER_EVENTS_CLIENT_HEADER="x-forwarded-for", RECOMMENDER_EVENTS_PROXY_HOPS="2",
                 RECOMMENDER_EVENTS_BURST="20", RECOMMENDER_EVENTS_MAX_BATCH="10",
                 RECOMMENDER_EVENTS_RATE_PER_S="0.5").start()
    yield srv
    srv.stop()


def test_a_client_cannot_escape_the_events_rate_by_writing_its_own_forwarded_address(proxied):
    with proxied.client(token=None) as public:
        batch = events_of(public.get(f"/articles/{SOURCE}/similar", params={"limit": 10}).json())

        def sent(forwarded: str) -> int:
            return public.post("/events", json=batch, headers={"X-Forwarded-For": forwarded}).status_code

        # The client writes any first address it likes; the proxies append 198.51.100.7 (what the outer one saw)
        # and 10.0.0.2 (the outer proxy, as the inner one saw it).
        assert [sent(f"192.0.2.{n}, 198.51.100.7, 10.0.0.2") for n in range(3)] == [200, 200, 429]
        assert sent("198.51.100.7, 10.0.0.2") == 429  # the same client, without a claim of its own
        assert sent("192.0.2.1, 198.51.100.8, 10.0.0.2") == 200  # another reader: a bucket of its own


def test_a_header_shorter_than_the_proxy_chain_names_its_first_address(proxied):
    with proxied.client(token=None) as public:
        batch = events_of(public.get(f"/articles/{SOURCE}/similar", params={"limit": 10}).json())
        codes = [public.post("/events", json=batch, headers={"X-Forwarded-For": "203.0.113.9"}).status_code
                 for _ in range(3)]
        assert codes == [200, 200, 429]


def test_an_experiment_report_needs_the_token(server):
    variants = {"variants": [{"name": "control", "share": 0.5}, {"name": "other", "share": 0.5}], "active": False}
    with server.client() as editor, server.client(token=None) as public:
        assert editor.put("/experiments/access", json=variants).status_code == 200
        for name in ("access", "no-such"):  # refused before the experiment is even looked up
            refused = public.get(f"/experiments/{name}", params={"since": "30d"})
            assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
            assert "experiment reports need" in refused.json()["detail"]
        assert editor.get("/experiments/access", params={"since": "30d"}).json()["experiment"]["name"] == "access"
        assert "access" in [e["name"] for e in public.get("/experiments").json()]  # the list stays public
