"""Writes leave the read workers: every request but a read goes to the writer process over its Unix socket, and
its answer (status, headers, body) goes back to the client unchanged, so errors and acknowledgements are the
writer's own; the writer gets the request target exactly as the client sent it. A read worker's event loop only relays bytes: embedding, applying a write and refreshing boxes
never hold its GIL."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Receive, Scope, Send

from recommender.store.sql import StoreUnavailable
from service.errors import ServiceUnavailable
from service.observe import REQUEST_ID

if TYPE_CHECKING:
    import httpcore

log = logging.getLogger("recommender")

READS = ("GET", "HEAD", "OPTIONS")
# Hop-by-hop headers, and those the worker's own server writes: never relayed.
NOT_RELAYED = {b"connection", b"keep-alive", b"transfer-encoding", b"upgrade", b"te", b"trailer", b"host",
               b"content-length", b"date", b"server", b"x-request-id"}
# How long a write waits for a writer that is starting (or restarting after a crash) before a 503.
WRITER_WAIT_S = 60.0
# How long a relayed request waits for the writer's answer before a 503 (RECOMMENDER_WRITER_TIMEOUT_S).
WRITER_ANSWER_S = 300.0
# Every route the writer takes is idempotent: PUTs, DELETEs, POST /articles (a batch of upserts) and POST
# /similar (a read); tests/service/test_forward.py holds the list. So a write cut off by the writer's death is
# sent to its successor, up to this many times (a write that itself kills the writer must not kill it forever).
WRITER_DEATHS_PER_WRITE = 3


class WriterUnavailable(ServiceUnavailable):
    """The writer process is starting, restarting, hung, or died during the write."""


@dataclass(frozen=True)
class Relayed:
    """The writer's answer: status, raw headers, body."""

    status: int
    headers: list[tuple[bytes, bytes]]
    content: bytes


class ForwardWrites:
    """Hands every request other than GET, HEAD and OPTIONS to the writer listening on ``socket``."""

    def __init__(self, app: ASGIApp, socket: Path, followed: Callable[[], object], wait_s: float = WRITER_WAIT_S,
                 answer_s: float = WRITER_ANSWER_S):
        self.app = app
        self.socket = socket
        self.followed = followed
        self.wait_s = wait_s
        self.answer_s = answer_s
        self._pool: httpcore.AsyncConnectionPool | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in READS:
            await self.app(scope, receive, send)
            return
        scope["recommender.forwarded"] = True
        body = await _body(receive)
        if body is None:  # the client left before its body was in: nothing to write
            return
        try:
            response = await self._forward(scope, body)
        except WriterUnavailable as exc:
            await exc.send(send)
            return
        if 200 <= response.status < 300:  # read your writes: this worker's next request sees what the writer stored
            try:
                await asyncio.to_thread(self.followed)
            except StoreUnavailable:  # stored all the same: the client gets its acknowledgement, this worker
                pass  # catches up when the database is back (its poll)
        headers = [(k, v) for k, v in response.headers if k.lower() not in NOT_RELAYED]
        payload = response.content
        if response.status not in (204, 304):
            headers.append((b"content-length", str(len(payload)).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    async def _forward(self, scope: Scope, body: bytes) -> Relayed:
        """The writer's response; retried while no writer listens (starting, restarting), and when one died
        before answering."""
        # Imported at the first write, not before the worker listens: 0.4 s of a worker's start (httpcore takes
        # trio in where it is installed), and most workers' first requests are reads.
        import httpcore

        if self._pool is None:  # made on the worker's own event loop, at its first write
            # A connection per write (a local connect costs microseconds): a failure to connect then always
            # means the write was not sent (safe to retry), never a kept connection of a writer that died since.
            # No cap on connections here: a takedown never waits in this pool behind previews (the writer caps
            # those itself, RECOMMENDER_MAX_PREVIEWS).
            self._pool = httpcore.AsyncConnectionPool(uds=str(self.socket), max_connections=None,
                                                      max_keepalive_connections=0)
        # The target exactly as the client sent it: httpx would resolve "." and ".." segments first, and
        # "DELETE /blocked/x/../../articles/A" would reach the writer as "DELETE /articles/A".
        target = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string", b"")
        url = httpcore.URL(scheme=b"http", host=b"writer", port=None, target=target + (b"?" + query if query else b""))
        headers = [(b"host", b"writer"), *((k, v) for k, v in scope["headers"] if k.lower() not in NOT_RELAYED)]
        if REQUEST_ID in scope:  # the writer logs the write under the id the client gets back from this worker
            headers.append((b"x-request-id", scope[REQUEST_ID]))
        timeouts = {"connect": 5.0, "read": self.answer_s, "write": self.answer_s, "pool": self.answer_s}
        deadline = time.monotonic() + self.wait_s
        deaths = 0
        while True:
            try:
                response = await self._pool.request(scope["method"], url, headers=headers, content=body,
                                                    extensions={"timeout": timeouts})
                return Relayed(response.status, response.headers, response.content)
            except (httpcore.ConnectError, httpcore.ConnectTimeout):  # nothing was sent: safe to try again
                if time.monotonic() > deadline:
                    raise WriterUnavailable(f"the writer process did not answer within {self.wait_s:g}s "
                                            "(starting, or restarting after a crash): retry later") from None
            except httpcore.TimeoutException:
                # Not sent again: the writer may still apply it. The supervisor restarts a writer that stopped
                # answering its health check (README, "Reliability and access").
                raise WriterUnavailable(f"the writer process did not answer within {self.answer_s:g}s "
                                        "(RECOMMENDER_WRITER_TIMEOUT_S); it may still apply this request: send it "
                                        "again shortly (writes are idempotent)") from None
            except (httpcore.NetworkError, httpcore.ProtocolError) as exc:
                # Sent, no answer: the writer died during the write, or before taking it (a SIGKILLed writer's
                # socket still accepts until its last thread is gone). Sent again: every write is idempotent.
                deaths += 1
                if deaths >= WRITER_DEATHS_PER_WRITE or time.monotonic() > deadline:
                    raise WriterUnavailable(f"the writer process ended during this write {deaths} times; it "
                                            "may or may not have been stored: send it again (article writes "
                                            "are idempotent upserts)") from None
                log.warning("the writer process ended during %s %s (%s: %s): sending it again",
                            scope["method"], scope["path"], type(exc).__name__, exc)
            await asyncio.sleep(0.1)


async def _body(receive: Receive) -> bytes | None:
    chunks, more = [], True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)
