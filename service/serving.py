"""How uvicorn runs the app, in every server process (a read worker, the writer, a one-process server), and how
the read workers listen. Light to import: `recommender serve` hands these options on to its workers without
importing the app or its protocol."""

from __future__ import annotations

import logging
import socket
import sys
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import multiprocess

from recommender.settings import Settings

log = logging.getLogger("uvicorn.error")

# Imported by name where a server loads its config: the process serving it has configured it
# (``service.protocol.configure_protocol``, which ``service.app.create_app`` calls).
PROTOCOL = "service.protocol:GuardedHttpToolsProtocol"


def server_options(settings: Settings) -> dict[str, Any]:
    """``uvicorn.run`` keyword arguments that bound what slow, idle or numerous clients can hold, and serve no
    WebSockets: the app has no WebSocket route, and uvicorn's default ("auto") imports the ``websockets``
    package in every process at start (~0.4 s of a core each, on the path to ready: docs/benchmarks.md)."""
    return {"http": PROTOCOL, "ws": "none", "timeout_keep_alive": settings.keep_alive_timeout_s,
            "limit_concurrency": settings.max_connections}


def run_workers(config: uvicorn.Config) -> None:
    """Run ``config.workers`` read workers under uvicorn's supervisor (restarted when one dies), each listening on
    a socket of its own on the same port (``SO_REUSEPORT``): the kernel spreads new connections over the workers'
    sockets by their addresses' hash. On one shared socket (uvicorn's way) the first worker to wake took every
    connection waiting, and clients that connect together (a CDN's, a benchmark's) were all served by one
    worker while the other idled: in 6 of 10 whole-service runs at 1M (docs/benchmarks.md). The caller has
    checked that the port can be bound (``listening_socket``) and holds it (``port_claim``). Ends the process with
    ``STARTUP_FAILURE`` where a worker could not bind it."""
    log.info("Uvicorn running on http://%s:%d, a socket per worker (Press CTRL+C to quit)", config.host, config.port)
    # uvicorn's supervisor makes every worker (and each one it starts again) from this module attribute.
    shared, multiprocess.Process = multiprocess.Process, _OwnSocketProcess  # type: ignore[misc]
    try:
        supervisor = multiprocess.Multiprocess(config, sockets=[])
        supervisor.run()
    finally:
        multiprocess.Process = shared  # type: ignore[misc]
    if any(process.exitcode == STARTUP_FAILURE for process in supervisor.processes):
        sys.exit(STARTUP_FAILURE)


def port_claim(port: int) -> socket.socket:
    """A claim on ``port`` for this process's life (an abstract Unix socket, which the kernel drops with the
    process however it ends): a second ``recommender serve`` started before this one's workers listen is refused
    by it, as it would be by their sockets later (``OSError``, what to do said)."""
    claim = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        claim.bind(f"\0recommender-serve-port-{port}")
    except OSError as exc:
        claim.close()
        raise OSError(exc.errno, f"another recommender serve is starting on port {port}: choose another with "
                                 "--port or RECOMMENDER_PORT") from None
    return claim


def listening_socket(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    """A TCP socket bound to ``host``:``port``, not listening yet. With ``reuse_port`` it joins the port's
    ``SO_REUSEPORT`` group (the workers' sockets); without, it cannot be bound while anything listens on the
    port, a server of ours included (whose workers a second server's would otherwise join, splitting its
    traffic): how ``recommender serve`` checks the port before it starts any process."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror} (another program holds the "
                                 "port? choose another with --port or RECOMMENDER_PORT)") from None
    return sock


def _bound_or_exit(host: str, port: int) -> socket.socket:
    """``listening_socket``, or the error logged and the process ended as uvicorn ends it for a port it cannot
    bind (``STARTUP_FAILURE``: a worker's supervisor then stops rather than start it again and again)."""
    try:
        return listening_socket(host, port, reuse_port=True)
    except OSError as exc:
        log.error("%s", exc)
        sys.exit(STARTUP_FAILURE)


class _OwnSocketProcess(multiprocess.Process):
    """uvicorn's worker process, serving on a socket it binds itself (``run_workers``)."""

    def target(self, sockets: list[socket.socket] | None = None) -> None:
        super().target([_bound_or_exit(self.config.host, self.config.port)])
