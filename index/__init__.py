"""The FAISS vector index: build, add, remove, search, save atomically, load. Knows nothing of HTTP or articles."""

from index.vector_index import IndexMeta, VectorIndex, load_index

__all__ = ["IndexMeta", "VectorIndex", "load_index"]
