"""The FAISS vector index: build, add, remove, search, save atomically, load. Knows nothing of HTTP or articles.

The kinds' names and ``saved_at`` come without FAISS (``index.layout``); the rest is imported on first use, so
that the command line and the server's parent process start without it."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from index.layout import KINDS, MAPPABLE_KINDS, saved_at

if TYPE_CHECKING:
    from index.vector_index import IndexMeta, VectorIndex, every_core, index_kind_for, load_index

_EXPORTS = ("IndexMeta", "VectorIndex", "every_core", "index_kind_for", "load_index")
__all__ = ["KINDS", "MAPPABLE_KINDS", "IndexMeta", "VectorIndex", "every_core", "index_kind_for", "load_index",
           "saved_at"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module("index.vector_index"), name)
    raise AttributeError(f"module 'index' has no attribute {name!r}")
