"""Paths refused before routing: a path whose percent-escapes are not UTF-8 once decoded is a 422, never
served with each bad byte replaced by U+FFFD (``N%FF`` and ``N%FE`` would then be one id, ``N\ufffd``)."""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import Unprocessable


def undecodable(raw_path: bytes) -> Unprocessable | None:
    """The 422 for a raw path that is not UTF-8 once its escapes are decoded (a lone surrogate's UTF-8, such as
    ``%ED%A0%80``, included), else None."""
    if b"%" not in raw_path:  # uvicorn refuses a non-ASCII request line: a path without escapes is ASCII
        return None
    try:
        unquote_to_bytes(raw_path).decode("utf-8")
    except UnicodeDecodeError as exc:
        why = (f"the path is not UTF-8 once its %-escapes are decoded ({exc.reason} at byte {exc.start}): "
               "an id is text, sent as the %-escaped bytes of its UTF-8")
        return Unprocessable(why, [{"type": "value_error", "loc": ["path"], "msg": why}])
    return None


class DecodedPaths:
    """Answers the 422 of ``undecodable`` before any layer reads the path (stored lists, the relay, routing)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = undecodable(scope.get("raw_path") or b"") if scope["type"] == "http" else None
        if refusal is not None:  # closed after the answer: a body sent with it is never read
            await refusal.send(send, close=True)
            return
        await self.app(scope, receive, send)
