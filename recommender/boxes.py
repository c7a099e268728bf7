"""The stored boxes: computing the queued ones (the refresher's work) and serving a default list from its stored
box, with the same bytes as the list ranked now."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from recommender.following import Following
from recommender.listing import DEFAULT_VARIANT, ListJson, box_format, item_json, list_json
from recommender.lists import DEFAULT_QUERY, Lists
from recommender.rank import Recommendation, SimilarQuery
from recommender.store.boxes import BoxState
from recommender.store.sql import StoreUnavailable


class Boxes:
    """Reads the store and what ``following`` keeps; ranks with ``lists``."""

    def __init__(self, following: Following, lists: Lists):
        self.following = following
        self.lists = lists
        self.store = following.store
        self.settings = following.settings

    def state(self, article_id: str, include_unpublished: bool = True) -> BoxState | None:
        """When the article's box was stored and whether a refresh is queued (None: no box stored); not found for
        the public while the article is unpublished."""
        self.lists.get(article_id, include_unpublished)
        return self.store.box_state(article_id)

    def requeue_other_format(self) -> int:
        """Queue the boxes stored by code writing other items (another excerpt length, other ranking values):
        they are never served."""
        return self.store.requeue_boxes_of_other_format(box_format(self.settings.excerpt_chars, self.lists.ranking))

    def refresh(self, keys: Sequence[int]) -> int:
        """Recompute the default boxes of ``keys`` with the ranking of ``similar`` and store them, taking them
        off the queue, in one transaction; returns how many were stored. The FAISS search runs once for all."""
        self.following.follow()
        seq = self.following.applied_seq
        rows = self.store.by_keys(list(keys))
        live = [key for key in keys if key in rows and rows[key][0].is_published]
        k = self.lists.candidate_count(len(self.following.blocked_everywhere))
        found: Any = self.following.index.search(np.stack([rows[key][1] for key in live]), k)[1] if live else []
        query = SimilarQuery(limit=self.settings.box_depth)
        lists = {key: self.lists.rank_list(rows[key][0], rows[key][1], self.lists.overrides.box(rows[key][0].id), query,
                                      neighbours)
                 for key, neighbours in zip(live, found, strict=True)}
        # One read for the batch; an item deleted since it was ranked has no key: its box stays queued.
        item_keys = self.store.keys_of(list({a.id for items in lists.values() for r in items
                                             for a in (r.article, *r.also)}))
        # (box key, its article id, its items, its floor); a gone box: only taken off the queue
        boxes: list[tuple[int, str, list[Any], float | None]] = [(key, "", [], None) for key in keys
                                                                  if key not in live]
        excerpt = self.settings.excerpt_chars
        for key, items in lists.items():
            if all(a.id in item_keys for r in items for a in (r.article, *r.also)):
                boxes.append((key, rows[key][0].id, [(item_keys[r.id], r.id, item_json(r, excerpt),
                                                      [item_keys[a.id] for a in r.also]) for r in items],
                              self._floor(items)))
        self.store.write_boxes(boxes, seq)
        return len(live)

    def _floor(self, items: Sequence[Recommendation]) -> float | None:
        """A stored box's lowest ranked score when the box is full, else None (any article may enter it)."""
        ranked = [r.score for r in items if not r.pinned]
        return min(ranked) if len(ranked) >= self.settings.box_depth else None

    def list_body(self, article_id: str, query: SimilarQuery, variant: str = DEFAULT_VARIANT,
                  include_unpublished: bool = True) -> tuple[ListJson, str]:
        """A list's response body and where it came from: a default query's stored box (``"stored"``) when
        there is a fresh one, else ranked now (``"ranked"``); the same bytes either way. If the database goes
        away while a default list is ranked (PostgreSQL), its stored box as this process last read it. An
        unpublished article has no stored box; its list is not found for the public (as in ``Lists.similar``)."""
        body = self.stored_body(article_id, query, variant)
        if body is not None:
            return body, "stored"
        try:
            items = self.lists.similar(article_id, query, include_unpublished)
            return self.lists.list_json(article_id, items, variant), "ranked"
        except StoreUnavailable:
            body = self.stored_list_json(article_id, query.limit, variant, unranked=True) if _default(query) else None
            if body is None:
                raise
            return body, "stored"

    def stored_body(self, article_id: str, query: SimilarQuery, variant: str = DEFAULT_VARIANT) -> ListJson | None:
        """``list_body``'s stored box without ranking: a default query's fresh stored box, else None (one point
        read: a caller on an event loop may read it there, as it reads the JSON list's)."""
        return self.stored_list_json(article_id, query.limit, variant) if _default(query) else None

    def stored_list_json(self, article_id: str, limit: int, variant: str = DEFAULT_VARIANT,
                         unranked: bool = False) -> ListJson | None:
        """The default list from the article's stored box, or None when there is no fresh one (no box yet,
        a refresh queued, or ``limit`` deeper than stored): then the caller ranks on demand.

        Needs no follow (it never waits on one): every write that can change a box queues it in the write's
        own transaction, so a box that is not queued is current. Items this process knows are gone
        (deleted, unpublished, blocked) are dropped all the same and the list backfilled from the stored depth.
        ``unranked``: nothing can be ranked (the store is unreachable), so the box is served even if a refresh is
        pending, and an item with a folded report this process does not know as published is dropped too,
        rather than the whole box."""
        if limit > self.settings.box_depth:
            return None
        try:
            box = self.store.box(article_id)
        except StoreUnavailable:
            return None  # ranked on demand, which answers 503 while the store is unreachable
        if box is None or (box.pending and not unranked):
            return None
        published, blocked = self.following.published, self.following.blocked_everywhere
        here = self.following.box_blocks.get(article_id, frozenset())
        items: list[str] = []
        ids: list[str] = []
        # Only as far down the box as the list goes: this runs on every page view.
        for key, item_id, item, also in box.items():
            if len(items) == limit:
                break
            if key not in published or item_id in blocked or item_id in here:
                continue
            if also and not published.issuperset(also):
                if not unranked:
                    return None  # a report folded into an item shown is gone: its JSON lists it, so rank afresh
                continue
            items.append(item)
            ids.append(item_id)
            if also:  # the folded reports' ids are in the item's JSON only (the box holds their keys)
                ids.extend(report["id"] for report in json.loads(item)["also"])
        return list_json(article_id, items, variant, ids)


def _default(query: SimilarQuery) -> bool:
    """Whether ``query`` asks for the default list (any length): the one a stored box holds."""
    return query == replace(DEFAULT_QUERY, limit=query.limit)
