"""A read worker relays every write to the writer process over its Unix socket: it waits for a writer that is
(re)starting, and sends a write again when the writer died before answering, which is safe because every
route the writer takes is idempotent."""

import asyncio
import http.client
import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from recommender.settings import Settings
from service.app import create_app
from service.forward import READS, WRITER_DEATHS_PER_WRITE, ForwardWrites
from tests.service.conftest import CLIENT_TIMEOUT_S, TOKEN, Server

SOURCE = "N34700"

# The writer's routes. Each is idempotent: sending one twice leaves what sending it once leaves. A route that
# is not must not go through ForwardWrites, which sends a write again after the writer's death.
IDEMPOTENT_WRITES = {
    ("PUT", "/articles/{article_id}"), ("DELETE", "/articles/{article_id}"),
    ("POST", "/articles"),  # a batch of upserts
    ("POST", "/similar"),  # a read with a body
    ("PUT", "/articles/{article_id}/overrides"), ("PUT", "/blocked/{item_id}"), ("DELETE", "/blocked/{item_id}"),
    ("PUT", "/experiments/{name}"),
}
NOT_RELAYED = {("POST", "/events")}  # taken by every process itself (service.intake), outside ForwardWrites


async def never_relayed(scope, receive, send) -> None:
    raise AssertionError("a write reached the read worker's own app")


async def writer_dying(socket: Path, deaths: int, seen: list[bytes]) -> asyncio.AbstractServer:
    """A writer on ``socket`` that reads each request and dies without answering its first ``deaths``."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        if len(seen) > deaths:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n"
                         b'{"done": 1}')
            await writer.drain()
        writer.close()

    return await asyncio.start_unix_server(serve, path=str(socket))


async def put_through_worker(socket: Path, deaths: int) -> tuple[httpx.Response, list[bytes]]:
    seen: list[bytes] = []
    server = await writer_dying(socket, deaths, seen)
    worker = ForwardWrites(never_relayed, socket=socket, followed=lambda: None, wait_s=10)
    async with server, httpx.AsyncClient(transport=httpx.ASGITransport(app=worker), base_url="http://w") as client:
        return await client.put("/articles/a1", json={"title": "t"}), seen


def test_a_write_cut_off_by_the_writers_death_is_sent_again_and_acknowledged(tmp_path):
    response, seen = asyncio.run(put_through_worker(tmp_path / "w.sock", deaths=WRITER_DEATHS_PER_WRITE - 1))
    assert response.status_code == 200 and response.json() == {"done": 1}
    assert len(seen) == WRITER_DEATHS_PER_WRITE and all(s.startswith(b"PUT /articles/a1 ") for s in seen)


def test_a_write_that_the_writer_dies_on_every_time_gets_a_503_that_says_to_send_it_again(tmp_path):
    response, seen = asyncio.run(put_through_worker(tmp_path / "w.sock", deaths=WRITER_DEATHS_PER_WRITE))
    assert response.status_code == 503 and "send it again" in response.json()["detail"]
    assert "retry-after" in response.headers
    assert len(seen) == WRITER_DEATHS_PER_WRITE  # not sent a fourth time


async def put_to_a_writer_that_never_answers(socket: Path, answer_s: float) -> httpx.Response:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(60)  # takes the request, never answers: a stopped or deadlocked writer

    server = await asyncio.start_unix_server(serve, path=str(socket))
    worker = ForwardWrites(never_relayed, socket=socket, followed=lambda: None, wait_s=10, answer_s=answer_s)
    async with server, httpx.AsyncClient(transport=httpx.ASGITransport(app=worker), base_url="http://w") as client:
        return await asyncio.wait_for(client.put("/articles/a1", json={"title": "t"}), 30)


def test_a_write_the_writer_does_not_answer_in_time_gets_a_503_that_says_it_may_still_be_applied(tmp_path):
    response = asyncio.run(put_to_a_writer_that_never_answers(tmp_path / "w.sock", answer_s=0.5))
    assert response.status_code == 503 and "retry-after" in response.headers
    assert "may still apply" in response.json()["detail"]


def test_every_route_the_writer_takes_is_idempotent(tmp_path):
    app = create_app(Settings(data_dir=tmp_path, writer_socket=tmp_path / "w.sock"))
    writes = {(method.upper(), path) for path, operations in app.openapi()["paths"].items()
              for method in operations if method.upper() not in READS}
    assert writes - NOT_RELAYED == IDEMPOTENT_WRITES


def test_the_writer_gets_the_path_exactly_as_the_client_sent_it_dot_segments_included(data_dir, fresh_rows):
    server = Server(data_dir, RECOMMENDER_API_TOKEN=TOKEN, RECOMMENDER_WORKERS="2").start()
    try:
        victim = {**fresh_rows[0], "id": "VICTIM"}
        with server.client() as client:
            assert client.put("/articles/VICTIM", json=victim).status_code == 200
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=CLIENT_TIMEOUT_S)
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        for method, path, body in (("DELETE", "/blocked/x/../../articles/VICTIM", None),
                                   ("PUT", "/articles/NEW/../VICTIM", json.dumps({**victim, "title": "Overwritten"})),
                                   ("DELETE", "/articles/./VICTIM", None)):
            conn.request(method, path, body=body, headers=headers)  # http.client sends the path as it is
            response = conn.getresponse()
            answer = response.read()
            assert response.status in (404, 405), (method, path, response.status, answer)
            assert "detail" in json.loads(answer)
        with server.client() as client:
            r = client.get("/articles/VICTIM")
            assert r.status_code == 200 and r.json()["title"] == victim["title"], r.text
    finally:
        server.stop()


def test_previews_over_the_cap_are_503s_and_a_takedown_goes_through_while_previews_are_in_flight(data_dir):
    server = Server(data_dir, RECOMMENDER_API_TOKEN=TOKEN, RECOMMENDER_WORKERS="2",
                    RECOMMENDER_MAX_PREVIEWS="2").start()
    text = "The runner crossed the line in the rain after a long race through the city streets. " * 20
    try:
        with server.client() as client:
            assert client.post("/similar", json={"title": "A race", "text": text}).status_code == 200  # model loaded

            def preview(_: int) -> httpx.Response:
                return client.post("/similar", json={"title": "A race", "text": text})

            with ThreadPoolExecutor(16) as pool:
                sent = pool.map(preview, range(48))
                time.sleep(0.5)
                takedown = client.delete(f"/articles/{SOURCE}")
                answers = list(sent)
            assert takedown.status_code in (200, 204), takedown.text
            statuses = Counter(r.status_code for r in answers)
            assert set(statuses) == {200, 503} and statuses[200] >= 2, statuses
            refused = next(r for r in answers if r.status_code == 503)
            assert refused.headers["retry-after"] and "RECOMMENDER_MAX_PREVIEWS" in refused.json()["detail"]
            assert client.get(f"/articles/{SOURCE}").status_code == 404
    finally:
        server.stop()
