"""Lexical relevance with scikit-learn: TF-IDF cosine (the WordPress related-posts way) and a BM25
"More Like This" query (the Elasticsearch way), kept in step with the store."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.preprocessing import normalize

# Elasticsearch "More Like This" defaults: the 25 most telling terms of the source, scored by BM25.
MLT_MAX_QUERY_TERMS = 25
BM25_K1, BM25_B = 1.2, 0.75


class LexicalIndex:
    """Term counts of every indexed text; TF-IDF and BM25 weights are derived lazily after changes.

    The vocabulary is fitted on the corpus at build time; texts added later are counted with it (new words
    are ignored until the next rebuild, the same trade-off an inverted index with fixed analyzers makes)."""

    def __init__(self) -> None:
        self._vectorizer = CountVectorizer(stop_words="english", lowercase=True, strip_accents="unicode",
                                           token_pattern=r"(?u)\b\w\w+\b", dtype=np.float32)
        self._counts = sp.csr_matrix((0, 0), dtype=np.float32)
        self._keys = np.zeros(0, dtype=np.int64)  # row -> key; -1 = removed
        self._row_of: dict[int, int] = {}
        self._lock = threading.Lock()
        self._derived: tuple[np.ndarray, sp.csr_matrix, sp.csr_matrix] | None = None

    def __len__(self) -> int:
        return len(self._row_of)

    def build(self, keys: Sequence[int], texts: Sequence[str]) -> None:
        counts = self._vectorizer.fit_transform(list(texts) or [""]) if texts else None
        with self._lock:
            self._counts = sp.csr_matrix(counts, dtype=np.float32) if texts else sp.csr_matrix(
                (0, max(1, len(getattr(self._vectorizer, "vocabulary_", {})))), dtype=np.float32)
            self._keys = np.asarray(keys, dtype=np.int64)
            self._row_of = {int(k): i for i, k in enumerate(self._keys)}
            self._derived = None

    @property
    def fitted(self) -> bool:
        return hasattr(self._vectorizer, "vocabulary_")

    def _count(self, texts: Sequence[str]) -> sp.csr_matrix:
        return sp.csr_matrix(self._vectorizer.transform(list(texts)), dtype=np.float32)

    def add(self, keys: Sequence[int], texts: Sequence[str]) -> None:
        """Add or replace texts; before the first build the whole set becomes the corpus."""
        if not len(keys):
            return
        if not self.fitted:
            self.build(keys, texts)
            return
        counts = self._count(texts)
        with self._lock:
            self._remove_locked(keys)
            start = self._counts.shape[0]
            self._counts = sp.vstack([self._counts, counts], format="csr")
            self._keys = np.concatenate([self._keys, np.asarray(keys, dtype=np.int64)])
            for i, k in enumerate(keys):
                self._row_of[int(k)] = start + i
            self._derived = None

    def remove(self, keys: Sequence[int]) -> None:
        with self._lock:
            self._remove_locked(keys)
            self._derived = None

    def _remove_locked(self, keys: Sequence[int]) -> None:
        for k in keys:
            row = self._row_of.pop(int(k), None)
            if row is not None:
                self._keys[row] = -1

    def _weights(self) -> tuple[np.ndarray, sp.csr_matrix, sp.csr_matrix]:
        """(idf, L2-normalised TF-IDF rows, BM25 term weights) over the live rows, recomputed after changes."""
        with self._lock:
            if self._derived is not None:
                return self._derived
            live = (self._keys >= 0).astype(np.float32)
            counts = sp.diags(live) @ self._counts if len(live) else self._counts
            n = max(1.0, float(live.sum()))
            df = np.bincount(counts.indices, minlength=counts.shape[1]).astype(np.float32)
            idf = np.log1p((n - df + 0.5) / (df + 0.5)).astype(np.float32)  # Lucene's BM25 idf, always > 0
            tfidf = normalize(counts.multiply(idf).tocsr().astype(np.float32))
            lengths = np.asarray(counts.sum(axis=1)).ravel()
            avg = float(lengths[live > 0].mean()) if live.any() else 1.0
            bm25 = counts.tocoo()
            norm = BM25_K1 * (1 - BM25_B + BM25_B * lengths[bm25.row] / max(avg, 1e-9))
            data = idf[bm25.col] * bm25.data * (BM25_K1 + 1) / (bm25.data + norm)
            bm25 = sp.csr_matrix((data.astype(np.float32), (bm25.row, bm25.col)), shape=counts.shape)
            self._derived = (idf, tfidf, bm25)
            return self._derived

    def query(self, text: str, method: str) -> sp.csr_matrix:
        """The query vector for ``text``: its TF-IDF row, or the MLT term selection scored by BM25."""
        idf, _, _ = self._weights()
        counts = self._count([text])
        weighted = counts.multiply(idf).tocsr()
        if method == "tfidf":
            return normalize(weighted)
        if method != "bm25":
            raise ValueError(f"unknown lexical method {method!r}")
        if weighted.nnz > MLT_MAX_QUERY_TERMS:
            top = np.argsort(-weighted.data)[:MLT_MAX_QUERY_TERMS]
            weighted = sp.csr_matrix((np.ones(len(top), np.float32), (np.zeros(len(top), int),
                                      weighted.indices[top])), shape=weighted.shape)
        else:
            weighted = sp.csr_matrix((np.ones(weighted.nnz, np.float32), weighted.indices, weighted.indptr),
                                     shape=weighted.shape)
        return weighted

    def _scores(self, query: sp.csr_matrix, method: str) -> np.ndarray:
        _, tfidf, bm25 = self._weights()
        matrix = tfidf if method == "tfidf" else bm25
        return np.asarray((matrix @ query.T).todense()).ravel()

    def search(self, text: str, k: int, method: str) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores, keys) for a text; BM25 scores are divided by the text's score against itself,
        so both methods give 0..~1."""
        if not self.fitted or not len(self._row_of):
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        query = self.query(text, method)
        scores = self._scores(query, method) / self._self_score(text, query, method)
        scores[self._keys < 0] = -1
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        keep = scores[top] > 0
        return scores[top][keep].astype(np.float32), self._keys[top][keep]

    def scores_for(self, text: str, keys: Sequence[int], method: str) -> np.ndarray:
        """Normalised scores of ``text`` against particular indexed keys (0 for keys not indexed)."""
        out = np.zeros(len(keys), dtype=np.float32)
        if not self.fitted or not len(keys):
            return out
        query = self.query(text, method)
        _, tfidf, bm25 = self._weights()
        matrix = tfidf if method == "tfidf" else bm25
        rows = [self._row_of.get(int(k), -1) for k in keys]
        present = [i for i, r in enumerate(rows) if r >= 0]
        if present:
            sub = matrix[[rows[i] for i in present]]
            out[present] = np.asarray((sub @ query.T).todense()).ravel() / self._self_score(text, query, method)
        return out

    def _self_score(self, text: str, query: sp.csr_matrix, method: str) -> float:
        if method == "tfidf":
            return 1.0
        idf, _, bm25 = self._weights()
        counts = self._count([text])
        # The text's own BM25 weights for its query terms, at average document length.
        tf = counts.multiply(query).tocsr()
        data = idf[tf.indices] * tf.data * (BM25_K1 + 1) / (tf.data + BM25_K1)
        return float(max(data.sum(), 1e-6))
