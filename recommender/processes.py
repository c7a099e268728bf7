"""The helper processes of ``recommender serve`` (the writer, the refresher): started beside the read workers,
started again when one dies, stopped with the server, never left running when the server dies (nor are the read
workers: ``die_with_spawner``)."""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger("recommender")
PR_SET_PDEATHSIG = 1
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# How often a supervised process with a health check is checked.
HEALTH_CHECK_EVERY_S = 2.0


class Supervised:
    """Runs ``argv`` (plus this process's pid, for ``die_with_parent``) from a thread that starts it again
    whenever it exits before ``stop()``, or kills it first when ``healthy`` (called every ``HEALTH_CHECK_EVERY_S``
    with the seconds since the process started) says it is hung; ``first`` is waited for before the first
    start."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], first: Callable[[], None] = lambda: None,
                 healthy: Callable[[float], bool] | None = None):
        self.name = name
        self.healthy = healthy
        self.argv = [*argv, str(os.getpid())]
        self.env = env
        self.first = first
        self.proc: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._supervise, name=f"{name}-supervisor", daemon=True)

    def start(self) -> Supervised:
        self._thread.start()
        return self

    def _supervise(self) -> None:
        # Started from this thread, which lives until stop(): the child's death signal follows the thread
        # that forked it.
        self.first()
        while not self._stop.is_set():
            # Its own process group: a terminal's Ctrl-C reaches the server, which stops its children itself.
            # Not its own session: with the kernel's autogroups (sched_autogroup_enabled, on by default in
            # Debian's and Ubuntu's kernels) a session shares the CPU with other sessions as one, whatever the
            # niceness inside it, so the read workers' niceness stops yielding the CPU to this process.
            self.proc = subprocess.Popen(self.argv, env=self.env, process_group=0)
            code = self._watch(self.proc)
            if not self._stop.wait(0.5):
                log.error("the %s process exited with %s: starting it again", self.name, code)

    def _watch(self, proc: subprocess.Popen[bytes]) -> int:
        """``proc``'s exit code; one that fails its health check (``healthy``) is killed (and started again)."""
        started = time.monotonic()
        while True:
            try:
                return proc.wait(HEALTH_CHECK_EVERY_S if self.healthy is not None else None)
            except subprocess.TimeoutExpired:
                if self.healthy is not None and not self._stop.is_set() \
                        and not self.healthy(time.monotonic() - started):
                    log.error("the %s process (pid %d) did not answer its health check: killing it", self.name,
                              proc.pid)
                    proc.kill()

    def stop(self) -> None:
        self._stop.set()
        if self.proc is not None:
            terminate(self.proc)
        self._thread.join(timeout=60)


def terminate(proc: subprocess.Popen[bytes], wait_s: float = 30) -> None:
    """SIGTERM a child and wait for it; SIGKILL it if it has not exited within ``wait_s``."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# Processes an import spreads a job over when not set: one per core up to this many (each holds its own copy of
# what it works with: rows, the model).
PER_CORE_MAX = 4


def per_core(configured: int | None) -> int:
    """``configured`` processes, else one per CPU core, at most ``PER_CORE_MAX``."""
    return configured or min(os.cpu_count() or 1, PER_CORE_MAX)


def die_with_parent(parent: int) -> None:
    """Linux: SIGKILL this process when ``parent`` (the server that started it) dies, even by SIGKILL; a writer
    or refresher never goes on alone."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before the call above
        os._exit(1)


def die_with_spawner() -> None:
    """``die_with_parent`` for a process that ``multiprocessing`` started (uvicorn's read workers): a SIGKILLed
    server leaves no worker holding its port and answering from a store no writer updates. Nothing for a process
    that was not started so (``recommender serve --workers 1`` serves from the server's own process).

    A worker forked by the fork server (``workers_forked``) dies with the fork server instead, which exits when
    the server does: its pipe from the server reads end-of-file once no process holds the pipe's other end."""
    parent = multiprocessing.parent_process()
    if parent is None or parent.pid is None:
        return
    import multiprocessing.forkserver as forkserver

    # A forked worker holds that end too (so that it could ask the fork server for processes of its own, which
    # it never does): kept open, it would keep the fork server, and so the worker itself, alive after the server.
    inherited = forkserver._forkserver._forkserver_alive_fd  # type: ignore[attr-defined]
    # Forked: the fork server is the parent, alive while this process holds that end.
    die_with_parent(os.getppid() if inherited is not None else parent.pid)
    if inherited is not None:
        os.close(inherited)
        forkserver._forkserver._forkserver_alive_fd = None  # type: ignore[attr-defined]


def workers_forked(preload: list[str]) -> None:
    """uvicorn's read workers forked from a fork server that imported ``preload`` once, instead of spawned
    processes that each import them (with two workers, four processes imported the app at once on two cores:
    the imports were most of the start; docs/benchmarks.md). The fork server starts now, with this process's
    environment as it is now (the workers' settings), and imports ``preload`` while this process goes on."""
    import multiprocessing.forkserver as forkserver

    import uvicorn._subprocess

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(preload)
    forkserver.ensure_running()
    # uvicorn takes its start method from this module attribute, and offers no setting for it.
    uvicorn._subprocess.spawn = context  # type: ignore[assignment]


def fork_server_stopped() -> None:
    """Stop the fork server of ``workers_forked``, if one was started, and wait for it: a stopped server leaves
    no process behind (on its own it exits only once it notices the server's end)."""
    import multiprocessing.forkserver as forkserver

    forkserver._forkserver._stop()  # type: ignore[attr-defined]


@contextmanager
def shared_metrics_dir() -> Iterator[str]:
    """A fresh prometheus-client multiprocess directory for the server's processes started inside (an
    operator's own PROMETHEUS_MULTIPROC_DIR is kept: it must be emptied before each start, as prometheus-client
    requires)."""
    given = os.environ.get(MULTIPROC_ENV)
    path = given or tempfile.mkdtemp(prefix="recommender-metrics-")
    os.environ[MULTIPROC_ENV] = path
    try:
        yield path
    finally:
        if not given:
            os.environ.pop(MULTIPROC_ENV, None)
            shutil.rmtree(path, ignore_errors=True)
