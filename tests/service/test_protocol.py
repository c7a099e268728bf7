"""Slow, idle and numerous clients against a real server: none can hold a connection without finishing a request."""

import json
import selectors
import shutil
import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.service.conftest import CLIENT_TIMEOUT, CLIENT_TIMEOUT_S, TOKEN, Server
from tests.service.test_error_shape import assert_error_body

HEADER_TIMEOUT_S = 1.0
# The server's timers fire late on busy cores: a cut connection is one closed within this (a bound, not a speed).
SLACK_S = 30.0
MAX_CONNECTIONS = 40


@pytest.fixture(scope="module")
def strict(ingested_dir, tmp_path_factory):
    data = tmp_path_factory.mktemp("strict") / "data"
    shutil.copytree(ingested_dir, data)
    srv = Server(data, RECOMMENDER_API_TOKEN=TOKEN, RECOMMENDER_HEADER_TIMEOUT_S=str(HEADER_TIMEOUT_S),
                 RECOMMENDER_BODY_TIMEOUT_S="1", RECOMMENDER_KEEP_ALIVE_TIMEOUT_S="1",
                 RECOMMENDER_MAX_HEADER_BYTES="4096", RECOMMENDER_MAX_CONNECTIONS=str(MAX_CONNECTIONS)).start()
    yield srv
    srv.stop()


def _connect(server: Server, first: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=CLIENT_TIMEOUT_S)
    if first:
        sock.sendall(first)
    return sock


def _closed_by_server(socks: dict[str, list[socket.socket]], trickle: list[socket.socket], within: float
                      ) -> dict[str, float]:
    """Seconds until the server closed each kind's last connection; a header byte goes to ``trickle`` every 0.2 s."""
    selector = selectors.DefaultSelector()
    for kind, group in socks.items():
        for sock in group:
            selector.register(sock, selectors.EVENT_READ, kind)
    started, open_left = time.monotonic(), {kind: len(group) for kind, group in socks.items()}
    closed_at: dict[str, float] = {}
    next_trickle = started
    while selector.get_map() and time.monotonic() - started < within:
        if time.monotonic() >= next_trickle:
            for sock in trickle:
                try:
                    sock.send(b"X")
                except OSError:
                    pass
            next_trickle += 0.2
        for key, _ in selector.select(timeout=0.05):
            try:
                data = key.fileobj.recv(65536)
            except OSError:
                data = b""
            if data:  # an answer (a 408 for the slow ones): the close follows
                continue
            selector.unregister(key.fileobj)
            open_left[key.data] -= 1
            if not open_left[key.data]:
                closed_at[key.data] = round(time.monotonic() - started, 2)
    return closed_at


