"""Request-body rules enforced before routing: JSON only (415) and size caps (413)."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyLimits:
    """Reads a write's body up to its cap, then hands it on; the app never sees an oversized or non-JSON body."""

    def __init__(self, app: ASGIApp, max_article_bytes: int, max_batch_bytes: int):
        self.app = app
        self.max_article_bytes = max_article_bytes
        self.max_batch_bytes = max_batch_bytes

    def _limit(self, method: str, path: str) -> int:
        return self.max_batch_bytes if (method, path.rstrip("/")) == ("POST", "/articles") else self.max_article_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        media_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if media_type != b"application/json":
            await _problem(send, 415, "send the body as JSON with 'Content-Type: application/json'")
            return
        limit = self._limit(scope["method"], scope["path"])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _problem(send, 413, f"body of {int(declared)} bytes is over the {limit}-byte limit for this call")
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _problem(send, 413, f"body is over the {limit}-byte limit for this call")
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


async def _problem(send: Send, status: int, detail: str) -> None:
    payload = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})
