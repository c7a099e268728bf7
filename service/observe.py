"""Every request observed, the stored-box path included: a request id (``X-Request-ID``, taken from the request
or made, echoed back), one access-log line, and the request metrics. Outermost middleware, so it sees what the
others answer; it never reads a header but ``X-Request-ID``, so no token can reach a log."""

from __future__ import annotations

import itertools
import logging
import os
import re
import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.metrics import LATENCY, LISTS, REQUESTS

log = logging.getLogger("recommender.access")
# A client's id is kept if it is short and plain (it goes into log lines); anything else is replaced.
_CLIENT_ID = re.compile(rb"[A-Za-z0-9._:@+=-]{1,128}")
_SIMILAR = re.compile(r"/articles/[^/]+/similar")
UNMATCHED = "(unmatched)"  # one label for every path no route knows: 404 probes must not mint label values


def route_of(scope: Scope) -> str:
    """The route template a request went to (a bounded set of label values)."""
    route = scope.get("route")
    if route is not None:
        return route.path
    if "recommender.list" in scope and _SIMILAR.fullmatch(scope["path"]):  # answered before routing
        return "/articles/{article_id}/similar"
    return UNMATCHED


class RequestIds:
    """Ids unique across processes and cheap to make: a random per-process prefix and a counter."""

    def __init__(self) -> None:
        self.prefix = os.urandom(4).hex()
        self.counter = itertools.count(1)

    def of(self, scope: Scope) -> bytes:
        for name, value in scope["headers"]:
            if name == b"x-request-id" and _CLIENT_ID.fullmatch(value):
                return value
        return f"{self.prefix}-{next(self.counter):x}".encode()


class Observed:
    """ASGI middleware: request id, access log line and metrics for every HTTP request."""

    def __init__(self, app: ASGIApp):
        self.app = app
        self.ids = RequestIds()
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = self.ids.of(scope)
        status = 500  # what an exception escaping every handler becomes (uvicorn's answer)

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._observe(scope, status, time.perf_counter() - started, request_id.decode("latin-1"))

    def _observe(self, scope: Scope, status: int, seconds: float, request_id: str) -> None:
        route, method = route_of(scope), scope["method"]
        series = self._series.get((route, method, status))
        if series is None:  # labels() looks up under a lock: once per series, not per request
            series = self._series[(route, method, status)] = (REQUESTS.labels(route, method, str(status)),
                                                              LATENCY.labels(route))
        series[0].inc()
        series[1].observe(seconds)
        source = scope.get("recommender.list")
        if source is not None and status == 200:
            LISTS.labels(source).inc()
        ms = round(seconds * 1000, 2)
        path = scope["path"] if scope["path"].isprintable() else scope["path"].encode("unicode_escape").decode()
        log.info("%s %s %d %.2fms id=%s", method, path, status, ms, request_id,
                 extra={"method": method, "path": path, "status": status, "duration_ms": ms, "request_id": request_id})
