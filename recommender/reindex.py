"""Rebuilding the vector index from the store's vectors, into any kind, without re-embedding anything."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
from tqdm.auto import tqdm

from index import IndexMeta, VectorIndex, every_core, index_kind_for
from recommender.locks import FileLock
from recommender.settings import Settings
from recommender.store import open_store
from recommender.store.articles import ArticleStore, Change

# Vectors per add: the first batch trains the quantised kinds (hnswsq, ivfpq), so it should be a large sample.
REINDEX_CHUNK = 100_000


def vector_batches(changes: Iterable[Change], chunk: int, gone: list[int] | None = None
                   ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The keys and vectors of the published ``changes``, ``chunk`` at a time (an array of each): all of them that
    is held at once; the keys of the others (unpublished, deleted) are appended to ``gone``."""
    keys: list[int] = []
    vectors: list[np.ndarray] = []
    for change in changes:
        if not change.published:
            if gone is not None:
                gone.append(change.key)
            continue
        keys.append(change.key)
        vectors.append(change.live_vector)
        if len(keys) >= chunk:
            yield np.array(keys, dtype=np.int64), np.stack(vectors)
            keys, vectors = [], []
    if keys:
        yield np.array(keys, dtype=np.int64), np.stack(vectors)


def rebuilt_index(store: ArticleStore, kind: str, model: str, progress: bool = False,
                  chunk: int = REINDEX_CHUNK, chosen: bool = False) -> VectorIndex:
    """A new ``kind`` index over every published vector in ``store``, read and added ``chunk`` rows at a time;
    ``chosen``: the kind was chosen, not picked for the corpus size (``IndexMeta.chosen``)."""
    total = len(store.published_keys())
    if total == 0:
        raise ValueError(f"the store at {store.where} holds no published article: ingest articles first")
    index: VectorIndex | None = None
    with tqdm(total=total, unit="article", desc=f"reindex {kind}", disable=not progress) as bar, every_core():
        for keys, vectors in vector_batches(store.changes_since(0), chunk):
            index = index or VectorIndex(vectors.shape[1], kind, model, size_hint=total, chosen=chosen)
            index.add(keys, vectors)
            bar.update(len(keys))
    assert index is not None
    return index


def reindex(settings: Settings, kind: str | None = None, progress: bool = False) -> IndexMeta:
    """Replace the data dir's index by one of ``kind`` (default: ``index_kind_for`` the corpus size), recording
    in its meta whether the kind was chosen (an ingest that grows the corpus keeps a chosen kind).

    The store's sequence number is read before its rows, so a write that lands meanwhile is in the new index
    or re-applied by the next start's repair, never lost."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # Held by a running server's refresher, or an ingest, on SQLite. On PostgreSQL their lock is the database's,
    # shared by every replica, and tells nothing of this data dir (docs/ingest.md: stop them first).
    server = FileLock(settings.data_dir / "refresher.lock")
    if not server.try_exclusive():
        raise ValueError(f"a server or an ingest is running on {settings.data_dir} (it holds the refresher lock): "
                         "let the ingest finish, or stop the server first (its next checkpoint would replace the "
                         "rebuilt index)")
    store = open_store(settings)
    try:
        model = store.meta("model")
        if model is None:
            raise ValueError(f"the store at {store.where} holds no embedded articles: ingest articles first")
        seq = store.seq
        index = rebuilt_index(store, kind or index_kind_for(len(store.published_keys())), model, progress,
                              chosen=kind is not None)
        with FileLock(settings.data_dir / "index.lock").held():  # the lock every other save takes
            return index.save(settings.index_path, seq, store.id)
    finally:
        store.close()
        server.release()
