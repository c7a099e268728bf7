"""The popularity signal (off by default): how much readers clicked each item lately, from the stored events.

Each click weighs 0.5^(age / half-life); an item's score is log(1 + its weighed clicks) over the same of the
most clicked item, so it lies in [0, 1], and a few items with many clicks do not flatten the rest. It enters
the default strategy's score with ``popularity_weight`` (``RECOMMENDER_POPULARITY_WEIGHT`` or a per-request /
variant option): a bounded share of a list's order that readers can move only through clicks the service
stored, rate-limited per client, never an event that edits a list."""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict
from collections.abc import Iterable

from recommender.events import DAY_MS, EventStore
from recommender.store.sql import now_ms

# How often the scores are read again from the events (lists ranked meanwhile use the last scores).
REFRESH_S = 60.0
# Clicks older than this many half-lives weigh under 0.1 % and are not read.
HORIZON_HALF_LIVES = 10


def popularity(clicks: Iterable[tuple[str, int, int]], now: int, half_life_days: float) -> dict[str, float]:
    """Item id -> score in [0, 1] from (item id, time in epoch ms, clicks) rows."""
    weighed: dict[str, float] = defaultdict(float)
    for item, ts, n in clicks:
        weighed[item] += n * 0.5 ** (max(now - ts, 0) / (half_life_days * DAY_MS))
    top = max(weighed.values(), default=0.0)
    return {item: math.log1p(w) / math.log1p(top) for item, w in weighed.items()} if top > 0 else {}


class Popularity:
    """The scores of a store's events, read again every ``REFRESH_S`` seconds when asked for."""

    def __init__(self, events: EventStore, half_life_days: float):
        self.events = events
        self.half_life_days = half_life_days
        self._scores: dict[str, float] = {}
        self._read_at = -math.inf
        self._lock = threading.Lock()

    def scores(self) -> dict[str, float]:
        with self._lock:
            if time.monotonic() - self._read_at >= REFRESH_S:
                now = now_ms()
                since = now - int(HORIZON_HALF_LIVES * self.half_life_days * DAY_MS)
                self._scores = popularity(self.events.item_clicks(since), now, self.half_life_days)
                self._read_at = time.monotonic()
            return self._scores
