"""Request-body rules enforced before routing, for every method: the writer's token (401/403) before a byte of
the body is read, no body at all where a method takes none (413), JSON only (415), size caps (413) and a
deadline for the whole body (408)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import ApiError, PayloadTooLarge, RequestTimeout, UnsupportedMediaType
from service.forward import READS

PUBLIC_POSTS = ("/similar", "/events")  # POST calls anyone may make; every other POST/PUT/PATCH is a write
BODY_METHODS = ("POST", "PUT", "PATCH")  # the only methods whose body is read; any other method's is refused


class BodyLimits:
    """Reads a body up to its cap, then hands it on; the app never sees an oversized, slow or non-JSON body,
    nor the body of a write whose sender may not write."""

    def __init__(self, app: ASGIApp, max_article_bytes: int, max_batch_bytes: int, max_preview_bytes: int,
                 max_events_bytes: int, body_timeout_s: float,
                 refuse_writer: Callable[[HTTPConnection], Awaitable[ApiError | None]]):
        self.app = app
        self.max_events_bytes = max_events_bytes
        self.max_article_bytes = max_article_bytes
        self.max_batch_bytes = max_batch_bytes
        self.max_preview_bytes = max_preview_bytes
        self.body_timeout_s = body_timeout_s
        self.refuse_writer = refuse_writer

    def _limit(self, method: str, path: str) -> int:
        if method == "POST" and path == "/articles":
            return self.max_batch_bytes
        if method == "POST" and path == "/events":
            return self.max_events_bytes
        if method == "POST" and path in PUBLIC_POSTS:
            return self.max_preview_bytes
        return self.max_article_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] not in BODY_METHODS:
            refusal = await self._bodiless_refusal(scope)
            if refusal is not None:  # closed after the answer: not a byte of any body sent is read
                await refusal.send(send, close=True)
                return
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if not (scope["method"] == "POST" and scope["path"] in PUBLIC_POSTS):
            refusal = await self.refuse_writer(HTTPConnection(scope))
            if refusal is not None:
                await refusal.send(send, close=True)
                return
        media_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        # Events may come as text/plain too: the box's navigator.sendBeacon to another origin can only send a
        # string so (a JSON type needs a preflight that a beacon, sent with credentials, does not pass); the
        # body is parsed as JSON all the same.
        if media_type != b"application/json" and not (scope["path"] == "/events" and media_type == b"text/plain"):
            await UnsupportedMediaType("send the body as JSON with 'Content-Type: application/json'").send(send)
            return
        limit = self._limit(scope["method"], scope["path"])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await PayloadTooLarge(f"body of {int(declared)} bytes is over the {limit}-byte limit for this call"
                                  ).send(send, close=True)
            return
        body = await self._read(receive, send, limit)
        if body is None:
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _bodiless_refusal(self, scope: Scope) -> ApiError | None:
        """Why a request of a method that takes no body is refused from its headers alone: a write (DELETE, or
        any method but a read) without the writer's token, or a body of any size, announced or chunked."""
        if scope["method"] not in READS:
            refusal = await self.refuse_writer(HTTPConnection(scope))
            if refusal is not None:
                return refusal
        for name, value in scope["headers"]:
            if name == b"transfer-encoding" or (name == b"content-length" and value.strip() not in (b"0", b"")):
                return PayloadTooLarge(f"{scope['method']} takes no body here: send it without one")
        return None

    async def _read(self, receive: Receive, send: Send, limit: int) -> bytes | None:
        """The whole body, or None after answering 413 / 408 (or when the client left)."""
        chunks, size, more = [], 0, True
        deadline = time.monotonic() + self.body_timeout_s
        while more:
            try:
                message = await asyncio.wait_for(receive(), max(deadline - time.monotonic(), 0))
            except TimeoutError:
                await RequestTimeout(f"the body did not arrive within {self.body_timeout_s:g}s "
                                     "(RECOMMENDER_BODY_TIMEOUT_S)").send(send, close=True)
                return None
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await PayloadTooLarge(f"body is over the {limit}-byte limit for this call").send(send, close=True)
                return None
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)
