"""Public previews (``POST /similar``: anyone may send one, and each embeds its text) are capped in the process
that embeds them, so that they never queue in front of writes and takedowns."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import ServiceUnavailable


class PreviewCap:
    """At most ``cap`` previews in this process at once; one more is answered 503 with ``Retry-After`` at once
    (not queued for the thread pool that writes also need)."""

    def __init__(self, app: ASGIApp, cap: int):
        self.app = app
        self.cap = cap
        self.in_flight = 0  # one event loop: no lock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != "/similar":
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.cap:
            await ServiceUnavailable(f"{self.cap} previews are being embedded (RECOMMENDER_MAX_PREVIEWS): send it "
                                     "again in a moment").send(send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
