"""How uvicorn runs the app, in every server process (a read worker, the writer, a one-process server). Light to
import: `recommender serve` hands these options on to its workers without importing the app or its protocol."""

from __future__ import annotations

from typing import Any

from recommender.settings import Settings

# Imported by name where a server loads its config: the process serving it has configured it
# (``service.protocol.configure_protocol``, which ``service.app.create_app`` calls).
PROTOCOL = "service.protocol:GuardedHttpToolsProtocol"


def server_options(settings: Settings) -> dict[str, Any]:
    """``uvicorn.run`` keyword arguments that bound what slow, idle or numerous clients can hold, and serve no
    WebSockets: the app has no WebSocket route, and uvicorn's default ("auto") imports the ``websockets``
    package in every process at start (~0.4 s of a core each, on the path to ready: docs/benchmarks.md)."""
    return {"http": PROTOCOL, "ws": "none", "timeout_keep_alive": settings.keep_alive_timeout_s,
            "limit_concurrency": settings.max_connections}
