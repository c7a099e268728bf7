"""Every request observed, the stored-box path included: a request id (``X-Request-ID``, taken from the request
or made, echoed back), one access-log line, and the request metrics. Outermost middleware, so it sees what the
others answer; it never reads a header but ``X-Request-ID``, so no token can reach a log."""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import sys
import time
from typing import TextIO

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from recommender.logs import LogFormat, json_line
from service.metrics import LATENCY, LISTS, REQUESTS

ACCESS_LOGGER = "recommender.access"
# A client's id is kept if it is short and plain (it goes into log lines); anything else is replaced.
_CLIENT_ID = re.compile(rb"[A-Za-z0-9._:@+=-]{1,128}")
_SIMILAR = re.compile(r"/articles/[^/]+/similar")
UNMATCHED = "(unmatched)"  # one label for every path no route knows: 404 probes must not mint label values
# A read worker's label for the writes it hands to the writer process, which counts them by route itself.
FORWARDED = "(to writer)"
REQUEST_ID = "recommender.request_id"  # the scope key other middleware reads the request's id from


def route_of(scope: Scope) -> str:
    """The route template a request went to (a bounded set of label values)."""
    route = scope.get("route")
    if route is not None:
        return route.path
    if "recommender.list" in scope and _SIMILAR.fullmatch(scope["path"]):  # answered before routing
        return "/articles/{article_id}/similar"
    if scope.get("recommender.forwarded"):
        return FORWARDED
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


class AccessLog:
    """One line per request, in the format of every other log line (``recommender.logs``: text, or JSON with the
    fields ``method``, ``path``, ``status``, ``duration_ms``, ``request_id``), written to stderr in batches by the
    event loop: ``FLUSH_S`` after a batch's first line, at ``MAX_LINES``, and on shutdown (``flush``).

    Not a ``logging`` record per request: making, formatting and writing one cost ~22 µs in the app, more than
    half of a stored box's ~38 µs; a line here costs ~2 µs. A SIGKILL loses at most the last ``FLUSH_S``."""

    FLUSH_S = 0.1
    MAX_LINES = 1000

    def __init__(self, log_format: LogFormat, stream: TextIO | None = None):
        self.json = log_format == "json"
        self.stream = stream  # None: sys.stderr at each flush (wherever it points then)
        self.lines: list[str] = []
        self.process = os.getpid()
        self._second, self._stamp = -1, ""

    def _time(self) -> str:
        """``logging``'s default asctime (``2026-11-26 10:12:02,452``), strftime once per second."""
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second, self._stamp = second, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        return f"{self._stamp},{int((now - second) * 1000):03d}"

    def write(self, method: str, path: str, status: int, ms: float, request_id: str) -> None:
        message = f"{method} {path} {status} {ms:.2f}ms id={request_id}"
        if self.json:
            line = json_line(self._time(), "INFO", ACCESS_LOGGER, self.process, message, method=method, path=path,
                             status=status, duration_ms=ms, request_id=request_id)
        else:
            line = f"{self._time()} INFO {ACCESS_LOGGER}: {message}"
        self.lines.append(line + "\n")
        if len(self.lines) == 1:
            try:
                asyncio.get_running_loop().call_later(self.FLUSH_S, self.flush)
            except RuntimeError:  # no event loop: nothing would flush it later
                self.flush()
        elif len(self.lines) >= self.MAX_LINES:
            self.flush()

    def flush(self) -> None:
        if self.lines:
            text, self.lines = "".join(self.lines), []
            stream = self.stream or sys.stderr
            stream.write(text)
            stream.flush()


class Observed:
    """ASGI middleware: request id, access log line and metrics for every HTTP request."""

    def __init__(self, app: ASGIApp, access_log: AccessLog):
        self.app = app
        self.access_log = access_log
        self.ids = RequestIds()
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._lists: dict[str, Counter] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = scope[REQUEST_ID] = self.ids.of(scope)
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
            lists = self._lists.get(source) or self._lists.setdefault(source, LISTS.labels(source))
            lists.inc()
        path = scope["path"] if scope["path"].isprintable() else scope["path"].encode("unicode_escape").decode()
        self.access_log.write(method, path, status, round(seconds * 1000, 2), request_id)
