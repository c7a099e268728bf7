"""JSON error responses, and the guard that turns any unexpected exception into one."""

from __future__ import annotations

import json
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("recommender.service")


async def send_problem(send: Send, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
    """A complete JSON response ``{"detail": ...}``; extra ``headers`` (e.g. ``connection: close``) go with it."""
    payload = json.dumps({"detail": detail}).encode()
    extra = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode()), *extra]})
    await send({"type": "http.response.body", "body": payload})


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
        except Exception:
            log.exception("unexpected error on %s %s", scope.get("method"), scope.get("path"))
            if started:  # half a response went out: nothing sound can follow it on this connection
                raise
            await send_problem(send, 500, "internal error: the request was not completed (see the server log)")