def test_slow_and_idle_clients_are_cut(strict, capsys):
    put = (b"PUT /articles/slow HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode()
           + b"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"title\"")
    socks = {
        "idle, nothing sent": [_connect(strict) for _ in range(8)],
        "half the headers": [_connect(strict, b"GET /healthz HTTP/1.1\r\nHost: x\r\n") for _ in range(8)],
        "headers a byte at a time": [_connect(strict, b"GET /healthz HTTP/1.1\r\nX-Slow: ") for _ in range(8)],
        "a tenth of the body": [_connect(strict, put) for _ in range(8)],
        "idle after a request": [_connect(strict, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n") for _ in range(8)],
    }
    try:
        closed = _closed_by_server(socks, socks["headers a byte at a time"], within=HEADER_TIMEOUT_S + SLACK_S)
    finally:
        for group in socks.values():
            for sock in group:
                sock.close()
    with capsys.disabled():
        print(f"\nslow clients cut after (s): {closed}")
    assert set(closed) == set(socks), f"still held: {set(socks) - set(closed)}"


def test_too_many_connections_get_503_until_the_slow_ones_are_cut(strict):
    idle = [_connect(strict) for _ in range(MAX_CONNECTIONS + 5)]
    try:
        refused = httpx.get(strict.url + "/healthz", timeout=CLIENT_TIMEOUT)
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert_error_body(refused)  # the one error body, not uvicorn's plain text
        assert "RECOMMENDER_MAX_CONNECTIONS" in refused.json()["detail"]
        deadline = time.monotonic() + HEADER_TIMEOUT_S + SLACK_S  # the idle ones are cut after the header timeout
        while (status := httpx.get(strict.url + "/healthz", timeout=CLIENT_TIMEOUT).status_code) == 503:
            assert time.monotonic() < deadline, "the idle connections were never cut"
            time.sleep(0.2)
        assert status == 200
    finally:
        for sock in idle:
            sock.close()


def test_oversized_headers_are_431(strict):
    with _connect(strict, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8000 + b"\r\n\r\n") as sock:
        assert sock.recv(65536).startswith(b"HTTP/1.1 431")


def _answer(sock: socket.socket, within: float = CLIENT_TIMEOUT_S) -> tuple[bytes, bool]:
    """What the server answered on ``sock`` and whether it closed the connection, within ``within`` seconds."""
    sock.settimeout(within)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        return received, False
    return received, True


def _request(method: str, path: str, *headers: str, body: bytes = b"") -> bytes:
    return "\r\n".join([f"{method} {path} HTTP/1.1", "Host: x", *headers, "", ""]).encode() + body


@pytest.mark.parametrize("method", ["DELETE", "PROPFIND"])
def test_a_write_of_any_method_without_the_token_is_refused_before_its_gigabyte_body(strict, method):
    with _connect(strict, _request(method, "/articles/N1", "Content-Length: 1000000000", body=b"x" * 1000)) as sock:
        answer, closed = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert b"application/json" in answer and b'"detail"' in answer
    assert closed


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "DELETE", "PROPFIND"])
@pytest.mark.parametrize("framing", ["Content-Length: 1000000000", "Transfer-Encoding: chunked"])
def test_a_body_on_a_method_that_takes_none_is_refused_from_the_headers(strict, method, framing):
    with _connect(strict, _request(method, "/articles/N1", f"Authorization: Bearer {TOKEN}", framing,
                                   body=b"1\r\nx\r\n" if "chunked" in framing else b"x")) as sock:
        answer, closed = _answer(sock)  # the rest of the body never comes: only the headers can be judged
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]  # a server waiting for the body would answer 408
    assert closed
    if method != "HEAD":
        assert b'"detail"' in answer and b"takes no body" in answer


def test_a_delete_without_a_body_is_still_served(strict):
    with httpx.Client(base_url=strict.url, timeout=CLIENT_TIMEOUT) as client:
        assert client.delete("/articles/no-such-id").status_code == 401
        assert client.delete("/articles/no-such-id", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404
        assert client.get("/articles/no-such-id", headers={"Content-Length": "0"}).status_code == 404


@pytest.mark.parametrize("malformed", [b"GARBAGE\r\n\r\n", b"GET /healthz HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n",
                                       b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n",
                                       b"POST /similar HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n"])
def test_a_request_that_is_not_http_gets_the_json_error_body(strict, malformed):
    with _connect(strict, malformed) as sock:
        answer, closed = _answer(sock)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), answer[:300]
    assert b"content-type: application/json" in head.lower() and closed
    assert set(json.loads(body)) == {"detail", "errors", "article_id"}
    assert "not valid HTTP/1.1" in json.loads(body)["detail"]


def test_the_server_serves_no_websockets_so_a_worker_starts_without_importing_them():
    # uvicorn's default imports the websockets package in every process at start (~0.4 s of a core each).
    code = ("import sys, uvicorn; from recommender.settings import Settings; from service.serving import "
            "server_options\nasync def app(scope, receive, send): pass\n"
            "uvicorn.Config(app, **server_options(Settings())).load(); print('websockets' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
