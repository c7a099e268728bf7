"""The HTTP/1.1 protocol the server runs: uvicorn's httptools protocol, with a deadline and a size cap for a
request's line and headers, which uvicorn lacks (a client sending headers slowly, or none at all, held its
connection for good), and its 400 for a request it cannot parse and its 503 above the connection limit in the one
error body (uvicorn wrote plain text). Bodies have their deadline in ``service.limits``; idle keep-alive
connections, uvicorn's."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from starlette.types import Send
from uvicorn._types import ASGI3Application, ASGIReceiveCallable, ASGISendCallable, Scope
from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from recommender.settings import Settings
from service.errors import ApiError, HeadersTooLarge, RequestTimeout, ServiceUnavailable


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """Cuts a connection whose request line and headers are not complete within ``header_timeout_s`` of its
    opening or of the request's first byte (408), or run over ``max_header_bytes`` (431)."""

    header_timeout_s: float = 10.0
    max_header_bytes: int = 65_536

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._header_deadline: asyncio.TimerHandle | None = None
        self._raw_header_bytes = 0  # received while a request's headers are incomplete
        self._header_bytes = 0  # the request line and headers parsed so far
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._header_deadline is not None:
            self._raw_header_bytes += len(data)
        super().data_received(data)
        if self._header_deadline is not None and self._raw_header_bytes > self.max_header_bytes:
            self._refuse(HeadersTooLarge(f"request line and headers over {self.max_header_bytes} bytes"))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_url(self, url: bytes) -> None:
        self._header_bytes += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        too_large = self._header_bytes > self.max_header_bytes
        self._disarm()
        if too_large:  # all of it came in one read: refused here, the app never starts
            self._refuse(HeadersTooLarge(f"request line and headers over {self.max_header_bytes} bytes"))
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._refused:
            super().on_message_complete()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        # Above RECOMMENDER_MAX_CONNECTIONS uvicorn answers with an app of its own, in plain text: the one error
        # body instead, with when to retry.
        super()._start_asgi_task(cycle, _too_many_connections if app is service_unavailable else app)

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to bytes httptools cannot parse as a request (``msg`` is uvicorn's own), as JSON."""
        self._refuse(ApiError(f"{msg.rstrip('.')}: the request line or a header is not valid HTTP/1.1 (a "
                              "non-ASCII byte in the URL, a header line without ':', a bad Content-Length...)",
                              status=400))

    def _arm(self) -> None:
        if self._header_deadline is None:
            self._header_deadline = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _headers_too_slow(self) -> None:
        self._refuse(RequestTimeout(f"request headers did not arrive within {self.header_timeout_s:g}s"))

    def _disarm(self) -> None:
        self._header_bytes = self._raw_header_bytes = 0
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _refuse(self, error: ApiError) -> None:
        self._disarm()
        self._refused = True
        if self.transport.is_closing():
            return
        body = error.body()
        reason = {400: b"Bad Request", 408: b"Request Timeout", 431: b"Request Header Fields Too Large"}[error.status_code]
        self.transport.write(b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                             b"connection: close\r\n\r\n%s" % (error.status_code, reason, len(body), body))
        self.transport.close()


async def _too_many_connections(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    await ServiceUnavailable("the server holds as many connections as it may (RECOMMENDER_MAX_CONNECTIONS): "
                             "retry in a moment").send(cast(Send, send), close=True)


def configure_protocol(settings: Settings) -> None:
    """Set the header limits class-wide: one server per process, and the class must stay importable by name
    (``service.serving.PROTOCOL``: each process's server imports it, and each process configures it, in
    ``service.app.create_app``)."""
    GuardedHttpToolsProtocol.header_timeout_s = settings.header_timeout_s
    GuardedHttpToolsProtocol.max_header_bytes = settings.max_header_bytes
