"""The box as an HTML fragment: GET /articles/{id}/similar.html, or the list's URL with Accept: text/html;
rendered by a replaceable Jinja2 template, escaped, accessible."""

import json
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient

from recommender.engine import Recommender
from service.app import create_app
from service.html import BoxRenderer, TemplateMissing
from tests.conftest import make_settings

SOURCE = "N34700"
MARATHON = "N16278"


class Fragment(HTMLParser):
    """The elements of a fragment as (tag, attributes, text inside up to the next tag)."""

    def __init__(self, text: str):
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data):
        if data.strip():
            self.text.append(data.strip())

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.elements if name == tag]


def test_the_html_box_shows_the_json_lists_items_in_order(api):
    items = api.get(f"/articles/{SOURCE}/similar").json()["items"]
    response = api.get(f"/articles/{SOURCE}/similar.html")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert response.headers["vary"] == "Accept, Accept-Encoding"  # JSON or HTML by Accept; gzip or not
    box = Fragment(response.text)
    assert [li["data-id"] for li in box.all("li")] == [i["id"] for i in items]
    assert [a["href"] for a in box.all("a")] == [i["url"] for i in items if i["url"]]
    assert [t["datetime"] for t in box.all("time")] == [i["published_at"] for i in items if i["published_at"]]
    for item in items:
        assert item["title"] in box.text and item["excerpt"] in box.text


def test_the_box_is_accessible_a_landmark_named_by_its_heading_a_list_decorative_images(api):
    api.put("/articles/html-photo", json={"title": "Marine Corps Marathon runners in the rain", "section": "sports",
                                          "lead": "Runners crossed the line in the rain.",
                                          "image_url": "https://img.example/run.jpg", "image_credit": "Getty Images",
                                          "url": "https://news.example/run", "published_at": "2019-10-28T10:00:00Z"})
    box = Fragment(api.get(f"/articles/{MARATHON}/similar.html", params={"limit": 20}).text)
    (aside,) = box.all("aside")
    (heading,) = box.all("h2")
    assert aside["aria-labelledby"] == heading["id"] and "Similar news" in box.text
    assert len(box.all("ul")) == 1 and len(box.all("li")) == len(box.all("h3")) > 0
    photo = next(img for img in box.all("img") if img["src"] == "https://img.example/run.jpg")
    assert photo["alt"] == ""  # the linked title next to it says what it shows
    assert "Photo: Getty Images" in box.text and "28 October 2019" in box.text


def test_titles_and_every_field_are_escaped(api):
    api.put("/articles/html-xss", json={"title": "<script>alert(1)</script> Marine Corps Marathon winner",
                                        "lead": "<img src=x onerror=alert(2)> won the marathon in the rain",
                                        "image_credit": "\"><script>alert(3)</script>", "section": "sports",
                                        "image_url": "https://img.example/x.jpg"})
    text = api.get(f"/articles/{MARATHON}/similar.html", params={"limit": 20}).text
    assert "html-xss" in text
    assert "<script" not in text and "onerror" not in text  # the excerpt is plain text: the tag is gone
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Marine Corps Marathon winner" in text
    assert "Photo: &#34;&gt;&lt;script&gt;alert(3)&lt;/script&gt;" in text


