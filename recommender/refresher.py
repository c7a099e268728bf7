"""The refresher: recomputes the stored boxes the write queue names, in one process at a time.

`recommender serve` runs one in a process of its own (``python -m recommender.refresher``, beside the read workers
and the writer); an app serving alone (``create_app`` in-process) runs one in a background thread. Only the one
holding the refresher lock works: an exclusive ``flock`` on ``<data dir>/refresher.lock`` with SQLite, a
session-level advisory lock in the database with PostgreSQL (any number of replicas on any number of machines).
The OS or PostgreSQL releases the lock when its holder dies (even by SIGKILL, or when it loses the database),
and another process takes over; queue entries are removed in the transaction that stores their boxes, so a crash
leaves them queued and the next holder finishes them."""

from __future__ import annotations

import logging.config
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from tqdm.auto import tqdm

from recommender.engine import Recommender
from recommender.following import Following
from recommender.lexical import warm_up
from recommender.locks import refresher_lock
from recommender.processes import per_core
from recommender.purges import PurgeQueue, PurgeSender
from recommender.settings import Settings
from recommender.store.sql import StoreUnavailable

log = logging.getLogger("recommender.refresher")


# An import's queue is shared with helper processes only from this many boxes: each helper's start (its imports
# and open, seconds at 1M articles) must be paid back.
SHARED_MIN = 2000


def import_processes(settings: Settings) -> int:
    """How many processes compute an import's boxes: RECOMMENDER_BOX_PROCESSES, else one per core (at most 4)."""
    return per_core(settings.box_processes)


def refresh_queued(engine: Recommender, progress: bool = False, processes: int = 1) -> int:
    """Recompute every queued box now, in batches (the caller holds the lock); returns how many were stored.

    With ``processes`` > 1 and a queue of at least ``SHARED_MIN``, that many processes share it by key: this one
    and helpers that map the checkpoint it saves first. Boxes are independent and one process ranks on one core;
    a helper that fails leaves its share queued, and this one computes what is left at the end."""
    engine.rows.map_file()  # an import's queue reads most of the rows file: mapped, a read costs no system call
    bar = tqdm(total=engine.store.queue_length(), unit="box", desc="boxes", disable=not progress)
    helpers = _Helpers(engine, processes - 1) if processes > 1 and (bar.total or 0) >= SHARED_MIN else None

    def taken(count: int) -> None:
        bar.update(count + (helpers.taken_since_last() if helpers else 0))

    if helpers is None:
        done = _refresh_share(engine, (0, 1), taken)
    else:
        engine.warm_rows()  # as each helper does: a queue this long reads most rows, read in key order here
        done = _refresh_share(engine, (0, processes), taken)
        done += helpers.joined(taken) + _refresh_share(engine, (0, 1), taken)
    bar.close()
    return done


def _refresh_share(engine: Recommender, share: tuple[int, int], taken: Callable[[int], None]) -> int:
    """Compute the queued boxes of ``share`` (``ArticleStore.queued``) until none is left; returns how many were
    stored, telling ``taken`` how many were taken off the queue after each batch."""
    done = 0
    while keys := engine.store.queued(engine.settings.refresh_batch, share):
        done += engine.boxes.refresh(keys)
        taken(len(keys))
    return done


class _Helpers:
    """Processes computing shares 1..count of the queue beside this one (share 0), each opening the data dir
    afresh from the checkpoint saved here before they start (they map it, and save none)."""

    def __init__(self, engine: Recommender, count: int):
        engine.checkpoint()
        context = multiprocessing.get_context("spawn")  # not forked: this process holds threads and connections
        self.taken, self.stored = context.Value("q", 0), context.Value("q", 0)
        self._reported = 0
        self.processes = [context.Process(target=_helper_main, name=f"boxes-{i}", daemon=True,
                                          args=(engine.settings, (i, count + 1), os.getpid(), self.taken, self.stored))
                          for i in range(1, count + 1)]
        for process in self.processes:
            process.start()

    def taken_since_last(self) -> int:
        """Boxes the helpers took off the queue since the last call."""
        now = self.taken.value
        delta, self._reported = now - self._reported, now
        return int(delta)

    def joined(self, taken: Callable[[int], None]) -> int:
        """Wait for every helper (telling ``taken`` their progress meanwhile); returns the boxes they stored."""
        for process in self.processes:
            while process.is_alive():
                process.join(1.0)
                taken(0)
            if process.exitcode:
                log.warning("box helper %s exited with %s: this process computes what it left queued",
                            process.name, process.exitcode)
        return int(self.stored.value)


def _helper_main(settings: Settings, share: tuple[int, int], parent: int, taken: Any, stored: Any) -> None:
    """A box helper's process: compute ``share`` of the queue, counting into the shared ``taken`` and ``stored``."""
    from recommender.processes import die_with_parent

    die_with_parent(parent)

    def count(n: int) -> None:
        with taken.get_lock():
            taken.value += n

    with Recommender(settings, saves=False) as engine:
        engine.store.relax_commits()  # it writes boxes only: a lost one is still queued
        engine.rows.map_file()  # as refresh_queued does
        engine.warm_rows()  # as the refresher of a server does: a queue this long reads most rows anyway
        done = _refresh_share(engine, share, count)
    with stored.get_lock():
        stored.value += done


