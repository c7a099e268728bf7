"""The lexical index's vocabulary: term -> column. Held as a dict by the process that counts the corpus; mapped
from the weights file (each term's 64-bit hash, sorted, and its column) by the processes that only read it."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from itertools import repeat

import numpy as np

UNKNOWN = -1


def term_hashes(terms: Sequence[str]) -> np.ndarray:
    """A 64-bit hash of each term, the same in every process and run (unlike ``hash``). Two terms of one corpus
    sharing a hash (odds ~1e-7 at two million terms) would share a column: a wrong match, not a failure."""
    return np.fromiter((int.from_bytes(hashlib.blake2b(t.encode(), digest_size=8).digest(), "little")
                        for t in terms), dtype=np.uint64, count=len(terms))


class Vocabulary:
    """Term -> column, columns numbered in the order the terms were first met."""

    def __init__(self) -> None:
        self._columns: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._columns)

    def terms(self) -> list[str]:
        """Every term, in column order."""
        return list(self._columns)

    def columns(self, terms: Sequence[str]) -> np.ndarray:
        """The column of each term, ``UNKNOWN`` for a term never met."""
        get = self._columns.get
        return np.fromiter((get(t, UNKNOWN) for t in terms), dtype=np.int64, count=len(terms))

    def added(self, terms: Sequence[str]) -> np.ndarray:
        """The column of each term, new terms taking the next columns."""
        columns = self._columns
        # Looked up in C first (an import meets mostly known terms: a third of the cost of numbering each in turn).
        found = np.fromiter(map(columns.get, terms, repeat(UNKNOWN)), dtype=np.int64, count=len(terms))
        for at in np.flatnonzero(found == UNKNOWN).tolist():
            found[at] = columns.setdefault(terms[at], len(columns))
        return found


class MappedVocabulary(Vocabulary):
    """The terms of a weights file, looked up by hash in its sorted arrays (read-only, shared between processes),
    and the terms this process met since, in a dict of its own, numbered after the file's."""

    def __init__(self, hashes: np.ndarray, columns: np.ndarray, width: int):
        super().__init__()
        self._hashes, self._file_columns, self._width = hashes, columns, width

    def __len__(self) -> int:
        return self._width + len(self._columns)

    def terms(self) -> list[str]:
        raise TypeError("a mapped vocabulary holds hashes, not terms: it is never saved")

    def columns(self, terms: Sequence[str]) -> np.ndarray:
        return self._looked_up(terms, add=False)

    def added(self, terms: Sequence[str]) -> np.ndarray:
        return self._looked_up(terms, add=True)

    def _looked_up(self, terms: Sequence[str], add: bool) -> np.ndarray:
        """Each term's column: the file's, else this process's own (a new one when ``add``), else ``UNKNOWN``."""
        out = np.full(len(terms), UNKNOWN, dtype=np.int64)
        if len(self._hashes):
            hashes = term_hashes(terms)
            at = np.minimum(np.searchsorted(self._hashes, hashes), len(self._hashes) - 1)
            found = self._hashes[at] == hashes
            out[found] = self._file_columns[at[found]]
        own = self._columns
        for i in np.flatnonzero(out == UNKNOWN).tolist():
            out[i] = own.setdefault(terms[i], self._width + len(own)) if add else own.get(terms[i], UNKNOWN)
        return out
