"""The writer process of ``recommender serve``: the one process that loads the model, takes every write (and
``POST /similar``), refreshes the stored boxes and checkpoints the index, on a Unix socket that only the read
workers call (``service.forward``). It is today's whole app (``create_app`` without a writer socket), so a write
is answered exactly as in one process: after its transaction commits.

    python -m service.writer SOCKET PARENT_PID    # started (and restarted after a crash) by WriterProcess"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

log = logging.getLogger("recommender.service")
PR_SET_PDEATHSIG = 1
# AF_UNIX paths are cut at 108 bytes.
MAX_SOCKET_PATH = 100
# Only the read workers connect, and their client drops idle connections after 5 s: the writer never closes
# one first, so a relayed write never meets a connection closing under it.
WRITER_KEEP_ALIVE_S = 3600


def socket_path(data_dir: Path) -> Path:
    """Where this server's writer listens: in the data dir, one socket per server (two servers may share one
    data dir: each has its writer, and their refreshers take turns on the refresher lock)."""
    path = data_dir.resolve() / f"writer-{os.getpid()}.sock"
    if len(str(path)) > MAX_SOCKET_PATH:
        path = Path(tempfile.gettempdir()) / f"recommender-writer-{os.getpid()}.sock"
    return path


class WriterProcess:
    """Runs ``python -m service.writer`` from a thread that starts it again whenever it dies before ``stop()``:
    a crash loses no write (acknowledged ones are committed) and no refresh (queued boxes stay queued)."""

    def __init__(self, socket: Path, env: dict[str, str]):
        self.socket = socket
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._supervise, name="writer-supervisor", daemon=True)

    def start(self) -> WriterProcess:
        self._thread.start()
        self._started.wait()
        return self

    def _supervise(self) -> None:
        # The process is started from this thread, which lives until stop(): the child's death signal
        # (PR_SET_PDEATHSIG) follows the thread that forked it.
        while not self._stop.is_set():
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "service.writer", str(self.socket), str(os.getpid())], env=self.env,
                start_new_session=True)  # a terminal's Ctrl-C reaches the server, which stops the writer itself
            self._started.set()
            code = self.proc.wait()
            if not self._stop.wait(0.5):
                log.error("the writer process exited with %s: starting it again", code)

    def stop(self) -> None:
        self._stop.set()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._thread.join()
        self.socket.unlink(missing_ok=True)


def _die_with(parent: int) -> None:
    """Linux: SIGKILL this process when the server that started it dies (even by SIGKILL); never an orphan
    writing on its own."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before the call above
        os._exit(1)


def main(argv: list[str]) -> int:
    import uvicorn

    from recommender.settings import Settings
    from service.app import create_app
    from service.protocol import server_options

    socket, parent = Path(argv[0]), int(argv[1])
    _die_with(parent)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s writer %(name)s: %(message)s")
    settings = Settings().model_copy(update={"writer_socket": None})  # this process does everything itself
    options = {**server_options(settings), "timeout_keep_alive": WRITER_KEEP_ALIVE_S}
    uvicorn.run(create_app(settings), uds=str(socket), log_level="warning", access_log=False, **options)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
