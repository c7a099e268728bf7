"""The box on a news site and the editor's page, as people use them: a real server, a site on another origin
embedding the box with one script tag, both driven in headless Chromium. Screenshots of the embedded box and
of the editor are left in ``artifacts/`` (or $TEST_ARTIFACTS)."""

from __future__ import annotations

import collections
import functools
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from service.html import long_date
from tests.service.conftest import CLIENT_TIMEOUT, TOKEN, Server, private_copy

SOURCE, MARATHON = "N34700", "N16278"
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "artifacts"))
# How long the browser may take to show what a step waits for, on busy cores: a bound, never a speed.
PATIENCE_S = 120.0
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

        (root / "site.css").write_text("body {font-family: Georgia, serif; margin: 2rem; max-width: 64rem}")

    def write(self, name: str, body: str, head: str = "", lang: str = "en") -> str:
        """The URL of a page of the site: its stylesheet, ``head`` and ``body``."""
        (self.root / name).write_text(f"""<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><title>News site: {name}</title>
{head}<link rel="stylesheet" href="site.css"></head><body>{body}</body></html>""")
        return f"{self.url}/{name}"

    def page(self, article_id: str, recommender: str) -> str:
        """The URL of an article page showing ``article_id``'s box."""
        return self.write(f"article-{article_id}.html", f"""<main><article><h1>Italy says "no" to deploying its
troops</h1><p>The article's text.</p></article><similar-news article-id="{article_id}"></similar-news></main>""",
                          head=f'<script src="{recommender}/similar-news.js" defer></script>')


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
                                                                                "AP")[n],
                           published_at=f"2019-11-0{n + 1}T22:30:00Z")  # late: the next day east of UTC
            assert api.put(f"/articles/{item['id']}", json=article).status_code == 200
    yield srv
    srv.stop()


def wait(browser: WebDriver, css: str, timeout: float = PATIENCE_S) -> Any:
    return WebDriverWait(browser, timeout).until(lambda b: b.find_elements(By.CSS_SELECTOR, css))


def box_ids(browser: WebDriver, url: str) -> list[str]:
    """Load a page and return the ids its rendered box shows, in order."""
    browser.get(url)
    (box,) = wait(browser, "similar-news[data-state=ready], similar-news[data-state=error]")
    assert box.get_attribute("data-state") == "ready", box.get_attribute("data-error")
    return [li.get_attribute("data-id") for li in box.find_elements(By.CSS_SELECTOR, "li")]


