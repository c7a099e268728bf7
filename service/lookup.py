"""Default lists answered from stored boxes before routing: the common page view costs one point read."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from recommender.engine import Recommender
from service.cache import send_json
from service.metrics import count_list

_SIMILAR = re.compile(r"/articles/([^/]{1,256})/similar")
_DIGITS = re.compile(r"[0-9]{1,3}")


def default_limit(query_string: bytes, default: int) -> int | None:
    """The limit of a default request (no parameter but a valid ``limit``), else None (ranked on demand)."""
    if not query_string:
        return default
    params = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    # ASCII digits only: str.isdigit() also admits '²' or '١', which int() refuses or the route would.
    if len(params) != 1 or params[0][0] != "limit" or not _DIGITS.fullmatch(params[0][1]):
        return None
    limit = int(params[0][1])
    return limit if 1 <= limit <= 50 else None  # out of range: the route answers the 422


class StoredLists:
    """ASGI middleware: ``GET /articles/{id}/similar`` with no option but ``limit`` is answered with
    ``Recommender.stored_list_json`` (the engine's lookup; no ranking here, and never a wait on the engine
    catching up with other writers: a box a write can change is queued by that write, and a queued box is
    not served from here). Anything else, or no fresh stored box, goes on to the cache and the route."""

    def __init__(self, app: ASGIApp, engine: Callable[[], Recommender | None], limit: int):
        self.app = app
        self.engine = engine  # None while the engine is not open yet
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        engine = self.engine() if scope["type"] == "http" else None
        if engine is not None and scope["path"].endswith("/similar"):
            match = _SIMILAR.fullmatch(scope["path"])
            limit = default_limit(scope["query_string"], self.limit) if match and scope["method"] == "GET" else None
            body = engine.stored_list_json(match.group(1), limit) if match and limit is not None else None
            if body is not None:
                count_list(scope, "stored")
                await send_json(send, body)
                return
        await self.app(scope, receive, send)
