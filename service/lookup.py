"""Default lists answered from stored boxes before routing: the common page view costs one point read. Every
list request is given its variant here (the running experiment's, by reader), so both paths label it alike."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Receive, Scope, Send

from recommender.engine import Recommender
from recommender.experiments import CUSTOM, NO_EXPERIMENT, Assignment
from service.cache import send_json
from service.http_caching import hold_list
from service.metrics import count_list

_SIMILAR = re.compile(r"/articles/([^/]{1,256})/similar")
_DIGITS = re.compile(r"[0-9]{1,3}")
READER = "reader"  # the query parameter naming the reader (the site's id for a visitor)
READER_HEADER = b"x-reader"  # or this header
VARIANT = "variant"  # the scope key the list's variant travels under, to the cache and the route


def list_params(query_string: bytes) -> tuple[list[tuple[str, str]], str | None]:
    """A list request's parameters other than ``reader``, and the reader (None if not given)."""
    params = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True) if query_string else []
    reader = None
    for name, value in params:
        if name == READER:
            reader = value
    return ([p for p in params if p[0] != READER] if reader is not None else params), reader


def default_limit(params: list[tuple[str, str]], default: int) -> int | None:
    """The limit of a default request (no parameter but a valid ``limit``), else None (ranked on demand)."""
    if not params:
        return default
    # ASCII digits only: str.isdigit() also admits '²' or '١', which int() refuses or the route would.
    if len(params) != 1 or params[0][0] != "limit" or not _DIGITS.fullmatch(params[0][1]):
        return None
    limit = int(params[0][1])
    return limit if 1 <= limit <= 50 else None  # out of range: the route answers the 422


def request_reader(scope: Scope) -> str:
    """The reader of a request that names none in its query: the ``x-reader`` header, else the client's address
    and user agent (stable for one browser on one network)."""
    agent = b""
    for name, value in scope["headers"]:
        if name == READER_HEADER:
            return value.decode("latin-1")
        if name == b"user-agent":
            agent = value
    client = scope.get("client")
    return f"{client[0] if client else ''}|{agent.decode('latin-1')}"


def assignment(engine: Recommender, scope: Scope, params: list[tuple[str, str]], reader: str | None,
               limit: int | None) -> Assignment:
    """A request with options of its own is outside experiments; a default one gets the running experiment's
    variant for its reader, or the default list."""
    if limit is None:
        return CUSTOM
    experiment = engine.running_experiment
    return NO_EXPERIMENT if experiment is None else experiment.assign(reader or request_reader(scope))


class StoredLists:
    """ASGI middleware for ``GET /articles/{id}/similar``: gives the request its variant (``scope["variant"]``;
    a variant's options are added to the query string, the ``reader`` taken out of it, so the route ranks the
    variant and the cache keys on what was ranked), then answers a default request (no option but ``limit``,
    a variant without options) with ``Recommender.stored_list_json`` (the engine's lookup; no ranking here, and
    never a wait on the engine catching up with other writers: a box a write can change is queued by that
    write, and a queued box is not served from here). Anything else, or no fresh stored box, goes on to the
    cache and the route."""

    def __init__(self, app: ASGIApp, engine: Callable[[], Recommender | None], limit: int):
        self.app = app
        self.engine = engine  # None while the engine is not open yet
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        engine = self.engine() if scope["type"] == "http" else None
        if engine is not None and scope["path"].endswith("/similar") and scope["method"] == "GET":
            match = _SIMILAR.fullmatch(scope["path"])
            if match:
                params, reader = list_params(scope["query_string"])
                limit = default_limit(params, self.limit)
                given = assignment(engine, scope, params, reader, limit)
                body = None if limit is None or given.options else engine.stored_list_json(
                    match.group(1), limit, given.variant)
                if body is not None:
                    count_list(scope, "stored")
                    hold_list(scope, body)  # its surrogate keys (service.http_caching)
                    await send_json(send, body)
                    return
                query = urlencode([*params, *given.options]).encode() if reader is not None or given.options \
                    else scope["query_string"]
                # In place: the layers outside (the observer's route label and list count) read this scope.
                scope["query_string"], scope[VARIANT] = query, given.variant
        await self.app(scope, receive, send)