def shot(browser: WebDriver, name: str, width: int = 1280) -> None:
    """The whole page, from its top, ``width`` pixels wide."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    height = browser.execute_script("window.scrollTo(0, 0); return document.documentElement.scrollHeight")
    browser.set_window_size(width, min(max(height, 600), 2400))
    assert browser.save_screenshot(str(ARTIFACTS / name))
    browser.set_window_size(1280, 1024)


def test_the_embedded_box_renders_the_json_lists_items_as_the_servers_html(server, site, browser):
    items = httpx.get(f"{server.url}/articles/{SOURCE}/similar", timeout=CLIENT_TIMEOUT).json()["items"]
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
    html = httpx.get(f"{server.url}/articles/{SOURCE}/similar.html", timeout=CLIENT_TIMEOUT).text
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
    button = next(b for b in row.find_elements(By.TAG_NAME, "button") if b.text == label)
    # In the middle of the window, as a reader scrolls to it (the status line stays on top of the page's top).
    button.parent.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
    button.click()


def test_the_editor_needs_the_token_to_pin_then_the_public_box_shows_the_pin_on_the_next_load(server, site, browser):
    page = site.page(SOURCE, server.url)
    before = box_ids(browser, page)
    item = before[3]
    open_box_in_editor(browser, server, SOURCE, token=None)
    rows = browser.find_elements(By.CSS_SELECTOR, "#items tbody tr")
    assert [r.get_attribute("data-id") for r in rows] == before  # the box readers get, with explanations
    assert all(c.text for c in rows[0].find_elements(By.CSS_SELECTOR, "td.num")[:4])
    click(row_of(browser, item), "Pin")
    # Said in plain words, beside the button that was clicked (and in the status line, which stays in view).
    WebDriverWait(browser, PATIENCE_S).until(lambda b: row_of(b, item).find_elements(By.CSS_SELECTOR, ".message"))
    message = row_of(browser, item).find_element(By.CSS_SELECTOR, ".message").text
    assert message.startswith("Changes need the write token") and "“Write token”" in message
    assert browser.find_element(By.ID, "status").text == message
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    position = row_of(browser, item).find_element(By.CSS_SELECTOR, "input")
    position.clear()
    position.send_keys("1")
    click(row_of(browser, item), "Pin")
    WebDriverWait(browser, PATIENCE_S).until(
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
    assert browser.find_element(By.ID, "computed").text.startswith("Readers' box computed ")
    name = browser.find_element(By.ID, "editor-name")
    name.clear()
    name.send_keys("Olena Editor\t")  # typed once: kept in this browser, sent with every change
    browser.find_element(By.ID, "reason").send_keys("duplicate of the lead story")
    click(row_of(browser, before[1]), "Block here")
    WebDriverWait(browser, PATIENCE_S).until(
        lambda b: not b.find_elements(By.CSS_SELECTOR, f'tr[data-id="{before[1]}"]'))
    # Who, when and why, beside the block and in the box's history (kept in the store).
    who = wait(browser, "#overrides li .who")[0].text
    assert "Olena Editor" in who and "duplicate of the lead story" in who
    history = browser.find_elements(By.CSS_SELECTOR, "#history li")
    assert len(history) == 1 and before[1] in history[0].get_attribute("textContent")
    assert browser.execute_script("return localStorage.getItem('recommender-editor')") == "Olena Editor"
    click(row_of(browser, before[2]), "Block everywhere")  # asks first: "no" blocks nothing
    WebDriverWait(browser, PATIENCE_S).until(expected_conditions.alert_is_present())
    assert "every box" in browser.switch_to.alert.text
    browser.switch_to.alert.dismiss()
    WebDriverWait(browser, PATIENCE_S).until(lambda b: b.find_element(By.ID, "status").text == "Nothing blocked.")
    assert before[2] not in httpx.get(f"{server.url}/blocked", timeout=CLIENT_TIMEOUT).json()
    click(row_of(browser, before[2]), "Block everywhere")
    WebDriverWait(browser, PATIENCE_S).until(expected_conditions.alert_is_present())
    browser.switch_to.alert.accept()
    WebDriverWait(browser, PATIENCE_S).until(
        lambda b: not b.find_elements(By.CSS_SELECTOR, f'tr[data-id="{before[2]}"]'))
    assert before[2] in httpx.get(f"{server.url}/blocked", timeout=CLIENT_TIMEOUT).json()
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
        WebDriverWait(browser, PATIENCE_S, ignored_exceptions=(StaleElementReferenceException,)).until(gone(label))
    # The unblock queued the box: until the refresher stores it, a worker ranks it on demand with its own lexical
    # weights, which may order near-ties otherwise (README "Reliability and access"); the stored box is the same.
    deadline = time.monotonic() + PATIENCE_S
    while (shown := box_ids(browser, page)) != before and time.monotonic() < deadline:
        time.sleep(1)
    assert shown == before


def test_pinning_an_article_that_does_not_exist_is_refused_beside_the_form_and_the_page_fits_a_phone(
        server, browser):
    browser.set_window_size(390, 844)
    open_box_in_editor(browser, server, MARATHON)
    browser.find_element(By.ID, "pin-id").send_keys("N16278-no-such")
    browser.find_element(By.CSS_SELECTOR, "#pin-form button").click()
    WebDriverWait(browser, PATIENCE_S).until(lambda b: b.find_elements(By.CSS_SELECTOR, "#pin-form .message.error"))
    assert "no article 'N16278-no-such'" in browser.find_element(By.CSS_SELECTOR, "#pin-form .message").text
    assert httpx.get(f"{server.url}/articles/{MARATHON}/overrides", timeout=CLIENT_TIMEOUT).json()["pins"] == []
    assert browser.execute_script("return document.documentElement.scrollWidth") <= 390  # no sideways scroll
    shot(browser, "editor-phone.png", width=390)


def test_a_draft_preview_shows_the_box_it_would_get(server, browser):
    draft = {"title": "Marine Corps Marathon: runners brave the rain", "text": "Thousands ran in Washington."}
    preview = httpx.post(f"{server.url}/similar", json=draft, timeout=CLIENT_TIMEOUT)  # may load the model
    expected = [i["id"] for i in preview.json()["items"]]
    browser.get(server.url + "/editor")
    browser.find_element(By.ID, "draft-title").send_keys(draft["title"])
    browser.find_element(By.ID, "draft-text").send_keys(draft["text"])
    browser.find_element(By.CSS_SELECTOR, "#preview-form button").click()
    wait(browser, "#preview-box li")
    shown = [li.get_attribute("data-id") for li in browser.find_elements(By.CSS_SELECTOR, "#preview-box li")]
    assert shown == expected and len(shown) > 0


# --- The box on a real page: one fetch, no page jump, styles under CSP, languages, its own events ---

SCRIPT_TAG = '<script src="{}/similar-news.js" defer></script>'
FETCHES = "return performance.getEntriesByType('resource').filter(e => e.name.includes(arguments[0])).length"
# Layout shifts the reader did not cause, as Chromium reports them (CLS is their sum over a session window).
SHIFTS = """<script>window.shifts = []; new PerformanceObserver((l) => { for (const e of l.getEntries())
  if (!e.hadRecentInput) shifts.push(e.value); }).observe({type: 'layout-shift', buffered: true});</script>"""
LOADS = """<script>window.loads = []; document.addEventListener('similar-news-load',
  (e) => loads.push(e.target.getAttribute('article-id')), true);</script>"""


class Delayed:
    """The service behind a proxy of the test's own that holds each list request ``delay`` seconds (a slow
    service) and counts what it forwards by path."""

    def __init__(self, upstream: str):
        self.upstream, self.delay, self.paths = upstream, 0.0, collections.Counter[str]()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                proxy.forward(self)

            do_POST = do_OPTIONS = do_GET

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def forward(self, request: BaseHTTPRequestHandler) -> None:
        self.paths[request.path.split("?")[0]] += 1
        if "/similar" in request.path:
            time.sleep(self.delay)
        length = int(request.headers.get("content-length") or 0)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "connection")}
        answer = httpx.request(request.command, self.upstream + request.path, headers=headers,
                               content=request.rfile.read(length) if length else None, timeout=CLIENT_TIMEOUT)
        request.send_response(answer.status_code)
        for name, value in answer.headers.items():
            if name.lower() not in ("content-length", "content-encoding", "transfer-encoding", "connection",
                                    "date", "server"):
                request.send_header(name, value)
        request.send_header("Content-Length", str(len(answer.content)))
        request.end_headers()
        request.wfile.write(answer.content)


@pytest.fixture(scope="module")
def delayed(server) -> Iterator[Delayed]:
    proxy = Delayed(server.url)
    yield proxy
    proxy.httpd.shutdown()


def state_of(browser: WebDriver, css: str) -> str:
    return browser.execute_script("return document.querySelector(arguments[0]).dataset.state", css)


def settled(browser: WebDriver, css: str, timeout: float = PATIENCE_S) -> None:
    """Wait until every box matching ``css`` is ready; fail with the error of one that is not."""
    WebDriverWait(browser, timeout).until(lambda b: b.execute_script(
        "const all = [...document.querySelectorAll(arguments[0])];"
        "return all.length && all.every(e => e.dataset.state === 'ready' || e.dataset.state === 'error')", css))
    errors = browser.execute_script("return [...document.querySelectorAll(arguments[0])].filter(e => "
                                    "e.dataset.state !== 'ready').map(e => e.dataset.error)", css)
    assert not errors


def similar(server: Server, article_id: str, **params: Any) -> dict[str, Any]:
    return httpx.get(f"{server.url}/articles/{article_id}/similar", params=params, timeout=CLIENT_TIMEOUT).json()


def test_each_element_fetches_its_list_once_however_it_is_put_on_the_page(server, site, browser):
    others = [i["id"] for i in similar(server, SOURCE)["items"][5:8]]
    url = site.write("one-fetch.html", f'<similar-news article-id="{SOURCE}" limit="5"></similar-news>'
                     '<div id="app"></div><div id="elsewhere"></div>', head=SCRIPT_TAG.format(server.url) + LOADS)
    browser.get(url)
    settled(browser, "similar-news")
    # As a single-page app puts it in: from markup, and built with DOM calls (attributes set one by one).
    browser.execute_script("""document.getElementById('app').innerHTML = `<similar-news article-id="${arguments[0]}"
        limit="4"></similar-news>`; const box = document.createElement('similar-news'); box.id = 'built';
        box.setAttribute('article-id', arguments[1]); box.setAttribute('limit', '3'); document.body.append(box);""",
                           others[0], others[1])
    settled(browser, "similar-news")
    time.sleep(1.5)  # a second fetch, were there one, has had time to start
    assert [browser.execute_script(FETCHES, f"/articles/{i}/similar") for i in (SOURCE, *others[:2])] == [1, 1, 1]
    assert sorted(browser.execute_script("return loads")) == sorted([SOURCE, *others[:2]])
    # Moved elsewhere on the page: no new fetch; another article: exactly one, for that article.
    browser.execute_script("document.getElementById('elsewhere').append(document.getElementById('built'));"
                           "document.getElementById('built').setAttribute('article-id', arguments[0])", others[2])
    expected = [i["id"] for i in similar(server, others[2], limit=3)["items"]]
    WebDriverWait(browser, PATIENCE_S).until(lambda b: b.execute_script(
        "return [...document.querySelectorAll('#built li')].map(li => li.dataset.id)") == expected)
    time.sleep(1.5)
    assert [browser.execute_script(FETCHES, f"/articles/{i}/similar") for i in (SOURCE, *others)] == [1, 1, 1, 1]
    # Three boxes on one page: three landmarks, each named by its own heading.
    headings = browser.execute_script("return [...document.querySelectorAll('aside')].map(a => "
                                      "[a.getAttribute('aria-labelledby'), a.querySelector('h2').id])")
    assert len(headings) == 3 and all(a == h for a, h in headings) and len({h for _, h in headings}) == 3


def test_a_box_far_below_waits_for_the_reader_to_come_near_and_an_eager_one_does_not(server, site, browser):
    url = site.write("lazy.html", f"""<p>Top of the article.</p><div style="height: 5000px"></div>
