"""Every error the API answers has one body shape (``ErrorBody``): each operation of the OpenAPI document is
called with a bad id, an unknown id, bad query values, bad, oversized and non-JSON bodies, without the token,
and each 4xx it answers must be declared for that operation and carry exactly that body."""

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from recommender.engine import Recommender
from service.app import create_app
from service.schemas import ErrorBody
from tests.conftest import make_settings
from tests.service.conftest import TOKEN, private_copy

SOURCE = "N34700"
CAP = 2000  # small body caps, so that every body operation can be sent an oversized body


@pytest.fixture(scope="module")
def app(ingested_dir, tmp_path_factory, embedder) -> Iterator[FastAPI]:
    settings = make_settings(private_copy(ingested_dir, tmp_path_factory), api_token=TOKEN, max_article_bytes=CAP,
                             max_batch_bytes=CAP, max_preview_bytes=CAP)
    with Recommender(settings, embedder=embedder) as engine:
        yield create_app(settings, recommender=engine)


def operations(spec: dict) -> list[tuple[str, str, dict]]:
    return [(method.upper(), path, op) for path, ops in spec["paths"].items() for method, op in ops.items()]


def bad_calls(method: str, path: str, op: dict) -> Iterator[tuple[str, dict]]:
    """(path, request keyword arguments) for calls to this operation that must fail."""
    def at(article_id: str) -> str:
        return path.replace("{article_id}", article_id).replace("{item_id}", article_id)

    has_body = "requestBody" in op
    json_body = {"title": "t"} if method != "POST" or path == "/similar" else [{"id": "x", "title": "t"}]
    if "{" in path:
        yield at("%20bad"), {"json": json_body} if has_body else {}
        yield at("no-such-id"), {"json": json_body} if has_body else {}
    for param in op.get("parameters", []):
        if param["in"] == "query":
            yield at(SOURCE), {"params": {param["name"]: "x" * 300}, **({"json": json_body} if has_body else {})}
    if has_body:
        yield at(SOURCE), {"content": b"not json", "headers": {"Content-Type": "application/json"}}
        yield at(SOURCE), {"content": b"W\xf0\xcf ", "headers": {"Content-Type": "application/json"}}
        yield at(SOURCE), {"json": 5}
        yield at(SOURCE), {"content": b"{}", "headers": {"Content-Type": "text/plain"}}
        yield at(SOURCE), {"content": b" " * (CAP + 1), "headers": {"Content-Type": "application/json"}}
    if "security" in op:
        yield at(SOURCE), {"json": json_body, "headers": {"Authorization": "Bearer wrong"}} if has_body else {
            "headers": {"Authorization": "Bearer wrong"}}


def assert_error_body(r: Any) -> None:  # an httpx response, from TestClient or httpx
    assert r.headers["content-type"] == "application/json", r.text
    assert set(r.json()) == set(ErrorBody.model_fields), r.text
    ErrorBody.model_validate(r.json())


def test_every_declared_error_response_is_the_error_body(api):
    for method, path, op in operations(api.get("/openapi.json").json()):
        for status, response in op["responses"].items():
            if status.startswith("4"):
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path, status)


def test_every_error_of_every_operation_has_the_one_shape(api):
    seen: dict[int, int] = {}
    for method, path, op in operations(api.get("/openapi.json").json()):
        for target, kwargs in bad_calls(method, path, op):
            r = api.request(method, target, **kwargs)
            if r.status_code < 400:
                continue
            assert str(r.status_code) in op["responses"], f"{method} {target}: undeclared {r.status_code} {r.text}"
            assert_error_body(r)
            seen[r.status_code] = seen.get(r.status_code, 0) + 1
    assert set(seen) == {400, 401, 404, 413, 415, 422}, seen


def test_errors_outside_the_operations_have_the_one_shape(api, app):
    for r in (api.get("/no/such/route"), api.delete("/healthz"), api.get(f"/articles/{SOURCE}/similar/"),
              TestClient(app, headers={"Authorization": "Bearer wrong"}).post("/no-such-write", json={})):
        assert 400 <= r.status_code < 500
        assert_error_body(r)
