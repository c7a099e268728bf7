"""How the read workers and the CLI reach the writer process (``service.writer``): where its socket is, and
whether it answers there. Apart from the process itself, which runs the whole app (``service.app``), so that the
routes that ask after the writer do not import the app they are part of."""

from __future__ import annotations

import os
import socket as sockets
import tempfile
from pathlib import Path
from typing import Literal

# AF_UNIX paths are cut at 108 bytes.
MAX_SOCKET_PATH = 100
# A read worker's /readyz: how long it waits for the writer's health check, and its status while the writer
# does not answer (reads are still served).
READY_PROBE_S = 2.0
WRITES_UNAVAILABLE = "writes unavailable"


def socket_path(data_dir: Path) -> Path:
    """Where this server's writer listens: in the data dir, one socket per server (two servers may share one
    data dir: each has its writer, and the refresher lock lets one refresher work at a time)."""
    path = data_dir.resolve() / f"writer-{os.getpid()}.sock"
    if len(str(path)) > MAX_SOCKET_PATH:
        path = Path(tempfile.gettempdir()) / f"recommender-writer-{os.getpid()}.sock"
    return path


def writer_state(socket: Path, timeout_s: float) -> Literal["answers", "absent", "hung"]:
    """Whether the writer on ``socket`` answers ``GET /healthz`` within ``timeout_s``: "absent" when nothing
    listens there (starting, restarting), "hung" when it takes the connection but does not answer (stopped,
    deadlocked: a stopped process's socket still accepts)."""
    with sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM) as conn:
        conn.settimeout(timeout_s)
        try:
            conn.connect(str(socket))
        except (FileNotFoundError, ConnectionRefusedError):
            return "absent"
        except TimeoutError:
            return "hung"
        try:
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: writer\r\nConnection: close\r\n\r\n")
            return "answers" if conn.recv(12).startswith(b"HTTP/1.1 200") else "hung"
        except TimeoutError:
            return "hung"
        except OSError:  # reset: it died since it accepted
            return "absent"