<similar-news id="lazy" article-id="{SOURCE}"></similar-news><div style="height: 5000px"></div>
<similar-news id="eager" loading="eager" article-id="{MARATHON}"></similar-news>""",
                     head=SCRIPT_TAG.format(server.url))
    browser.get(url)
    settled(browser, "#eager")
    time.sleep(1.5)
    assert browser.execute_script(FETCHES, f"/articles/{SOURCE}/similar") == 0 and state_of(browser, "#lazy") == "waiting"
    browser.execute_script("document.getElementById('lazy').scrollIntoView()")
    settled(browser, "#lazy")
    assert browser.execute_script(FETCHES, f"/articles/{SOURCE}/similar") == 1


@pytest.mark.parametrize("delay", [3, 8])
def test_a_slow_service_never_moves_the_page(delayed, site, browser, delay):
    """The reader has scrolled to the box before its list arrives: the space is held (past the 1.5 s timeout,
    as the box is in view) and the comments below never move; Chromium reports no layout shift."""
    delayed.delay = delay
    url = site.write(f"slow-{delay}.html", f"""<article><h1>A long article</h1><p style="height: 1500px">Text.</p>
</article><similar-news article-id="{SOURCE}" limit="3"></similar-news>
<section id="comments" style="height: 3000px"><h2>Comments</h2></section>""",
                     head=SHIFTS + SCRIPT_TAG.format(delayed.url))
    browser.get(url)
    browser.execute_script("scrollTo(0, document.querySelector('similar-news').getBoundingClientRect().top"
                           " + scrollY - 200)")
    comments = "return document.getElementById('comments').getBoundingClientRect().top"
    before = browser.execute_script(comments)
    assert 0 < before < 1024  # in view while the list is on its way
    time.sleep(2)
    assert state_of(browser, "similar-news") == "loading"  # late, but in view: still holding its space
    settled(browser, "similar-news", timeout=delay + 30)
    assert browser.execute_script("return document.querySelectorAll('similar-news li').length") == 3
    assert browser.execute_script(comments) == before
    assert browser.execute_script("return shifts") == []


def test_a_late_box_out_of_view_collapses_after_its_timeout(delayed, site, browser):
    delayed.delay = 3
    url = site.write("late.html", f"""<p>Top.</p><div style="height: 3000px"></div>
