"""Events: what readers saw (impressions) and clicked, stored in batches by one thread per process.

A caller hands a batch to ``EventLog.submit`` and gets a future that completes when the batch is committed
(``synchronous=FULL``): every batch that arrived within ``flush_interval_s`` shares one transaction and one
fsync, so the cost of durability does not grow with the number of requests, and no request thread ever waits
on SQLite's write lock. Events are only ever appended here: nothing in this module changes a list."""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from recommender.store.side import SideStore
from recommender.store.sql import now_ms

log = logging.getLogger("recommender.events")

EventKind = Literal["impression", "click"]
DAY_MS = 86_400_000
# How often the writer folds events older than the retention into daily counts.
PRUNE_EVERY_S = 3600.0


@dataclass(frozen=True, slots=True)
class Event:
    kind: EventKind
    article_id: str  # the page the box was on
    item_id: str
    position: int  # 1-based
    list_id: str
    variant: str
    ts: int  # epoch ms


@dataclass(frozen=True, slots=True)
class Counts:
    """Impressions and clicks of one variant at one position."""

    impressions: int = 0
    clicks: int = 0


class EventsBacklogged(RuntimeError):
    """More events are waiting to be written than the log holds: the caller should retry later."""


def event_errors(events: Sequence[Event], now: int, retention_days: float,
                 future_ms: int = 600_000) -> list[tuple[int, str]]:
    """(index, why) of the events that cannot be taken: a time in the future (beyond a clock's skew of
    ``future_ms``) or older than the retention (it would be pruned at once)."""
    oldest = now - int(retention_days * DAY_MS)
    return [(i, "in the future" if e.ts > now + future_ms else f"older than the retention ({retention_days:g} days)")
            for i, e in enumerate(events) if e.ts > now + future_ms or e.ts < oldest]


def _day(ts: int) -> str:
    return datetime.fromtimestamp(ts / 1000, UTC).strftime("%Y-%m-%d")


class EventStore(SideStore):
    """The events tables: append, fold old events into daily counts, and count them for reports and signals."""

    def append(self, events: Sequence[Event], received: int) -> None:
        """One transaction for all of ``events``."""
        with self._store.write_lock, self._store.transaction() as conn:
            conn.executemany(
                "INSERT INTO events (ts, received, kind, article_id, item_id, position, list_id, variant) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(e.ts, received, e.kind, e.article_id, e.item_id, e.position, e.list_id, e.variant)
                 for e in events])

    def prune(self, before: int) -> int:
        """Fold events older than ``before`` (epoch ms) into daily counts and delete them, in one transaction
        (two processes pruning at once: the second finds nothing); returns how many were folded."""
        with self._store.write_lock, self._store.transaction() as conn:
            # Grouped by UTC day number in SQL (integer division, the same in SQLite and PostgreSQL), named here.
            rows = conn.execute(
                f"""SELECT ts / {DAY_MS}, variant, article_id, item_id, position,
                           SUM(CASE WHEN kind = 'impression' THEN 1 ELSE 0 END),
                           SUM(CASE WHEN kind = 'click' THEN 1 ELSE 0 END)
                    FROM events WHERE ts < ? GROUP BY ts / {DAY_MS}, variant, article_id, item_id, position""",
                (before,)).fetchall()
            conn.executemany(
                """INSERT INTO events_daily (day, variant, article_id, item_id, position, impressions, clicks)
                   VALUES (?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (day, variant, article_id, item_id, position) DO UPDATE SET
                     impressions = events_daily.impressions + excluded.impressions,
                     clicks = events_daily.clicks + excluded.clicks""",
                [(_day(int(day) * DAY_MS), variant, article_id, item_id, position, int(shown), int(clicked))
                 for day, variant, article_id, item_id, position, shown, clicked in rows])
            return int(conn.execute("DELETE FROM events WHERE ts < ?", (before,)).rowcount)

    def counts(self, variants: Sequence[str], since: int | None = None) -> dict[str, dict[int, Counts]]:
        """Impressions and clicks by variant and position since ``since`` (epoch ms; None = all), the raw
        events and the daily counts of pruned ones (whole days from ``since``'s day)."""
        out: dict[str, dict[int, Counts]] = {v: defaultdict(Counts) for v in variants}
        if not variants:
            return out
        marks = ",".join("?" * len(variants))
        raw = f"""SELECT variant, position, SUM(CASE WHEN kind = 'impression' THEN 1 ELSE 0 END),
                         SUM(CASE WHEN kind = 'click' THEN 1 ELSE 0 END)
                  FROM events WHERE variant IN ({marks}) AND ts >= ? GROUP BY variant, position"""
        daily = f"""SELECT variant, position, SUM(impressions), SUM(clicks) FROM events_daily
                    WHERE variant IN ({marks}) AND day >= ? GROUP BY variant, position"""
        rows = [*self._store.read(raw, [*variants, since or 0]), *self._store.read(daily, [*variants, _day(since or 0)])]
        for variant, position, impressions, clicks in rows:  # PostgreSQL's SUM is a numeric: made ints here
            before = out[variant][position]
            out[variant][position] = Counts(before.impressions + int(impressions), before.clicks + int(clicks))
        return {v: dict(sorted(by_position.items())) for v, by_position in out.items()}

    def item_clicks(self, since: int) -> list[tuple[str, int, int]]:
        """(item id, time in epoch ms, clicks) since ``since``, what the popularity signal decays: raw clicks
        counted per hour (at its middle), pruned ones per day (at noon)."""
        raw = self._store.read("SELECT item_id, ts / 3600000, COUNT(*) FROM events WHERE kind = 'click' AND "
                               "ts >= ? GROUP BY item_id, ts / 3600000", (since,))
        daily = self._store.read("SELECT item_id, day, SUM(clicks) FROM events_daily WHERE day >= ? AND "
                                 "clicks > 0 GROUP BY item_id, day", (_day(since),))
        noon = [(item, int(datetime.fromisoformat(f"{day}T12:00:00+00:00").timestamp() * 1000), int(n))
                for item, day, n in daily]
        return [(item, int(hour) * 3_600_000 + 1_800_000, int(n)) for item, hour, n in raw] + noon


