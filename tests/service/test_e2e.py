"""End to end: ``recommender serve`` as a real uvicorn server, read and written over HTTP, its ``/docs`` page
rendered by a real headless browser."""

import json
import socket

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.service.conftest import CLIENT_TIMEOUT_S

SOURCE = "N34700"


def test_a_list_a_write_and_a_takedown_over_http(server):
    with server.client() as api:
        assert api.get("/readyz").json()["status"] == "ready"
        items = api.get(f"/articles/{SOURCE}/similar").json()["items"]
        assert 0 < len(items) <= 8 and SOURCE not in [i["id"] for i in items]
        article = {"title": "Marine Corps Marathon winner speaks about the rain", "lead": "Jordan Tropf won again.",
                   "section": "sports", "published_at": "2019-10-28T10:00:00Z"}
        assert api.put("/articles/e2e-1", json=article).json()["created"] == 1
        listed = api.get("/articles/N16278/similar", params={"limit": 20}).json()["items"]
        assert "e2e-1" in [i["id"] for i in listed]
        assert api.delete("/articles/e2e-1").status_code == 204
        listed = api.get("/articles/N16278/similar", params={"limit": 20}).json()["items"]
        assert "e2e-1" not in [i["id"] for i in listed]
        preview = api.post("/similar", json={"title": "Marine Corps Marathon", "text": "A runner won in the rain"})
        assert preview.json()["items"][0]["section"] == "sports"


def test_writes_without_the_token_are_refused_before_the_body_is_read(server):
    declared = 40_000_000  # under the batch cap: only the token check can answer before the body
    with socket.create_connection(("127.0.0.1", server.port), timeout=CLIENT_TIMEOUT_S) as sock:
        sock.sendall(b"POST /articles HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n[" % declared + b" " * 1000)
        answer = b""
        while chunk := sock.recv(65536):  # the refusal closes the connection; a server reading the body first
            answer += chunk               # would time out here instead
    assert answer.startswith(b"HTTP/1.1 401") and b"www-authenticate: bearer" in answer.lower()
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["detail"].startswith("writes need")


def test_the_docs_page_renders_every_operation_in_a_browser(server, browser):
    with server.client() as api:
        spec = api.get("/openapi.json").json()
    expected = sorted((method.upper(), path) for path, ops in spec["paths"].items() for method in ops)
    browser.get(server.url + "/docs")
    WebDriverWait(browser, 60).until(lambda b: b.find_elements(By.CSS_SELECTOR, ".opblock"))
    shown = sorted((block.find_element(By.CSS_SELECTOR, ".opblock-summary-method").text,
                    block.find_element(By.CSS_SELECTOR, ".opblock-summary-path").get_attribute("data-path"))
                   for block in browser.find_elements(By.CSS_SELECTOR, ".opblock"))
    assert shown == expected
    assert browser.find_elements(By.CSS_SELECTOR, ".btn.authorize")  # the bearer scheme: an "Authorize" button
