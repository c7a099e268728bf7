"""A token bucket per client, in this process: how many events a client may send (``POST /events``)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from starlette.requests import HTTPConnection

# Clients remembered at most (least recently seen forgotten first: a forgotten client starts with a full burst).
MAX_CLIENTS = 100_000


class RateLimiter:
    """``rate`` tokens a second per client, up to ``burst`` saved; a request costs one token per event."""

    def __init__(self, rate: float, burst: int, client_header: str | None = None, proxy_hops: int = 1):
        self.rate = rate
        self.burst = burst
        self.client_header = client_header.lower() if client_header else None
        self.proxy_hops = proxy_hops
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, at)
        self._lock = threading.Lock()

    def client(self, connection: HTTPConnection) -> str:
        """Who is asking: behind ``proxy_hops`` trusted proxies, each appending the address it was connected from
        to the configured header, the address the outermost one appended (the ``proxy_hops``-th from the right,
        as uvicorn's proxy-headers logic picks it); anything left of it the client wrote, and is never trusted.
        Without the header (or with it empty), the connection's address."""
        if self.client_header:
            # Every occurrence of the header, in order: a proxy may add its own line rather than append.
            named = [address.strip() for value in connection.headers.getlist(self.client_header)
                     for address in value.split(",") if address.strip()]
            if named:
                return named[-min(self.proxy_hops, len(named))]
        return connection.client.host if connection.client else ""

    def retry_after(self, client: str, cost: int) -> float | None:
        """Take ``cost`` tokens from the client's bucket; None if it had them, else the seconds until it will
        (nothing is taken then)."""
        now = time.monotonic()
        with self._lock:
            tokens, at = self._buckets.pop(client, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            wait = None if tokens >= cost else (cost - tokens) / self.rate
            self._buckets[client] = (tokens - cost if wait is None else tokens, now)
            if len(self._buckets) > MAX_CLIENTS:
                self._buckets.popitem(last=False)
        return wait
