"""Purges for a CDN: the surrogate key of an article, the durable queue of purges the writes leave, and the sender
that hands them to the purge endpoint (README "Behind a CDN").

Each list response names, in a surrogate-key header, the key of its own article and of every article it shows.
A write that changes or removes an article (upsert, unpublish, delete, pins and blocks, block everywhere) queues
the article's id in ``purge_queue`` inside its own transaction (``recommender.store.boxes.enqueue_purges``), so an
acknowledged write never loses its purge, even if the process dies before sending it. One process sends them
(the one holding the refresher lock), in batches, and a failed batch is retried with a doubling delay."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from recommender.settings import Settings
from recommender.store.side import SideStore
from recommender.store.sql import now_ms, set_meta

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("recommender.purges")
KEY_PREFIX = "sn-"
RETRY_FIRST_S = 1.0
# With PostgreSQL, another replica may answer the old list until it follows the write (README "Running on several
# machines": within 1 s): a purge sent sooner could let the cache fetch the old list again from it.
REPLICAS_DELAY_S = 1.0


def purge_key(article_id: str) -> str:
    """An article's surrogate key: ``sn-`` and the 64-bit BLAKE2b of its id's UTF-8 bytes in hex (ids may hold
    any character; keys hold only ``[a-z0-9-]``, the same length for every id). In a shell: ``printf %s "$ID" |
    b2sum -l 64``."""
    return KEY_PREFIX + hashlib.blake2b(article_id.encode(), digest_size=8).hexdigest()


def list_ids(box: dict[str, Any]) -> set[str]:
    """The ids a list names (its JSON, parsed): its article's and every item's, folded reports too."""
    ids = {box["article_id"]} if box.get("article_id") is not None else set()
    for item in box["items"]:
        ids.add(item["id"])
        ids.update(also["id"] for also in item.get("also", ()))
    return ids


class PurgeQueue(SideStore):
    """The ``purge_queue`` table, in the article store's database; counts of purges sent and failed in ``meta``
    (kept across restarts and summed over processes, as Prometheus counters)."""

    def due(self, limit: int, now: int) -> list[tuple[str, int, int]]:
        """Up to ``limit`` queued purges whose time has come, as (article id, seq, attempts), the earliest first."""
        rows = self._store.read("SELECT article_id, seq, attempts FROM purge_queue WHERE due <= ? "
                                "ORDER BY due, article_id LIMIT ?", (now, limit))
        return [(r[0], r[1], r[2]) for r in rows]

    def pending(self) -> int:
        return int(self._store.read("SELECT count(*) FROM purge_queue")[0][0])

    def counts(self) -> tuple[int, int]:
        """Purges sent and purge requests failed, ever."""
        return int(self._store.meta("purges_sent") or 0), int(self._store.meta("purges_failed") or 0)

    def sent(self, rows: Sequence[tuple[str, int, int]]) -> None:
        """Take sent purges off the queue, unless a later write queued the article again (that one is sent too)."""
        with self._store.write_lock, self._store.transaction() as conn:
            conn.executemany("DELETE FROM purge_queue WHERE article_id = ? AND seq = ?", [r[:2] for r in rows])
            self._count(conn, "purges_sent", len(rows))

    def failed(self, rows: Sequence[tuple[str, int, int]], now: int, retry_max_s: float) -> None:
        """Put failed purges back for later: 1 s after the first failure, doubling, at most ``retry_max_s``."""
        with self._store.write_lock, self._store.transaction() as conn:
            conn.executemany(
                "UPDATE purge_queue SET attempts = ?, due = ? WHERE article_id = ? AND seq = ?",
                [(attempts + 1, now + int(1000 * min(retry_max_s, RETRY_FIRST_S * 2 ** attempts)), article_id, seq)
                 for article_id, seq, attempts in rows])
            self._count(conn, "purges_failed", 1)

    @staticmethod
    def _count(conn: Any, name: str, n: int) -> None:
        row = conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        set_meta(conn, name, str(int(row[0] if row else 0) + n))


class PurgeSender:
    """Sends the queue's due purges to ``settings.purge_url``: ``purge_batch`` keys a request, by
    ``purge_method``, with the keys in ``purge_keys_header`` (space-separated) or in a JSON body."""

    def __init__(self, queue: PurgeQueue, settings: Settings, client: httpx.Client | None = None):
        # Imported here, not with the module: only the process that sends purges needs httpx (0.2 s of every
        # read worker's start otherwise).
        import httpx

        assert settings.purge_url is not None
        self.queue = queue
        self.settings = settings
        self.url = settings.purge_url
        self.client = client or httpx.Client(timeout=settings.purge_timeout_s)
        self.headers = {name: value.get_secret_value() for name, value in settings.purge_headers.items()}
        delay = settings.purge_delay_s if settings.purge_delay_s is not None else \
            REPLICAS_DELAY_S if settings.database_url is not None else 0.0
        self.delay_ms = int(delay * 1000)

    def send_due(self, now: int | None = None) -> int:
        """Send every purge due by ``now`` (epoch ms; default now) less the delay, one request a batch; returns
        how many were sent. A batch that fails stays queued for its retry; the rest go on."""
        done = 0
        now = now_ms() if now is None else now
        while rows := self.queue.due(self.settings.purge_batch, now - self.delay_ms):
            if self._send(sorted({purge_key(article_id) for article_id, _, _ in rows})):
                self.queue.sent(rows)
                done += len(rows)
            else:
                self.queue.failed(rows, now, self.settings.purge_retry_max_s)
        return done

    def _send(self, keys: Iterable[str]) -> bool:
        import httpx

        keys = list(keys)
        s = self.settings
        try:
            if s.purge_keys_in == "json":
                response = self.client.request(s.purge_method, self.url, headers=self.headers,
                                               json={s.purge_json_field: keys})
            else:
                response = self.client.request(s.purge_method, self.url,
                                               headers={**self.headers, s.purge_keys_header: " ".join(keys)})
        except httpx.HTTPError as exc:
            log.warning("purge of %d keys at %s failed: %s; retried later", len(keys), self.url, exc)
            return False
        if not response.is_success:
            log.warning("purge of %d keys at %s answered %d: %s; retried later", len(keys), self.url,
                        response.status_code, response.text[:200])
        return response.is_success

    def close(self) -> None:
        self.client.close()

