"""Errors: one body shape for every error the API answers (``ErrorBody``), one base class carrying its status
(``ApiError``), one handler, and the guard that turns any unexpected exception into a JSON 500."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from recommender.article import ArticleNotFound, InvalidArticle, error_details
from recommender.store.sql import StoreUnavailable, storage_refusal
from service.schemas import ErrorBody

log = logging.getLogger("recommender.service")
# Retry-After of a write the storage refused (disk full, database locked): seconds, not the moment a restart takes.
STORAGE_RETRY_AFTER_S = 10


class ApiError(Exception):
    """An error the API answers on purpose: ``status``, what is wrong and what to do (``detail``), each field to
    blame (``errors``: ``{type, loc, msg}``) and, for an article of a batch, its id."""

    status: ClassVar[int] = 400
    headers: ClassVar[dict[str, str]] = {}

    def __init__(self, detail: str, errors: Sequence[dict[str, Any]] = (), article_id: str | None = None,
                 status: int | None = None, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.detail = detail
        self.errors = list(errors)
        self.article_id = article_id
        self.status_code = status or self.status
        self.extra_headers = {**self.headers, **(headers or {})}

    def content(self) -> dict[str, Any]:
        """The body, as ``ErrorBody`` describes it."""
        return {"detail": self.detail, "errors": self.errors, "article_id": self.article_id}

    def body(self) -> bytes:
        return json.dumps(self.content()).encode()

    def response(self) -> JSONResponse:
        return JSONResponse(self.content(), status_code=self.status_code, headers=self.extra_headers)

    async def send(self, send: Send, close: bool = False) -> None:
        """Answer with this error straight from ASGI middleware; ``close`` ends the keep-alive connection."""
        payload = self.body()
        headers = {**self.extra_headers, **({"connection": "close"} if close else {})}
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(payload)).encode()),
                                *[(k.lower().encode(), v.encode()) for k, v in headers.items()]]})
        await send({"type": "http.response.body", "body": payload})


class Unauthorized(ApiError):
    status = 401
    headers = {"WWW-Authenticate": "Bearer"}


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


class RequestTimeout(ApiError):
    status = 408


class PayloadTooLarge(ApiError):
    status = 413


class UnsupportedMediaType(ApiError):
    status = 415


class Unprocessable(ApiError):
    status = 422


class HeadersTooLarge(ApiError):
    status = 431


class TooManyRequests(ApiError):
    status = 429


class ClientClosedRequest(ApiError):
    """The client was gone before its request was served (nginx's 499): answered to nobody, logged and counted."""

    status = 499


class ServiceUnavailable(ApiError):
    status = 503
    headers = {"Retry-After": "1"}


DESCRIPTIONS = {
    400: "body cannot be parsed", 401: "missing or wrong bearer token", 403: "this service is read-only", 404: "unknown id",
    408: "the body did not arrive in time", 413: "body over its cap", 415: "body not application/json",
    422: "bad parameter or body: `errors` names each field", 429: "over the client's rate: retry after "
    "`Retry-After` seconds", 503: "not stored: the database is unreachable, or the service is behind or stopping; "
    "retry",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these statuses, each with the one error body."""
    return {status: {"model": ErrorBody, "description": DESCRIPTIONS[status]} for status in statuses}


def api_error(exc: Exception) -> ApiError:
    """Any exception the API answers with a 4xx, as the ``ApiError`` it stands for."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, ArticleNotFound):
        return NotFound(str(exc))
    if isinstance(exc, InvalidArticle):
        return Unprocessable(str(exc), exc.errors, None if exc.article_id is None else str(exc.article_id))
    if isinstance(exc, RequestValidationError):
        errors = error_details(exc.errors())
        return Unprocessable("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors), errors)
    if isinstance(exc, StoreUnavailable):
        return ServiceUnavailable(f"{exc}; nothing was written and no list could be ranked: retry in a moment (stored "
                                  "lists are still served)")
    if isinstance(exc, HTTPException):  # Starlette's own: no such route (404), method not allowed (405)
        return ApiError(str(exc.detail), status=exc.status_code, headers=dict(exc.headers or {}))
    raise TypeError(f"{type(exc).__name__} is not an API error") from exc


async def handle_error(request: Request, exc: Exception) -> JSONResponse:
    return api_error(exc).response()


def install_error_handlers(app: FastAPI) -> None:
    for kind in (ApiError, ArticleNotFound, InvalidArticle, RequestValidationError, HTTPException, StoreUnavailable):
        app.add_exception_handler(kind, handle_error)


class JsonErrors:
    """An exception no handler knew becomes a logged JSON 500, and the keep-alive connection stays usable.

    Without it uvicorn answers a bare text 500 and closes the connection under the client's next request."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            refused = storage_error(exc)
            if refused is None:
                log.exception("unexpected error on %s %s", scope.get("method"), scope.get("path"))
            else:
                log.error("%s %s: %s", scope.get("method"), scope.get("path"), refused.detail)
            if started:  # half a response went out: nothing sound can follow it on this connection
                raise
            await (refused or ApiError("internal error: the request was not completed (see the server log)",
                                       status=500)).send(send)


def storage_error(exc: Exception) -> ServiceUnavailable | None:
    """The 503 for a write the storage refused for now (``recommender.store.sql.storage_refusal``), else None."""
    why = storage_refusal(exc)
    if why is None:
        return None
    return ServiceUnavailable(f"not stored: {why}; nothing of this request was written: retry later",
                              headers={"Retry-After": str(STORAGE_RETRY_AFTER_S)})
