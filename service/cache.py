"""Similar lists served from their serialized bytes, valid until the engine's next write."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.metrics import count_list


class ResponseCache:
    """An LRU of response bodies tagged with the engine generation they were computed under; an entry from
    an older generation is a miss, so a takedown or an override is visible on the very next request."""

    def __init__(self, size: int):
        self.size = size
        self._entries: OrderedDict[Hashable, tuple[int, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, generation: int) -> bytes | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] != generation:
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def put(self, key: Hashable, generation: int, body: bytes) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._entries[key] = (generation, body)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)


def authorized(scope: Scope) -> bool:
    """Whether the request carries credentials (the editor's token): its lists are the editor's own."""
    return any(name == b"authorization" for name, _ in scope["headers"])


async def send_json(send: Send, body: bytes) -> None:
    """A 200 JSON response of ready bytes, straight to the ASGI server."""
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"vary", b"Accept")]})  # the same URL answers HTML to Accept: text/html
    await send({"type": "http.response.body", "body": body})


class CachedLists:
    """ASGI middleware for ``GET /articles/{id}/similar``: a repeated request (same path and query string) is
    answered from the bytes of its last 200 response, before routing, parameter validation, the thread hop,
    ranking and JSON encoding. Most page views repeat a few stories, so this is the common path."""

    def __init__(self, app: ASGIApp, size: int, generation: Callable[[], int | None]):
        self.app = app
        self.cache = ResponseCache(size)
        self.generation = generation  # None while the engine is not open yet: nothing is cached

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A request with credentials (the editor's) may be shown an unpublished article's list: never kept. The
        # generation is read only for a list: it is a read of the store, and no other request (a health check)
        # may wait on a database that does not answer.
        generation = None if scope["type"] != "http" or scope["method"] != "GET" \
            or not scope["path"].endswith("/similar") or authorized(scope) else self.generation()
        if generation is None:
            await self.app(scope, receive, send)
            return
        # The variant is part of the key: two variants with the same options (an A/A test) list the same items
        # under different labels, and the variant may have come from a header, not the query string.
        key = (scope["path"], scope["query_string"], scope.get("variant"))
        body = self.cache.get(key, generation)
        if body is not None:
            count_list(scope, "cached")
            await send_json(send, body)
            return
        status, chunks = 0, []

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, capture)
        if status == 200:
            # Tagged with the generation read before the list was computed: a write meanwhile makes it stale.
            self.cache.put(key, generation, b"".join(chunks))
