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

``open_store`` picks a backend from the settings. The names below are those code imported from the single module
``recommender.store`` before it was a package; new code imports them from the module that holds them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from recommender.store.articles import ArticleStore, Change, StoredArticle
from recommender.store.boxes import StoredBox, box_items, box_text, enqueue_boxes, enqueue_holders, enqueue_purges
from recommender.store.side import SideStore
from recommender.store.sql import (
    Connection,
    StoreUnavailable,
    Transaction,
    in_chunks,
    next_seq,
    now_ms,
    set_meta,
    storage_refusal,
)
from recommender.store.sqlite import SCHEMA, SQLiteStore, connect

if TYPE_CHECKING:
    from recommender.settings import Settings

__all__ = ["SCHEMA", "ArticleStore", "Change", "Connection", "SQLiteStore", "SideStore", "StoreUnavailable",
           "StoredArticle", "StoredBox", "Transaction", "box_items", "box_text", "connect", "enqueue_boxes",
           "enqueue_holders", "enqueue_purges", "in_chunks", "next_seq", "now_ms", "open_store", "set_meta",
           "storage_refusal"]


def open_store(settings: Settings) -> ArticleStore:
    """The store the settings name: PostgreSQL at ``database_url`` when set, else SQLite in the data dir."""
    if settings.database_url is not None:
        from recommender.store.postgres import PostgresStore  # psycopg is imported only when it is used

        store: ArticleStore = PostgresStore(settings.database_url.get_secret_value(), settings.box_cache)
    else:
        store = SQLiteStore(settings.db_path)
    store.purges = settings.purge_url is not None
    return store
