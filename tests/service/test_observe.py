"""Every request, the stored-box path included, gets a request id (the client's, or a new one) echoed in
``X-Request-ID`` and one access-log line with method, path, status, duration and that id."""

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest

from service.observe import AccessLog
from tests.service.conftest import TOKEN

SOURCE = "N34700"


@pytest.fixture
def access(app) -> Iterator[io.StringIO]:
    """What the app's access log writes from now on."""
    log = app.state.access_log
    log.flush()
    log.stream = io.StringIO()
    yield log.stream
    log.stream = None


def lines(stream: io.StringIO, app) -> list[str]:
    app.state.access_log.flush()
    return stream.getvalue().splitlines()


def test_a_client_request_id_is_echoed_and_logged(app, api, access):
    response = api.get(f"/articles/{SOURCE}/similar", headers={"X-Request-ID": "page-view-42"})
    assert response.headers["x-request-id"] == "page-view-42"
    (line,) = lines(access, app)
    assert re.fullmatch(rf"\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d,\d{{3}} INFO recommender.access: "
                        rf"GET /articles/{SOURCE}/similar 200 \d+\.\d\dms id=page-view-42", line), line


def test_json_access_lines_carry_the_fields():
    log = AccessLog("json", stream=(stream := io.StringIO()))
    log.write("GET", "/a", 200, 0.12, "r1")
    log.flush()
    line = json.loads(stream.getvalue())
    assert (line["logger"], line["level"], line["message"]) == ("recommender.access", "INFO", "GET /a 200 0.12ms id=r1")
    assert (line["method"], line["path"], line["status"], line["duration_ms"], line["request_id"]) == \
        ("GET", "/a", 200, 0.12, "r1")
    assert isinstance(line["process"], int) and line["time"]


@pytest.mark.parametrize("given", [None, "", "a b", "x" * 129, "é", "id\nforged"])
def test_a_missing_or_odd_request_id_is_replaced_by_a_new_one(api, given):
    headers = {} if given is None else {"X-Request-ID": given.encode("utf-8")}
    ids = {api.get("/healthz", headers=headers).headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3 and given not in ids


def test_errors_and_refusals_get_a_line_and_an_id_too(app, api, anon, access):
    assert "x-request-id" in anon.put("/articles/x", json={"title": "t"}).headers  # refused before the body: 401
    assert "x-request-id" in api.get("/articles/no-such-id").headers
    assert [line.split()[6] for line in lines(access, app)] == ["401", "404"]


def test_no_token_reaches_the_log(app, api, anon, access, caplog):
    caplog.set_level(logging.DEBUG)
    api.put("/articles/logged", json={"title": "A write with the token"})
    anon.put("/articles/logged", json={"title": "t"}, headers={"Authorization": "Bearer guessed-0123456789"})
    api.put(f"/articles/{SOURCE}/overrides", json={"pins": [{"id": "logged", "position": 1}]})
    api.delete("/articles/logged")
    text = "\n".join([*lines(access, app), *(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)])
    assert "PUT /articles/logged 401" in text and TOKEN not in text and "guessed-0123456789" not in text


def test_a_control_character_in_a_path_cannot_forge_a_log_line(app, api, access):
    api.get("/articles/a%0Aforged/similar")
    (line,) = lines(access, app)
    assert "GET /articles/a\\nforged/similar 422" in line


def test_lines_are_written_in_batches_and_at_the_latest_soon_after():
    import asyncio

    async def two_requests() -> str:
        log = AccessLog("text", stream=(stream := io.StringIO()))
        log.write("GET", "/a", 200, 0.1, "r1")
        log.write("GET", "/b", 200, 0.1, "r2")
        assert stream.getvalue() == ""
        await asyncio.sleep(AccessLog.FLUSH_S * 3)
        return stream.getvalue()

    assert [line.split(": ")[1] for line in asyncio.run(two_requests()).splitlines()] == \
        ["GET /a 200 0.10ms id=r1", "GET /b 200 0.10ms id=r2"]
