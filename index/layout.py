"""What is known of the index without loading FAISS: the kinds' names and which checkpoint is on disk. The command
line and the server's parent process read these before they start the processes that search (each import of
FAISS and numpy is ~0.15 s of a core on the path to ready)."""

from __future__ import annotations

import json
from pathlib import Path

from index.files import file_stamp

KINDS = ("flat", "hnsw", "hnswsq", "ivfpq")
GRAPH_KINDS = ("hnsw", "hnswsq")
# Kinds whose vectors (codes) and graph FAISS maps from the file (IO_FLAG_MMAP_IFC); ivfpq is read.
MAPPABLE_KINDS = ("flat", "hnsw", "hnswsq")


def meta_path(path: Path) -> Path:
    """The index file's meta file (kind, model, dimension, sequence), written after it."""
    return path.with_name(path.name + ".json")


def saved_at(path: Path) -> tuple[int, int] | None:
    """Which checkpoint of the index at ``path`` is there (its meta file's ``file_stamp``), None if none: a cheap
    test of whether a newer one is there to map."""
    return file_stamp(meta_path(Path(path)))


def checkpoint_seq(path: Path) -> int:
    """The store sequence the checkpoint at ``path`` reflects (its meta file's); -1 if there is none to read."""
    try:
        return int(json.loads(meta_path(Path(path)).read_text())["seq"])
    except (OSError, ValueError, KeyError, TypeError):
        return -1


def checkpoint_kind(path: Path) -> tuple[str, str, int] | None:
    """(kind, model, dimension) of the checkpoint at ``path`` (its meta file's); None if there is none to read."""
    try:
        meta = json.loads(meta_path(Path(path)).read_text())
        return str(meta["kind"]), str(meta["model"]), int(meta["dim"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