class BatchSize:
    """How many queued boxes the refresher's next transaction takes: about ``seconds`` of work at the time per box
    seen so far (a moving average), at least one and at most ``most``."""

    START = 8  # before any box was timed: a few, not a full batch of unknown cost

    def __init__(self, seconds: float, most: int):
        self.seconds, self.most = seconds, most
        self.per_box: float | None = None

    def next(self) -> int:
        if self.per_box is None:
            return min(self.START, self.most)
        return max(1, min(self.most, int(self.seconds / max(self.per_box, 1e-6))))

    def took(self, boxes: int, seconds: float) -> None:
        if boxes:
            now = seconds / boxes
            self.per_box = now if self.per_box is None else 0.7 * self.per_box + 0.3 * now


class Refresher:
    """A daemon thread that brings this process's indexes to the store's latest write every poll, and (unless
    ``boxes`` is false: a read worker, whose writer process refreshes) refreshes queued boxes whenever this
    process holds the refresher lock; with RECOMMENDER_PURGE_URL, a second thread sends the queued CDN purges
    while it does (``recommender.purges``). Of the engine it keeps the collaborators it works with: its path goes
    down from here (boxes, following, store), never back through the engine."""

    def __init__(self, engine: Recommender, boxes: bool = True):
        self.settings = engine.settings
        self.store = engine.store
        self.following = engine.following
        self.box_refresh = engine.boxes
        self.boxes = boxes
        self.lock = refresher_lock(engine.settings)
        self._store_down = False
        self._holding = False  # this process holds the refresher lock: it refreshes, and sends the purges
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="refresher", daemon=True)
        # One process per server reads the data dir through: the one that computes its boxes.
        self._read_through = threading.Thread(target=_read_through, args=(self.following, self._stop),
                                              name="read-through", daemon=True) \
            if boxes and self.settings.read_through else None
        # Purges (RECOMMENDER_PURGE_URL) go from a thread of their own: a slow purge endpoint never holds up a
        # box refresh.
        self._purges = threading.Thread(target=self._send_purges, name="purges", daemon=True) \
            if boxes and engine.settings.purge_url is not None else None

    def start(self) -> Refresher:
        if self._read_through is not None:
            self._read_through.start()
        self._thread.start()
        if self._purges is not None:
            self._purges.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        if self._read_through is not None:
            self._read_through.join()
        if self._purges is not None:
            self._purges.join()
        self.lock.release()

    def _run(self) -> None:
        if self.boxes or self.settings.writer_socket is not None:  # it ranks lists (the writer only previews)
            warm_up()  # this thread's first task: the process is serving already, its first list comes later
        poll = self.settings.refresh_poll_s
        batch = BatchSize(self.settings.refresh_batch_s, self.settings.refresh_batch)
        while not self._stop.is_set():
            if not self._followed() or not self.boxes or not self.lock.try_exclusive():
                self._stop.wait(poll)  # the store is down, or another process refreshes (take over if it dies)
                continue
            self._holding = True
            try:
                keys = self.store.queued(batch.next())
                if keys:
                    started = time.monotonic()
                    self.box_refresh.refresh(keys)
                    batch.took(len(keys), time.monotonic() - started)
                    continue
            except StoreUnavailable as exc:  # the entries stay queued; the next round retries them
                self._store_lost(exc)
            except Exception:
                log.exception("box refresh failed")
            self._stop.wait(poll)

    def _send_purges(self) -> None:
        """Send the queued purges every poll while this process holds the refresher lock (one sender)."""
        sender = PurgeSender(PurgeQueue(self.store), self.settings)
        poll = self.settings.refresh_poll_s
        while not self._stop.wait(poll):
            if not self._holding or self._store_down:
                continue
            try:
                sender.send_due()
            except StoreUnavailable as exc:  # still queued; sent once the store is back
                self._store_lost(exc)
            except Exception:
                log.exception("sending purges failed")
        sender.close()

    def _followed(self) -> bool:
        """Follow the store (every process does, here, off the request path), and map the writer's newer index
        checkpoint when there is one; False while the store is unreachable."""
        try:
            self.following.follow()
            self.following.map_newer_checkpoint()
        except StoreUnavailable as exc:
            self._store_lost(exc)
            return False
        except Exception:
            log.exception("following the store failed")
        if self._store_down:
            log.warning("the database is back: following it again")
            self._store_down = False
        return True

    def _store_lost(self, exc: StoreUnavailable) -> None:
        if not self._store_down:  # once per outage, not every poll
            log.warning("%s: serving what this process holds; writes get 503 until it is back", exc)
        self._store_down = True


def _read_through(following: Following, stop: threading.Event) -> None:
    """``following.read_through`` at the lowest CPU priority: background work, behind every request (Linux's nice
    is a thread's own)."""
    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    following.read_through(stop)


def main(argv: list[str]) -> int:
    """The refresher process of `recommender serve`: ``python -m recommender.refresher PARENT_PID``, with the
    server's settings in the environment; runs until SIGTERM."""
    from recommender.logs import log_config
    from recommender.processes import die_with_parent

    die_with_parent(int(argv[0]))
    settings = Settings()
    logging.config.dictConfig(log_config(settings.log_format))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with Recommender(settings) as engine:
        engine.store.relax_commits()  # it writes boxes only: each lost one is still queued (no fsync per batch)
        engine.warm_rows()
        refresher = Refresher(engine).start()
        stop.wait()
        refresher.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
