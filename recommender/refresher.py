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
import signal
import sys
import threading

from tqdm.auto import tqdm

from recommender.engine import Recommender
from recommender.lexical import warm_up
from recommender.locks import refresher_lock
from recommender.purges import PurgeQueue, PurgeSender
from recommender.store.sql import StoreUnavailable

log = logging.getLogger("recommender.refresher")


def refresh_queued(engine: Recommender, progress: bool = False) -> int:
    """Recompute every queued box now, in batches (the caller holds the lock); returns how many were stored."""
    boxes = engine.boxes
    batch = boxes.settings.refresh_batch
    bar = tqdm(total=boxes.store.queue_length(), unit="box", desc="boxes", disable=not progress)
    done = 0
    while keys := boxes.store.queued(batch):
        done += boxes.refresh(keys)
        bar.update(len(keys))
    bar.close()
    return done


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
        # Purges (RECOMMENDER_PURGE_URL) go from a thread of their own: a slow purge endpoint never holds up a
        # box refresh.
        self._purges = threading.Thread(target=self._send_purges, name="purges", daemon=True) \
            if boxes and engine.settings.purge_url is not None else None

    def start(self) -> Refresher:
        self._thread.start()
        if self._purges is not None:
            self._purges.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        if self._purges is not None:
            self._purges.join()
        self.lock.release()

    def _run(self) -> None:
        if self.boxes or self.settings.writer_socket is not None:  # it ranks lists (the writer only previews)
            warm_up()  # this thread's first task: the process is serving already, its first list comes later
        poll = self.settings.refresh_poll_s
        while not self._stop.is_set():
            if not self._followed() or not self.boxes or not self.lock.try_exclusive():
                self._stop.wait(poll)  # the store is down, or another process refreshes (take over if it dies)
                continue
            self._holding = True
            try:
                keys = self.store.queued(self.settings.refresh_batch)
                if keys:
                    self.box_refresh.refresh(keys)
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


def main(argv: list[str]) -> int:
    """The refresher process of `recommender serve`: ``python -m recommender.refresher PARENT_PID``, with the
    server's settings in the environment; runs until SIGTERM."""
    from recommender.logs import log_config
    from recommender.processes import die_with_parent
    from recommender.settings import Settings

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
