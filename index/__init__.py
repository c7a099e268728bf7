"""The FAISS vector index: build, add, remove, search, save atomically, load. Knows nothing of HTTP or articles."""

from index.vector_index import KINDS, MAPPABLE_KINDS, IndexMeta, VectorIndex, index_kind_for, load_index, saved_at

__all__ = ["KINDS", "MAPPABLE_KINDS", "IndexMeta", "VectorIndex", "index_kind_for", "load_index", "saved_at"]
