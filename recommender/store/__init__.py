"""The store: article metadata and vectors, stored boxes, overrides, the write sequence and the refresh queue;
the source of truth the FAISS index is rebuilt from.

=====================  ======================================================================================
``sql``                connections, write transactions, meta and the write sequence, ``IN`` chunks, refusals
``boxes``              stored boxes, their members, the refresh and purge queues (``BoxTables``)
``articles``           articles, vectors, tombstones and their writes: ``ArticleStore``, the portable store
``sqlite``             the SQLite backend (the default: a file in the data dir) and its schema
``postgres``           the PostgreSQL backend (``RECOMMENDER_DATABASE_URL``), its schema and advisory locks
``side``               the base of the tables beside the articles (overrides, experiments, events, purges)
=====================  ======================================================================================

``open_store`` picks a backend from the settings; everything else is imported from the module that holds it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from recommender.store.articles import ArticleStore
from recommender.store.sqlite import SQLiteStore

if TYPE_CHECKING:
    from recommender.settings import Settings

__all__ = ["open_store"]


def open_store(settings: Settings) -> ArticleStore:
    """The store the settings name: PostgreSQL at ``database_url`` when set, else SQLite in the data dir."""
    if settings.database_url is not None:
        from recommender.store.postgres import PostgresStore  # psycopg is imported only when it is used

        store: ArticleStore = PostgresStore(settings.database_url.get_secret_value(), settings.box_cache)
    else:
        store = SQLiteStore(settings.db_path)
    store.purges = settings.purge_url is not None
    return store
