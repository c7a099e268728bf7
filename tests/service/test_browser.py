"""The box on a news site and the editor's page, as people use them: a real server, a site on another origin
embedding the box with one script tag, both driven in headless Chromium. Screenshots of the embedded box and
of the editor are left in ``artifacts/`` (or $TEST_ARTIFACTS)."""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.service.conftest import TOKEN, Server, private_copy

SOURCE, MARATHON = "N34700", "N16278"
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "artifacts"))
# The element tree of a box: tag, class and, for leaves, text; compared between the server's and the script's.
MARKUP = """return [...arguments[0].querySelectorAll('*')].map(e =>
    [e.tagName, e.className, e.children.length ? '' : e.textContent.trim(), e.getAttribute('href') || '',
     e.getAttribute('src') || '', e.getAttribute('datetime') || ''].join('|'));"""


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class Site:
    """A news site on its own origin: static article pages that embed the box with the script tag."""

    def __init__(self, root: Path):
        self.root = root
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        for n in range(4):  # photos for the items that get one
            import matplotlib.pyplot as plt

            plt.imsave(root / f"photo-{n}.png", np.add.outer(np.linspace(0, 1, 90), np.linspace(n / 4, 1, 160)),
                       cmap=("viridis", "magma", "cividis", "plasma")[n])

    def page(self, article_id: str, recommender: str) -> str:
        """The URL of an article page showing ``article_id``'s box."""
        name = f"article-{article_id}.html"
        (self.root / name).write_text(f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>News site: {article_id}</title>
<script src="{recommender}/similar-news.js" defer></script>
<style>body {{font-family: Georgia, serif; margin: 2rem; max-width: 64rem}}</style></head>
<body><article><h1>Italy says "no" to deploying its troops</h1><p>The article's text.</p></article>
<similar-news article-id="{article_id}"></similar-news></body></html>""")
        return f"{self.url}/{name}"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[Site]:
    site = Site(tmp_path_factory.mktemp("site"))
    yield site
    site.httpd.shutdown()


@pytest.fixture(scope="module")
def server(ingested_dir, tmp_path_factory, site) -> Iterator[Server]:
    srv = Server(private_copy(ingested_dir, tmp_path_factory), RECOMMENDER_API_TOKEN=TOKEN,
                 RECOMMENDER_CORS_ORIGINS=f'["{site.url}"]').start()
    with srv.client() as api:  # photos and credits for a few items of the source's box, as a site would send
        for n, item in enumerate(api.get(f"/articles/{SOURCE}/similar").json()["items"][:4]):
            article = api.get(f"/articles/{item['id']}").json()
            article.update(image_url=f"{site.url}/photo-{n}.png", image_credit=("Getty Images", "EPA", "Reuters",
                                                                                "AP")[n])
            assert api.put(f"/articles/{item['id']}", json=article).status_code == 200
    yield srv
    srv.stop()


def wait(browser: WebDriver, css: str, timeout: float = 30) -> Any:
    return WebDriverWait(browser, timeout).until(lambda b: b.find_elements(By.CSS_SELECTOR, css))


def box_ids(browser: WebDriver, url: str) -> list[str]:
    """Load a page and return the ids its rendered box shows, in order."""
    browser.get(url)
    (box,) = wait(browser, "similar-news[data-state=ready], similar-news[data-state=error]")
    assert box.get_attribute("data-state") == "ready", box.get_attribute("data-error")
    return [li.get_attribute("data-id") for li in box.find_elements(By.CSS_SELECTOR, "li")]


def shot(browser: WebDriver, name: str) -> None:
    """The whole page, from its top."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    height = browser.execute_script("window.scrollTo(0, 0); return document.documentElement.scrollHeight")
    browser.set_window_size(1280, min(max(height, 600), 2400))
    assert browser.save_screenshot(str(ARTIFACTS / name))
    browser.set_window_size(1280, 1024)


def test_the_embedded_box_renders_the_json_lists_items_as_the_servers_html(server, site, browser):
    items = httpx.get(f"{server.url}/articles/{SOURCE}/similar").json()["items"]
    assert box_ids(browser, site.page(SOURCE, server.url)) == [i["id"] for i in items]
    (box,) = browser.find_elements(By.CSS_SELECTOR, "similar-news")
    assert [a.text for a in box.find_elements(By.CSS_SELECTOR, "h3")] == [i["title"] for i in items]
    assert [p.text for p in box.find_elements(By.CSS_SELECTOR, "p")] == [i["excerpt"] for i in items if i["excerpt"]]
    credits = [c.text for c in box.find_elements(By.CSS_SELECTOR, "figcaption")]
    assert credits == [f"Photo: {i['image_credit']}" for i in items if i["image_url"] and i["image_credit"]]
    assert len(credits) == 4
    assert all(browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img)
               for img in box.find_elements(By.CSS_SELECTOR, "img"))  # the photos loaded from the site
    shot(browser, "embedded-box.png")
    # The server's fragment (GET .../similar.html), parsed in the same page: the same elements, classes and texts.
    html = httpx.get(f"{server.url}/articles/{SOURCE}/similar.html").text
    served = browser.execute_script("const t = document.createElement('template'); t.innerHTML = arguments[0];"
                                    "const d = document.createElement('div'); d.hidden = true; d.append(t.content);"
                                    "document.body.append(d); return d;", html)
    assert browser.execute_script(MARKUP, box) == browser.execute_script(MARKUP, served)


