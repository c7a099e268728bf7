"""Prometheus metrics (``GET /metrics``).

Several worker processes: prometheus-client's multiprocess mode. ``recommender serve --workers N`` gives its
workers one fresh directory (``PROMETHEUS_MULTIPROC_DIR``, kept if already set) where each process writes its
counters and histograms; the worker answering a scrape sums them all. Values read from the store at scrape time
(queue, lag, articles) are the same for every worker and come from the one answering."""

from __future__ import annotations

import os
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector
from starlette.types import Scope

from recommender.engine import Recommender
from recommender.processes import MULTIPROC_ENV
from recommender.purges import PurgeQueue
from recommender.writing import UpsertResult

CONTENT_TYPE = CONTENT_TYPE_LATEST
# From the stored-box path (~0.1 ms) to a cold model load.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUESTS = Counter("recommender_http_requests", "HTTP requests answered, by route template, method and status.",
                   ["route", "method", "status"])
LATENCY = Histogram("recommender_http_request_duration_seconds", "Time from a request's arrival to its response's "
                    "end, by route template.", ["route"], buckets=LATENCY_BUCKETS)
LISTS = Counter("recommender_lists", "Similar lists answered, by where they came from: stored (a stored box, "
                "before routing), cached (the response cache), ranked (on demand), preview (POST /similar).",
                ["source"])
WRITTEN = Counter("recommender_articles_written", "Articles sent to the write API, by outcome: created, updated, "
                  "unchanged (stored exactly as it was, or same text).", ["result"])
EMBEDDED = Counter("recommender_articles_embedded", "Articles embedded by the model (new or changed text).")
DELETED = Counter("recommender_articles_deleted", "Articles taken down (DELETE).")
MODEL_LOAD = Gauge("recommender_model_load_seconds", "How long a process took to load the embedding model (0 "
                   "until its first write or preview loads it).", multiprocess_mode="liveall")


class StoreCollector(Collector):
    """What the store says at scrape time: the refresh queue, how far behind it is, the articles, the purges."""

    def __init__(self, engine: Recommender):
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        store = self.engine.store
        yield GaugeMetricFamily("recommender_refresh_queue_length", "Stored boxes queued for a refresh (not "
                                "served from the store until refreshed).", store.queue_length())
        yield GaugeMetricFamily("recommender_refresh_lag_writes", "Writes since the oldest queued box was first "
                                "queued (0 when the queue is empty): how far the stored boxes are behind.",
                                store.refresh_lag())
        yield GaugeMetricFamily("recommender_articles_stored", "Articles in the store, published or not.",
                                store.count())
        yield GaugeMetricFamily("recommender_articles_indexed", "Articles in the vector index of the process "
                                "answering the scrape (published ones).", len(self.engine.index))
        purges = PurgeQueue(store)
        sent, failed = purges.counts()
        yield GaugeMetricFamily("recommender_purges_pending", "Articles whose purge (RECOMMENDER_PURGE_URL) is "
                                "queued, not yet taken by the purge endpoint.", purges.pending())
        yield CounterMetricFamily("recommender_purges_sent", "Article purges the purge endpoint took (a request "
                                  "holds up to RECOMMENDER_PURGE_BATCH).", sent)
        yield CounterMetricFamily("recommender_purges_failed", "Purge requests that failed (error or no answer); "
                                  "their purges stay queued and are retried with backoff.", failed)


def exposition(engine: Recommender) -> bytes:
    """The text exposition of every metric: this process's, or all workers' in multiprocess mode."""
    if os.environ.get(MULTIPROC_ENV):
        processes = CollectorRegistry()
        MultiProcessCollector(processes)
        counted = generate_latest(processes)
    else:
        counted = generate_latest()
    store = CollectorRegistry(auto_describe=False)
    store.register(StoreCollector(engine))
    return counted + generate_latest(store)


def count_list(scope: Scope, source: str) -> None:
    """Note where a list came from; the request's observer (service.observe) counts it when it ends."""
    scope["recommender.list"] = source


def count_upserts(result: UpsertResult) -> None:
    for name in ("created", "updated", "unchanged"):
        if count := getattr(result, name):
            WRITTEN.labels(name).inc(count)
    if result.embedded:
        EMBEDDED.inc(result.embedded)


def process_ended() -> None:
    """A worker leaving: its live gauges leave the sums (counters stay, as Prometheus expects)."""
    if os.environ.get(MULTIPROC_ENV):
        mark_process_dead(os.getpid())