<similar-news loading="eager" timeout="1000" article-id="{MARATHON}"></similar-news><p>End.</p>""",
                     head=SCRIPT_TAG.format(delayed.url))
    browser.get(url)
    WebDriverWait(browser, PATIENCE_S).until(lambda b: state_of(b, "similar-news") == "timeout")
    assert browser.execute_script("return document.querySelector('similar-news').offsetHeight") == 0
    time.sleep(3)  # the list arrives after the give-up: nothing is shown, nothing moves
    assert state_of(browser, "similar-news") == "timeout"
    assert browser.execute_script("return document.querySelector('similar-news').children.length") == 0


STYLED = """const box = arguments[0], css = (e, p) => getComputedStyle(e)[p];
return {list: css(box.querySelector('ul'), 'listStyleType'), font: css(box.querySelector('h3'), 'fontFamily'),
        body: css(document.body, 'fontFamily'), styles: document.querySelectorAll('style').length,
        images: [...box.querySelectorAll('img')].map(i => [i.getBoundingClientRect().width,
                                                           i.closest('a') && i.closest('a').href]),
        placeholders: box.querySelectorAll('.similar-news__placeholder').length,
        beside: [...box.querySelectorAll('li')].every(li => li.querySelector('figure').getBoundingClientRect().right
                                                       <= li.querySelector('h3').getBoundingClientRect().left),
        height: box.getBoundingClientRect().height};"""


def test_the_box_is_styled_under_a_strict_style_policy_and_compact_on_a_phone(server, site, browser):
    csp = """<meta http-equiv="Content-Security-Policy" content="style-src 'self'">"""
    items = similar(server, SOURCE)["items"]
    url = site.write("csp.html", f'<similar-news article-id="{SOURCE}"></similar-news>',
                     head=csp + SCRIPT_TAG.format(server.url))
    browser.get(url)
    settled(browser, "similar-news")
    looks = browser.execute_script(STYLED, browser.find_element(By.CSS_SELECTOR, "similar-news"))
    assert looks["list"] == "none" and looks["styles"] == 0 and "Georgia" in looks["font"] == looks["body"]
    assert [href for _, href in looks["images"]] == [i["url"] for i in items if i["image_url"]]
    assert all(0 < width <= 160 for width, _ in looks["images"]) and len(looks["images"]) == 4
    assert looks["placeholders"] == len(items) - 4 and looks["beside"]
    browser.set_window_size(390, 844)
    phone = browser.execute_script(STYLED, browser.find_element(By.CSS_SELECTOR, "similar-news"))
    shot(browser, "embedded-box-phone.png", width=390)
    assert phone["beside"] and phone["height"] < 1400  # 8 items, photo beside text
    # A server-side include: the fragment in the page, the stylesheet linked from the service.
    fragment = httpx.get(f"{server.url}/articles/{SOURCE}/similar.html", timeout=CLIENT_TIMEOUT).text
    policy = f"""<meta http-equiv="Content-Security-Policy" content="style-src 'self' {server.url}">"""
    browser.get(site.write("include.html", f'<div id="box">{fragment}</div>',
                           head=policy + f'<link rel="stylesheet" href="{server.url}/similar-news.css">'))
    included = browser.execute_script(STYLED, browser.find_element(By.ID, "box"))
    assert included["list"] == "none" and all(0 < width <= 160 for width, _ in included["images"])


def test_a_ukrainian_page_gets_the_box_in_ukrainian_and_a_box_may_name_its_language_and_time_zone(
        server, site, browser):
    items = similar(server, SOURCE)["items"]
    url = site.write("uk.html", f"""<similar-news id="uk" article-id="{SOURCE}"></similar-news>