def open_box_in_editor(browser: WebDriver, server: Server, article_id: str, token: str | None = TOKEN) -> None:
    browser.get(server.url + "/editor")
    field = browser.find_element(By.ID, "token")
    field.clear()  # the page keeps the token typed earlier in this tab
    if token:
        field.send_keys(token)
    browser.find_element(By.ID, "query").send_keys(article_id)
    browser.find_element(By.CSS_SELECTOR, "#find-form button").click()
    wait(browser, "#hits button")[0].click()
    wait(browser, "#items tbody tr")
    wait(browser, "#public-box[data-state=ready]")


def row_of(browser: WebDriver, item_id: str) -> Any:
    return browser.find_element(By.CSS_SELECTOR, f'#items tbody tr[data-id="{item_id}"]')


def click(row: Any, label: str) -> None:
    next(b for b in row.find_elements(By.TAG_NAME, "button") if b.text == label).click()


def test_the_editor_needs_the_token_to_pin_then_the_public_box_shows_the_pin_on_the_next_load(server, site, browser):
    page = site.page(SOURCE, server.url)
    before = box_ids(browser, page)
    item = before[3]
    open_box_in_editor(browser, server, SOURCE, token=None)
    rows = browser.find_elements(By.CSS_SELECTOR, "#items tbody tr")
    assert [r.get_attribute("data-id") for r in rows] == before  # the box readers get, with explanations
    assert all(c.text for c in rows[0].find_elements(By.CSS_SELECTOR, "td.num")[:4])
    click(row_of(browser, item), "Pin")
    WebDriverWait(browser, 30).until(lambda b: "401" in b.find_element(By.ID, "status").text)
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    position = row_of(browser, item).find_element(By.CSS_SELECTOR, "input")
    position.clear()
    position.send_keys("1")
    click(row_of(browser, item), "Pin")
    WebDriverWait(browser, 30).until(
        lambda b: b.find_elements(By.CSS_SELECTOR, "#items tbody tr")[0].get_attribute("data-id") == item)
    assert "pinned" in row_of(browser, item).get_attribute("class")
    wait(browser, "#overrides li")
    shot(browser, "editor.png")
    after = box_ids(browser, page)
    assert after[0] == item and after[1:4] == before[:3]


def test_the_editor_blocks_an_item_here_and_everywhere_and_takes_the_blocks_back(server, site, browser):
    page = site.page(MARATHON, server.url)
    before = box_ids(browser, page)
    open_box_in_editor(browser, server, MARATHON)
    click(row_of(browser, before[1]), "Block here")
    WebDriverWait(browser, 30).until(lambda b: not b.find_elements(By.CSS_SELECTOR, f'tr[data-id="{before[1]}"]'))
    click(row_of(browser, before[2]), "Block everywhere")
    WebDriverWait(browser, 30).until(lambda b: not b.find_elements(By.CSS_SELECTOR, f'tr[data-id="{before[2]}"]'))
    assert before[2] in httpx.get(f"{server.url}/blocked").json()
    shown = box_ids(browser, page)
    assert before[1] not in shown and before[2] not in shown and shown[0] == before[0]
    open_box_in_editor(browser, server, MARATHON)
    def buttons(label: str) -> list[Any]:
        return [b for b in browser.find_elements(By.CSS_SELECTOR, "#article li button") if b.text == label]

    def gone(label: str) -> Callable[[WebDriver], bool]:
        return lambda _: not buttons(label)

    for label in ("Unblock", "Unblock everywhere"):
        buttons(label)[0].click()
        # The page re-renders its list while the wait reads the buttons' text: a button read then is stale.
        WebDriverWait(browser, 30, ignored_exceptions=(StaleElementReferenceException,)).until(gone(label))
    assert box_ids(browser, page) == before


def test_a_draft_preview_shows_the_box_it_would_get(server, browser):
    draft = {"title": "Marine Corps Marathon: runners brave the rain", "text": "Thousands ran in Washington."}
    expected = [i["id"] for i in httpx.post(f"{server.url}/similar", json=draft).json()["items"]]
    browser.get(server.url + "/editor")
    browser.find_element(By.ID, "draft-title").send_keys(draft["title"])
    browser.find_element(By.ID, "draft-text").send_keys(draft["text"])
    browser.find_element(By.CSS_SELECTOR, "#preview-form button").click()
    wait(browser, "#preview-box li", timeout=60)
    shown = [li.get_attribute("data-id") for li in browser.find_elements(By.CSS_SELECTOR, "#preview-box li")]
    assert shown == expected and len(shown) > 0
