"""The catch-all: an exception no handler knew is a JSON 500 on a connection that stays usable."""

import asyncio

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.routing import Route

from service.errors import JsonErrors


def _app() -> Starlette:
    """Set up as service.app does: a user middleware, inside Starlette's own error middleware."""
    def broken(request):
        raise RuntimeError("a bug nobody foresaw")

    def fine(request):
        return JSONResponse({"ok": True})

    return Starlette(routes=[Route("/broken", broken), Route("/fine", fine)], middleware=[Middleware(JsonErrors)])


def test_an_unforeseen_error_is_a_json_500_and_the_next_request_is_served(caplog):
    async def calls() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=True)  # a re-raise would fail the test
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return [await client.get("/broken"), await client.get("/fine")]

    broken, fine = asyncio.run(calls())
    assert broken.status_code == 500 and broken.headers["content-type"] == "application/json"
    assert "internal error" in broken.json()["detail"] and "nobody foresaw" not in broken.text
    assert fine.json() == {"ok": True}
    assert "a bug nobody foresaw" in caplog.text  # logged with its traceback, not sent to the client