<similar-news id="ru" lang="ru" time-zone="Pacific/Kiritimati" article-id="{SOURCE}"></similar-news>""",
                     head=SCRIPT_TAG.format(server.url), lang="uk")
    browser.get(url)
    settled(browser, "similar-news")
    uk, ru = (browser.find_element(By.ID, n) for n in ("uk", "ru"))
    assert uk.find_element(By.TAG_NAME, "h2").text == "Схожі новини"
    assert ru.find_element(By.TAG_NAME, "h2").text == "Похожие новости"
    dated = [i["published_at"] for i in items if i["published_at"]]
    assert [t.text for t in uk.find_elements(By.TAG_NAME, "time")] == [long_date(d, "uk") for d in dated]
    day = int(dated[0][8:10])  # 22:30 UTC: the next day in Kiritimati (UTC+14)
    assert len(dated) == 4 and uk.find_element(By.TAG_NAME, "time").text == f"{day} листопада 2019 р."
    assert ru.find_element(By.TAG_NAME, "time").text == f"{day + 1} ноября 2019 г."
    assert [t.text for t in ru.find_elements(By.TAG_NAME, "time")] == [long_date(d, "ru", "Pacific/Kiritimati")
                                                                       for d in dated]
    assert all(c.text.startswith("Фото: ") for c in uk.find_elements(By.TAG_NAME, "figcaption"))
    html = httpx.get(f"{server.url}/articles/{SOURCE}/similar.html", params={"locale": "uk"},
                     timeout=CLIENT_TIMEOUT).text
    served = browser.execute_script("const d = document.createElement('div'); d.innerHTML = arguments[0];"
                                    "document.body.append(d); return d;", html)
    assert browser.execute_script(MARKUP, uk) == browser.execute_script(MARKUP, served)


def stored_events(server: Server, article_id: str) -> list[tuple[str, str, int, str, str]]:
    with sqlite3.connect(f"file:{server.data_dir / 'articles.sqlite3'}?mode=ro", uri=True) as db:
        return db.execute("SELECT kind, item_id, position, list_id, variant FROM events WHERE article_id = ? "
                          "ORDER BY kind, position", (article_id,)).fetchall()


def test_the_box_reports_one_impression_per_item_and_each_click_with_its_position(server, site, browser):
    shown, quiet = (i["id"] for i in similar(server, SOURCE, limit=12)["items"][8:10])
    listing = similar(server, shown)
    url = site.write("events.html", f"""<similar-news id="counted" article-id="{shown}"></similar-news>
