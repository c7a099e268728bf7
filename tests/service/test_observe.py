"""Every request, the stored-box path included, gets a request id (the client's, or a new one) echoed in
``X-Request-ID`` and one access-log line with method, path, status, duration and that id."""

import logging
from typing import Any

import pytest

from tests.service.conftest import TOKEN

SOURCE = "N34700"


@pytest.fixture
def access(caplog) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="recommender.access")
    return caplog


def lines(caplog: pytest.LogCaptureFixture) -> list[Any]:
    """The access-log records (their fields are attributes: ``extra``)."""
    return [r for r in caplog.records if r.name == "recommender.access"]


def test_a_client_request_id_is_echoed_and_logged(api, access):
    response = api.get(f"/articles/{SOURCE}/similar", headers={"X-Request-ID": "page-view-42"})
    assert response.headers["x-request-id"] == "page-view-42"
    (line,) = lines(access)
    assert (line.method, line.path, line.status, line.request_id) == ("GET", f"/articles/{SOURCE}/similar", 200,
                                                                      "page-view-42")
    assert line.duration_ms >= 0 and line.getMessage().startswith(f"GET /articles/{SOURCE}/similar 200 ")


@pytest.mark.parametrize("given", [None, "", "a b", "x" * 129, "é", "id\nforged"])
def test_a_missing_or_odd_request_id_is_replaced_by_a_new_one(api, given):
    headers = {} if given is None else {"X-Request-ID": given.encode("utf-8")}
    ids = {api.get("/healthz", headers=headers).headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3 and given not in ids


def test_errors_and_refusals_get_a_line_and_an_id_too(api, anon, access):
    assert "x-request-id" in anon.put("/articles/x", json={"title": "t"}).headers  # refused before the body: 401
    assert "x-request-id" in api.get("/articles/no-such-id").headers
    statuses = [r.status for r in lines(access)]
    assert statuses == [401, 404]


def test_no_token_reaches_the_log(api, anon, caplog):
    caplog.set_level(logging.DEBUG)
    api.put("/articles/logged", json={"title": "A write with the token"})
    anon.put("/articles/logged", json={"title": "t"}, headers={"Authorization": "Bearer guessed-0123456789"})
    api.put(f"/articles/{SOURCE}/overrides", json={"pins": [{"id": "logged", "position": 1}]})
    api.delete("/articles/logged")
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "recommender.access" in text and TOKEN not in text and "guessed-0123456789" not in text


def test_a_control_character_in_a_path_cannot_forge_a_log_line(api, access):
    api.get("/articles/a%0Aforged/similar")
    (line,) = lines(access)
    assert "\n" not in line.getMessage() and line.path == "/articles/a\\nforged/similar"
