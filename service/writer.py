"""The writer process of ``recommender serve``: the one process that loads the model and takes every write (and
``POST /similar``), on a Unix socket that only the read workers call (``service.forward``). It runs the whole app
(``create_app`` without a writer socket) but leaves the stored boxes to the refresher process, so a write is
answered exactly as in one process, after its transaction commits, without waiting for the GIL behind box
refreshes.

    python -m service.writer SOCKET PARENT_PID    # started (and restarted after a crash) by recommender.processes"""

from __future__ import annotations

import logging.config
import os
import socket as sockets
import sys
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


def main(argv: list[str]) -> int:
    import uvicorn

    from recommender.logs import log_config
    from recommender.processes import die_with_parent
    from recommender.settings import Settings
    from service.app import create_app
    from service.protocol import server_options

    socket, parent = Path(argv[0]), int(argv[1])
    die_with_parent(parent)
    settings = Settings().model_copy(update={"writer_socket": None})  # this process writes itself
    logs = log_config(settings.log_format, level="WARNING")
    logging.config.dictConfig(logs)
    uvicorn.run(create_app(settings, refresh_boxes=False), uds=str(socket), log_config=logs, access_log=False,
                **server_options(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
