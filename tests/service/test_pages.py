"""What the app serves to browsers (the editor's page, the box's script) and the editor's search."""

SOURCE = "N34700"


def test_the_editor_page_and_the_script_are_served_by_the_app(api):
    page = api.get("/editor")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script src="similar-news.js"></script>' in page.text and 'id="token"' in page.text
    script = api.get("/similar-news.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert 'customElements.define("similar-news"' in script.text and "innerHTML" not in script.text
    assert "max-age" in script.headers["cache-control"]


def test_articles_are_found_by_id_first_then_by_words_of_the_title(api):
    found = api.get("/articles", params={"q": SOURCE}).json()
    assert [a["id"] for a in found] == [SOURCE]
    title = api.get(f"/articles/{SOURCE}").json()["title"]
    found = api.get("/articles", params={"q": title.split()[2].upper()}).json()
    assert SOURCE in [a["id"] for a in found] and set(found[0]) == {"id", "title", "published_at", "section", "status"}
    assert len(api.get("/articles", params={"q": "the", "limit": 3}).json()) == 3


def test_the_search_finds_words_of_the_lead_and_the_url(api):
    api.put("/articles/lead-1", json={"title": "Council meets", "lead": "Zqvorth bridge repairs approved",
                                      "url": "https://news.example.com/local/council-meets-zqvorth"})
    for q in ("approved zqvorth", "https://news.example.com/local/council-meets-zqvorth"):
        assert [a["id"] for a in api.get("/articles", params={"q": q}).json()] == ["lead-1"], q
    assert api.get("/articles", params={"q": "LEAD-1"}).json()[0]["id"] == "lead-1"  # its id in another case


def test_the_search_takes_its_wildcards_literally_and_needs_a_query(api):
    api.put("/articles/pct-1", json={"title": "Turnout at 100% in the village"})
    assert "pct-1" in [a["id"] for a in api.get("/articles", params={"q": "100% village", "limit": 50}).json()]
    percent = api.get("/articles", params={"q": "%", "limit": 100}).json()
    assert "pct-1" in [a["id"] for a in percent] and all("%" in a["title"] for a in percent)
    assert api.get("/articles", params={"q": "_"}).json() == []
    missing = api.get("/articles")
    assert missing.status_code == 422 and missing.json()["errors"][0]["loc"] == ["query", "q"]


def test_the_scripts_default_timeout_is_the_servers_setting(tmp_path):
    from fastapi.testclient import TestClient

    from service.app import create_app
    from tests.conftest import make_settings

    with TestClient(create_app(make_settings(tmp_path, box_timeout_ms=4000))) as client:
        script = client.get("/similar-news.js").text
    assert "DEFAULT_TIMEOUT_MS = 4000," in script and "/*timeout*/" not in script