<similar-news id="quiet" events="off" article-id="{quiet}"></similar-news><div style="height: 3000px"></div>
<script>document.addEventListener('click', (e) => e.preventDefault())</script>""",
                     head=SCRIPT_TAG.format(server.url))
    browser.get(url)
    settled(browser, "similar-news")
    impressions = [("impression", i["id"], n, listing["list_id"], listing["variant"])
                   for n, i in enumerate(listing["items"], 1)]
    WebDriverWait(browser, PATIENCE_S).until(lambda _: stored_events(server, shown) == impressions)
    browser.find_elements(By.CSS_SELECTOR, "#counted h3 a")[1].click()
    click = ("click", listing["items"][1]["id"], 2, listing["list_id"], listing["variant"])
    WebDriverWait(browser, PATIENCE_S).until(lambda _: len(stored_events(server, shown)) > len(impressions))
    # Scrolled away and back: the same list is not counted again.
    browser.execute_script("scrollTo(0, 3000)")
    time.sleep(0.5)
    browser.execute_script("scrollTo(0, 0)")
    time.sleep(3)
    assert stored_events(server, shown) == [click, *impressions]
    assert stored_events(server, quiet) == []


# axe-core (npm), installed by `make test` under build/ (a test tool only: the service never serves it).
AXE = Path(os.environ.get("AXE_CORE", Path(__file__).resolve().parents[2] / "build/axe/node_modules/axe-core/axe.min.js"))
AXE_RUN = """const done = arguments[arguments.length - 1];
axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa',
                                                    'best-practice']}})
  .then((r) => done(r.violations.map((v) => [v.id, v.impact, v.nodes.map((n) => n.target.join(' '))])));"""


def accessibility_violations(browser: WebDriver) -> list[Any]:
    """What axe-core (WCAG 2.2 AA and best practice) finds wrong with the page as it is now."""
    if not AXE.is_file():
        pytest.fail(f"axe-core is missing at {AXE}: `make test` installs it (npm), or set AXE_CORE")
    browser.set_script_timeout(PATIENCE_S)
    browser.execute_script(AXE.read_text())
    return browser.execute_async_script(AXE_RUN)


def test_the_box_and_the_editor_have_no_accessibility_violations(server, site, browser):
    browser.get(site.page(SOURCE, server.url))
    settled(browser, "similar-news")
    assert accessibility_violations(browser) == [], "the box"
    open_box_in_editor(browser, server, SOURCE)
    browser.find_element(By.ID, "draft-title").send_keys("Marine Corps Marathon: runners brave the rain")
    browser.find_element(By.CSS_SELECTOR, "#preview-form button").click()
    wait(browser, "#preview-box li")
    found = accessibility_violations(browser)
    assert found == [], [(rule, impact, len(nodes), nodes[:3]) for rule, impact, nodes in found]
