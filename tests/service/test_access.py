"""Who may read what, against a real server with a writer's token: an unpublished article (taken down, or not
out yet) is a 404 for everyone but the editor, on every read that shows it."""

import pytest

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
        for path in (f"/articles/{article_id}", f"/articles/{article_id}/overrides"):
            answer = public.get(path)
            assert answer.status_code == 404, (path, answer.text)
            assert answer.json()["detail"] and "takedown" not in answer.text
        assert public.get("/articles", params={"q": article_id}).json() == []
        with stored.client(token="wrong-token") as wrong:
            assert wrong.get(f"/articles/{article_id}").status_code == 404


def test_a_search_by_title_lists_only_published_articles_for_the_public(stored):
    with stored.client(token=None) as public:
        assert [a["id"] for a in public.get("/articles", params={"q": "Zqxwv"}).json()] == ["shown-1"]
        assert public.get("/articles/shown-1").status_code == 200


def test_the_editor_still_finds_an_unpublished_article(stored):
    with stored.client() as editor:
        assert editor.get("/articles/hidden-1").json()["status"] == "unpublished"
        assert editor.get("/articles/hidden-2/overrides").json()["pins"] == [{"id": "shown-1", "position": 1}]
        found = {a["id"] for a in editor.get("/articles", params={"q": "Zqxwv"}).json()}
        assert found == {"hidden-1", "hidden-2", "shown-1"}
        assert [a["id"] for a in editor.get("/articles", params={"q": "hidden-1"}).json()] == ["hidden-1"]
