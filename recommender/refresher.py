"""The refresher: recomputes the stored boxes the write queue names, in one process at a time.

`recommender serve` runs one in a process of its own (``python -m recommender.refresher``, beside the read workers
and the writer); an app serving alone (``create_app`` in-process) runs one in a background thread. Only the one
holding an exclusive lock on
``<data dir>/refresher.lock`` works. The OS releases the lock when its holder dies (even by SIGKILL), and
another process takes over; queue entries are removed in the transaction that stores their boxes, so a crash
leaves them queued and the next holder finishes them."""

from __future__ import annotations

import logging.config
import signal
import sys
import threading

from tqdm.auto import tqdm

from recommender.engine import Recommender
from recommender.locks import FileLock

log = logging.getLogger("recommender.refresher")


def refresh_queued(engine: Recommender, progress: bool = False) -> int:
    """Recompute every queued box now, in batches (the caller holds the lock); returns how many were stored."""
    batch = engine.settings.refresh_batch
    bar = tqdm(total=engine.store.queue_length(), unit="box", desc="boxes", disable=not progress)
    done = 0
    while keys := engine.store.queued(batch):
        done += engine.refresh_boxes(keys)
        bar.update(len(keys))
    bar.close()
    return done


class Refresher:
    """A daemon thread that brings this process's indexes to the store's latest write every poll, and (unless
    ``boxes`` is false: a read worker, whose writer process refreshes) refreshes queued boxes whenever this
    process holds the refresher lock."""

    def __init__(self, engine: Recommender, boxes: bool = True):
        self.engine = engine
        self.boxes = boxes
        self.lock = FileLock(engine.settings.data_dir / "refresher.lock")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="refresher", daemon=True)

    def start(self) -> Refresher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.lock.release()

    def _run(self) -> None:
        poll = self.engine.settings.refresh_poll_s
        while not self._stop.is_set():
            try:  # every process follows the store here, off the request path
                self.engine.follow()
            except Exception:
                log.exception("following the store failed")
            if not self.boxes or not self.lock.try_exclusive():
                self._stop.wait(poll)  # another process refreshes; take over if it dies
                continue
            try:
                keys = self.engine.store.queued(self.engine.settings.refresh_batch)
                if keys:
                    self.engine.refresh_boxes(keys)
                    continue
            except Exception:  # the entries stay queued; the next round retries them
                log.exception("box refresh failed")
            self._stop.wait(poll)


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
        engine.warm_rows()
        refresher = Refresher(engine).start()
        stop.wait()
        refresher.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
