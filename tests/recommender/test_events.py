"""The event log: batches committed together off the caller's thread, each caller told once its batch is
durable; old events folded into daily counts without changing any count."""

import threading
import time

import pytest

from recommender.events import DAY_MS, Event, EventLog, EventsBacklogged, EventStore, event_errors
from tests.conftest import another

NOW = int(time.time() * 1000)


def event(kind="impression", variant="e/a", position=1, ts=NOW, item="N2") -> Event:
    return Event(kind, "N1", item, position, "0123456789abcdef", variant, ts)


def test_concurrent_batches_share_commits_and_every_acknowledged_event_is_stored(store):
    events = EventStore(store)
    log = EventLog(events, flush_interval_s=0.05, max_pending=100_000, retention_days=30)
    done = []

    def client(n: int) -> None:
        for _ in range(5):
            done.append(log.submit([event(position=n % 8 + 1)] * 10).result(timeout=60))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert done == [10] * 40
    reader_store = another(store)
    reader = EventStore(reader_store)  # other connections: committed, not only buffered
    assert sum(c.impressions for c in reader.counts(["e/a"])["e/a"].values()) == 400
    log.close()
    reader_store.close()


def test_a_full_log_refuses_at_once_rather_than_growing(store):
    events = EventStore(store)
    log = EventLog(events, flush_interval_s=1.0, max_pending=15, retention_days=30)
    first = log.submit([event()] * 10)
    with pytest.raises(EventsBacklogged, match="waiting"):
        log.submit([event()] * 10)
    assert first.result(timeout=60) == 10
    log.close()
    with pytest.raises(EventsBacklogged, match="shutting down"):
        log.submit([event()])


def test_pruning_folds_old_events_into_daily_counts_and_keeps_every_count(store):
    events = EventStore(store)
    old = NOW - 40 * DAY_MS
    events.append([event(ts=old), event(ts=old), event("click", ts=old), event(ts=NOW), event("click", "e/b")], NOW)
    before = events.counts(["e/a", "e/b"], since=old - DAY_MS)
    assert events.prune(NOW - 30 * DAY_MS) == 3
    assert events.prune(NOW - 30 * DAY_MS) == 0
    assert events.counts(["e/a", "e/b"], since=old - DAY_MS) == before
    assert before["e/a"][1].impressions == 3 and before["e/a"][1].clicks == 1 and before["e/b"][1].clicks == 1
    assert events.counts(["e/a"], since=NOW - DAY_MS)["e/a"][1].impressions == 1  # the old day is left out
    assert sorted(n for _, _, n in events.item_clicks(old - DAY_MS)) == [1, 1]


def test_times_in_the_future_or_past_the_retention_are_refused():
    events = [event(), event(ts=NOW + 3_600_000), event(ts=NOW - 31 * DAY_MS)]
    assert event_errors(events, NOW, retention_days=30) == [(1, "in the future"),
                                                            (2, "older than the retention (30 days)")]


def test_a_burst_smaller_than_a_batch_is_a_configuration_error():
    from pydantic import ValidationError

    from recommender.settings import Settings

    with pytest.raises(ValidationError, match="raise the burst"):
        Settings(events_burst=10, events_max_batch=20)