@dataclass
class _Pending:
    events: Sequence[Event]
    done: Future[int]


class EventLog:
    """Batches of events committed together by one background thread (started on first use)."""

    def __init__(self, store: EventStore, flush_interval_s: float, max_pending: int, retention_days: float):
        self.store = store
        self.flush_interval_s = flush_interval_s
        self.max_pending = max_pending
        self.retention_days = retention_days
        self._pending: list[_Pending] = []
        self._count = 0  # events in _pending
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._pruned_at = 0.0

    def submit(self, events: Sequence[Event]) -> Future[int]:
        """Queue a batch; the future gives how many were stored once they are committed (or the error)."""
        done: Future[int] = Future()
        with self._cond:
            if self._stopping:
                raise EventsBacklogged("the event log is shutting down")
            if self._count + len(events) > self.max_pending:
                raise EventsBacklogged(f"{self._count} events are waiting to be written")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="events", daemon=True)
                self._thread.start()
            self._pending.append(_Pending(events, done))
            self._count += len(events)
            self._cond.notify()
        return done

    def close(self) -> None:
        """Write what is queued, then stop."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                if not self._pending and self._stopping:
                    return
            time.sleep(0 if self._stopping else self.flush_interval_s)  # let more batches join this commit
            with self._cond:
                batch, self._pending, self._count = self._pending, [], 0
            self._write(self.store, batch)
            self._prune_now_and_then(self.store)

    @staticmethod
    def _write(store: EventStore, batch: list[_Pending]) -> None:
        try:
            store.append([e for p in batch for e in p.events], received=now_ms())
        except Exception as exc:  # nothing of the batch is stored: every caller hears it, none hears success
            log.exception("storing %d event batches failed", len(batch))
            for p in batch:
                p.done.set_exception(exc)
            return
        for p in batch:
            p.done.set_result(len(p.events))

    def _prune_now_and_then(self, store: EventStore) -> None:
        if time.monotonic() - self._pruned_at < PRUNE_EVERY_S:
            return
        self._pruned_at = time.monotonic()
        try:
            folded = store.prune(now_ms() - int(self.retention_days * DAY_MS))
            if folded:
                log.info("folded %d events older than %g days into daily counts", folded, self.retention_days)
        except Exception:
            log.exception("pruning events failed (tried again in an hour)")
