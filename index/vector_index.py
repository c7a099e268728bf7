"""A FAISS inner-product index keyed by int64 ids, persisted by atomic replace."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np

KINDS = ("flat", "hnsw")


@dataclass(frozen=True, slots=True)
class IndexMeta:
    """What a saved index holds: enough to tell whether it still matches the store and the model."""

    kind: str
    dim: int
    model: str
    seq: int  # the store's sequence number the saved index reflects
    count: int


def _new_faiss_index(kind: str, dim: int) -> faiss.Index:
    if kind == "flat":
        inner = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        inner = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = 80
        inner.hnsw.efSearch = 128
    else:
        raise ValueError(f"unknown index kind {kind!r}; choose one of {', '.join(KINDS)}")
    return faiss.IndexIDMap2(inner)


def _fsync_replace(tmp: Path, final: Path) -> None:
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    dir_fd = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class VectorIndex:
    """Thread-safe wrapper: searches and writes take one lock, since FAISS indexes are not safe to read while
    they are being modified."""

    def __init__(self, dim: int, kind: str = "flat", model: str = "", _index: faiss.Index | None = None):
        self.dim = dim
        self.kind = kind
        self.model = model
        self._index = _index if _index is not None else _new_faiss_index(kind, dim)
        self._lock = threading.Lock()
        # HNSW graphs cannot drop nodes: removed ids are hidden from results until the next rebuild.
        self._removed: set[int] = set()

    def __len__(self) -> int:
        return self._index.ntotal - len(self._removed)

    def ids(self) -> np.ndarray:
        with self._lock:
            ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)
        if self._removed:
            ids = ids[~np.isin(ids, np.fromiter(self._removed, dtype=np.int64))]
        return ids

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Add or replace the vectors of ``keys``."""
        keys = np.ascontiguousarray(keys, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(keys), self.dim)
        if len(keys) == 0:
            return
        with self._lock:
            self._remove_locked(keys)
            self._index.add_with_ids(vectors, keys)
            self._removed.difference_update(keys.tolist())

    def remove(self, keys: np.ndarray) -> None:
        keys = np.ascontiguousarray(keys, dtype=np.int64)
        if len(keys) == 0:
            return
        with self._lock:
            self._remove_locked(keys)

    def _remove_locked(self, keys: np.ndarray) -> None:
        if self.kind == "flat":
            self._index.remove_ids(faiss.IDSelectorBatch(keys))
        else:
            present = faiss.vector_to_array(self._index.id_map)
            self._removed.update(keys[np.isin(keys, present)].tolist())

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores, keys) per query vector; missing slots have key -1."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        with self._lock:
            extra = len(self._removed)
            scores, keys = self._index.search(vectors, k + extra)
        if extra:
            hidden = np.isin(keys, np.fromiter(self._removed, dtype=np.int64))
            scores = np.where(hidden, -np.inf, scores)
            keys = np.where(hidden, -1, keys)
            order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
            scores, keys = np.take_along_axis(scores, order, 1), np.take_along_axis(keys, order, 1)
        return scores[:, :k], keys[:, :k]

    def save(self, path: Path, seq: int) -> IndexMeta:
        """Write the index and its meta next to ``path`` by write-fsync-rename: a reader never sees half a file.

        The index file is replaced before its meta, so the meta's ``seq`` is never ahead of the vectors it
        describes; a crash between the two only makes the next start re-apply a few already-applied changes."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with self._lock:
            # Hidden (HNSW-removed) ids are written too: the store no longer has them, so the reconciliation
            # at the next load hides them again.
            faiss.write_index(self._index, str(tmp))
            meta = IndexMeta(self.kind, self.dim, self.model, seq, self._index.ntotal - len(self._removed))
        _fsync_replace(tmp, path)
        meta_path = _meta_path(path)
        meta_tmp = meta_path.with_name(meta_path.name + ".tmp")
        meta_tmp.write_text(json.dumps(asdict(meta)))
        _fsync_replace(meta_tmp, meta_path)
        return meta


def _meta_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def load_index(path: Path) -> tuple[VectorIndex, IndexMeta]:
    """Read a saved index; raises ``FileNotFoundError`` or ``ValueError`` (unreadable, inconsistent)."""
    path = Path(path)
    try:
        meta = IndexMeta(**json.loads(_meta_path(path).read_text()))
    except FileNotFoundError:
        raise
    except (ValueError, TypeError) as exc:
        raise ValueError(f"index meta {_meta_path(path)} is unreadable: {exc}") from exc
    try:
        raw = faiss.read_index(str(path))
    except RuntimeError as exc:
        raise ValueError(f"index file {path} is unreadable: {str(exc).splitlines()[0]}") from exc
    if raw.d != meta.dim or not isinstance(raw, faiss.IndexIDMap2):
        raise ValueError(f"index file {path} does not match its meta (dim {raw.d} vs {meta.dim})")
    return VectorIndex(meta.dim, meta.kind, meta.model, _index=raw), meta