def test_accept_text_html_on_the_lists_url_gets_the_box_and_json_stays_json(api):
    url = f"/articles/{SOURCE}/similar"
    first = api.get(url)  # the stored box (and, for a ranked list, the cache) must not answer the HTML request
    html = api.get(url, headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert html.headers["content-type"].startswith("text/html")
    assert html.text == api.get(url + ".html").text
    for accept in ("application/json", "*/*", "application/json, text/html"):
        again = api.get(url, headers={"Accept": accept})
        assert again.headers["content-type"] == "application/json" and again.content == first.content
    ranked = {"strategy": "bm25"}
    api.get(url, params=ranked)
    assert api.get(url, params=ranked, headers={"Accept": "text/html"}).headers["content-type"].startswith("text/html")
    assert api.get(url, params=ranked).headers["content-type"] == "application/json"


def test_the_html_box_takes_the_lists_options_and_errors(api):
    box = Fragment(api.get(f"/articles/{SOURCE}/similar.html", params={"limit": 3, "strategy": "bm25"}).text)
    assert len(box.all("li")) == 3
    assert api.get("/articles/no-such-id/similar.html").status_code == 404
    response = api.get(f"/articles/{SOURCE}/similar.html", params={"limit": 0})
    assert response.status_code == 422 and response.json()["errors"][0]["loc"] == ["query", "limit"]


def test_the_site_can_replace_the_template(data_dir, embedder, tmp_path):
    template = tmp_path / "box.html"
    template.write_text("<ol>{% for item in items %}<li>{{ item.title }}|{{ item.published_at | long_date }}"
                        "</li>{% endfor %}</ol>")
    settings = make_settings(data_dir, box_template=template)
    with Recommender(settings, embedder=embedder) as engine, TestClient(create_app(settings, engine)) as client:
        items = client.get(f"/articles/{SOURCE}/similar").json()["items"]
        text = client.get(f"/articles/{SOURCE}/similar.html").text
    assert text.startswith("<ol><li>") and text.count("<li>") == len(items)
    with pytest.raises(TemplateMissing, match="RECOMMENDER_BOX_TEMPLATE"):
        create_app(make_settings(data_dir, box_template=tmp_path / "missing.html"))


def test_the_html_box_speaks_the_locale_asked_for_with_dates_in_the_time_zone_set(data_dir, api):
    # A title of its own: the module's other tests wrote "Marine Corps Marathon runners in the rain" already, and a
    # namesake of an item above is never shown.
    api.put("/articles/html-uk", json={"title": "Marine Corps Marathon: soaked runners reach the finish",
                                       "section": "sports",
                                       "image_url": "https://img.example/uk.jpg", "image_credit": "Reuters",
                                       "url": "https://news.example/uk", "published_at": "2019-10-28T22:30:00Z"})
    url = f"/articles/{MARATHON}/similar.html"
    uk = api.get(url, params={"limit": 20, "locale": "uk"}).text
    assert "Схожі новини" in uk and "Фото: Reuters" in uk and "28 жовтня 2019 р." in uk
    ru = api.get(url, params={"limit": 20, "locale": "ru"}).text
    assert "Похожие новости" in ru and "28 октября 2019 г." in ru
    assert "Similar news" in api.get(url, params={"limit": 20}).text
    refused = api.get(url, params={"locale": "de"})
    assert refused.status_code == 422 and refused.json()["errors"][0]["loc"] == ["query", "locale"]
    box = api.get(f"/articles/{MARATHON}/similar", params={"limit": 20}).json()
    kyiv = BoxRenderer(None, "uk", "Europe/Kyiv").render(box)  # as RECOMMENDER_BOX_LOCALE/_TIME_ZONE make it
    assert "Схожі новини" in kyiv and "29 жовтня 2019 р." in kyiv  # 22:30 UTC is past midnight in Kyiv
    with pytest.raises(ValueError, match="IANA time zone"):
        make_settings(data_dir, box_time_zone="Europe/Atlantis")


def test_photos_link_to_the_article_with_their_size_and_items_without_one_get_a_placeholder(api):
    api.put("/articles/html-photo-2", json={"title": "Marine Corps Marathon runners in the rain again",
                                            "image_url": "https://img.example/run2.jpg", "section": "sports",
                                            "url": "https://news.example/run2"})
    box = Fragment(api.get(f"/articles/{MARATHON}/similar.html", params={"limit": 20}).text)
    photo = next(img for img in box.all("img") if img["src"] == "https://img.example/run2.jpg")
    assert (photo["width"], photo["height"]) == ("160", "90")
    links = [a for a in box.all("a") if a.get("class") == "similar-news__photo"]
    assert {"href": "https://news.example/run2", "class": "similar-news__photo", "tabindex": "-1",
            "aria-hidden": "true"} in links
    placeholders = [s for s in box.all("span") if s.get("class") == "similar-news__placeholder"]
    assert len(placeholders) == len(box.all("li")) - len(box.all("img")) > 0


def test_two_boxes_on_a_page_have_headings_of_their_own(api):
    ids = [Fragment(api.get(f"/articles/{a}/similar.html").text).all("h2")[0]["id"] for a in (SOURCE, MARATHON)]
    assert ids[0] != ids[1] and all(i.startswith("similar-news-") for i in ids)


def test_the_stylesheet_is_served_and_the_script_carries_it_and_injects_no_style_element(api):
    css = api.get("/similar-news.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert ":where(.similar-news__items)" in css.text and "font:" not in css.text and "font-family" not in css.text
    script = api.get("/similar-news.js").text
    assert json.dumps(css.text) in script and "createElement(\"style\")" not in script
    assert "Схожі новини" in script and "Похожие новости" in script
