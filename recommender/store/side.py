"""The base of the tables kept beside the articles (``recommender.overrides``, ``recommender.experiments``,
``recommender.events``, ``recommender.purges``): they live in the store's database, so they move to PostgreSQL with
it."""

from __future__ import annotations

from recommender.store.sql import SQLStore


class SideStore:
    """Tables kept beside the articles (overrides, experiments, events), in the article store's database: its
    reader connections (``store.read``) and its write transactions (``with store.write_lock,
    store.transaction()``), so they move to PostgreSQL with it."""

    def __init__(self, store: SQLStore):
        self._store = store
