"""Lexical relevance with scikit-learn: TF-IDF cosine (the WordPress related-posts way) and a BM25
"More Like This" query (the Elasticsearch way), kept in step with the store."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from index.files import check_store
from recommender import analysis
from recommender.arrayfile import mapped_arrays, save_arrays
from recommender.vocabulary import UNKNOWN, MappedVocabulary, Vocabulary, term_hashes

# Elasticsearch "More Like This" defaults: the 25 most telling terms of the source, scored by BM25.
MLT_MAX_QUERY_TERMS = 25
# The layout of the weights file (``weights_file``); a file of another is written again by the writer.
WEIGHTS_FORMAT = 1
# The layout of the counts file (``save_counts``). The counts were a ``.npz`` before: read (~1 s at 1M articles,
# 6 s from disk) where the file is now mapped; one is still read where no counts file exists (an upgrade).
COUNTS_FORMAT = 1
BM25_K1, BM25_B = 1.2, 0.75
REWEIGH_MIN, REWEIGH_SHARE = 1000, 0.02


@dataclass(frozen=True)
class LiveCounts:
    """The live rows of a lexical index at one moment: their term counts, their keys, and the vocabulary's terms
    in column order."""

    counts: sp.csr_matrix
    keys: np.ndarray
    terms: list[str]


def save_counts(path: Path, live: LiveCounts, seq: int, store: str = "") -> None:
    """Write the counts, keys and vocabulary (an array file, ``recommender.arrayfile``) with the store (its id)
    and sequence they reflect, replacing the file whole (``LexicalIndex.load`` maps them)."""
    counts = live.counts
    encoded = [term.encode() for term in live.terms]
    arrays = {"data": counts.data, "indices": counts.indices, "indptr": counts.indptr, "keys": live.keys,
              "terms": np.frombuffer(b"".join(encoded), dtype=np.uint8),
              "term_ends": np.cumsum([len(t) for t in encoded], dtype=np.int64)}
    save_arrays(path, arrays, {"format": str(COUNTS_FORMAT), "seq": str(seq), "store": store,
                               "rows": str(counts.shape[0]),
                               "width": str(counts.shape[1]), "analyzer": str(analysis.ANALYZER_VERSION)})


WeightsFile = tuple[dict[str, np.ndarray], dict[str, str]]


def weights_file(live: LiveCounts, seq: int, store: str = "") -> WeightsFile:
    """The arrays and metadata of the weights file of ``live``: its weights derived afresh (~1 s at 100k articles,
    ~14 s at 1M), the vocabulary's hashes, the store (its id) and sequence they reflect."""
    weights = _weights_of(live.counts, np.ones(live.counts.shape[0], dtype=np.float32))
    hashes = term_hashes(live.terms)
    order = np.argsort(hashes, kind="stable")
    index_dtype = np.int32 if weights.bm25.nnz < np.iinfo(np.int32).max else np.int64  # what scipy keeps as is
    arrays = {"keys": live.keys, "idf": weights.idf, "df": weights.df, "term_hashes": hashes[order],
              "term_columns": order.astype(np.int64), "tfidf": weights.tfidf.data, "bm25": weights.bm25.data,
              # One structure for both: the rows of each term's column, where each column starts.
              "rows": weights.bm25.indices.astype(index_dtype, copy=False),
              "starts": weights.bm25.indptr.astype(index_dtype, copy=False)}
    return arrays, {"format": str(WEIGHTS_FORMAT), "seq": str(seq), "store": store,
                    "avg_length": repr(weights.avg_length),
                    "analyzer": str(analysis.ANALYZER_VERSION), "width": str(len(live.terms))}


def save_weights(path: Path, live: LiveCounts, seq: int, store: str = "") -> None:
    """Write the weights file of ``live`` (``weights_file``) for the processes that map it
    (``LexicalIndex.map_weights``), replacing it whole."""
    save_arrays(path, *weights_file(live, seq, store))


def saved_weights_seq(path: Path, store: str | None = None) -> int:
    """The store sequence of the weights file at ``path``; -1 when there is none this version can map (nor one
    derived from ``store``: ``index.files.check_store``)."""
    try:
        _, metadata = mapped_arrays(path)
        readable = int(metadata["analyzer"]) == analysis.ANALYZER_VERSION and \
            int(metadata["format"]) == WEIGHTS_FORMAT
        check_store(path, metadata.get("store", ""), store)
        return int(metadata["seq"]) if readable else -1
    except (FileNotFoundError, ValueError, KeyError):
        return -1


@dataclass(frozen=True)
class _Weights:
    """Corpus weights of the rows they were computed over: each column's idf and document frequency, the rows'
    average length, and their TF-IDF and BM25 weights, column-major (a query reads only its own terms' columns)."""

    idf: np.ndarray
    df: np.ndarray
    avg_length: float
    tfidf: sp.csc_matrix
    bm25: sp.csc_matrix

    @property
    def rows(self) -> int:
        return int(self.tfidf.shape[0])


class LexicalIndex:
    """Term counts of every indexed text; TF-IDF and BM25 weights are derived lazily after changes.

    The vocabulary grows with the texts: a word first seen in an article written today (a new name: what tells
    one story from another) gets a column of its own at once, weighed with the rows added since the last
    weighing until the next one.

    A ``mapped`` index (``LexicalIndex.map_weights``) reads another process's weights file instead: its weights and
    vocabulary are shared pages, it keeps no counts of the rows in the file, and what it follows afterwards is
    weighed with the file's corpus weights until it maps the next file."""

    def __init__(self) -> None:
        self._vocabulary = Vocabulary()  # grows under the lock, read without it
        self._counts = sp.csr_matrix((0, 0), dtype=np.float32)
        # Rows added since ``_counts`` was last stacked: stacking copies every row, too much per write at 100k
        # articles (29 % of a writer's time on PUTs), so it waits for a save or a reweigh.
        self._appended: list[sp.csr_matrix] = []
        self._rows = 0  # in ``_counts`` and ``_appended`` together (and a mapped file's)
        self._keys = np.zeros(0, dtype=np.int64)  # row -> key; -1 = removed
        self._row_by_key = np.zeros(0, dtype=np.int64)  # key -> row, -1 = none (store keys are dense row ids)
        self._live = 0  # keys with a row
        self._lock = threading.Lock()
        self._weights: _Weights | None = None
        self._changed = 0  # rows added or removed since
        # Weights of the rows added since (the same idf and average length; the idf extended to the columns
        # added since), the row they start at, and every column's document frequency with them.
        self._delta: tuple[int, sp.csc_matrix, sp.csc_matrix, np.ndarray, np.ndarray] | None = None
        self.mapped = False

    def __len__(self) -> int:
        return self._live

    def __contains__(self, key: int) -> bool:
        by_key = self._row_by_key
        return 0 <= key < len(by_key) and by_key[key] >= 0

    def _map_rows_locked(self, keys: np.ndarray, rows: np.ndarray) -> None:
        """Point ``keys`` at ``rows`` (a larger array when a key is past the end: readers keep the one they hold)."""
        if len(keys) and keys.max() >= len(self._row_by_key):
            grown = np.full(max(int(keys.max()) + 1, 2 * len(self._row_by_key)), -1, dtype=np.int64)
            grown[:len(self._row_by_key)] = self._row_by_key
            self._row_by_key = grown
        self._row_by_key[keys] = rows

    def _rows_are_locked(self, keys: np.ndarray) -> None:
        """Row ``i`` holds ``keys[i]``; every key is live."""
        self._keys, self._rows, self._live = keys, len(keys), len(keys)
        self._row_by_key = np.zeros(0, dtype=np.int64)
        self._map_rows_locked(keys, np.arange(len(keys)))

    def build(self, keys: Sequence[int], texts: Sequence[str]) -> None:
        self.build_from([(keys, texts)])

    def build_from(self, chunks: Iterable[tuple[Sequence[int], Sequence[str]]]) -> None:
        """``build`` from (keys, texts) a chunk at a time: only the term counts are kept, never every text (the
        same index as one ``build`` of them all)."""
        with self._lock:
            self._vocabulary, self.mapped = Vocabulary(), False
            blocks, keys = [self._count_locked([])], [np.zeros(0, dtype=np.int64)]
            for chunk_keys, texts in chunks:
                blocks.append(self._count_locked(texts))
                keys.append(np.asarray(chunk_keys, dtype=np.int64))
            self._counts = _stacked(blocks, len(self._vocabulary))
            self._rows_are_locked(np.concatenate(keys))
            self._appended, self._weights, self._delta = [], None, None

    def live_counts(self) -> LiveCounts:
        """What is saved of this index: its live rows' counts, as they are now."""
        if self.mapped:
            raise TypeError("a mapped lexical index is the writer's: it holds no counts to save")
        with self._lock:
            live = np.flatnonzero(self._keys >= 0)
            all_counts = self._stacked_locked()
            counts = all_counts[live] if len(live) else sp.csr_matrix((0, all_counts.shape[1]), dtype=np.float32)
            # A copy, made canonical: nothing sorts a loaded index's read-only mapping of it in place later.
            counts.sort_indices()
            return LiveCounts(counts, self._keys[live], self._vocabulary.terms())

    def save(self, path: Path, seq: int, store: str = "") -> None:
        save_counts(path, self.live_counts(), seq, store)

    @classmethod
    def load(cls, path: Path, store: str | None = None) -> tuple[LexicalIndex, int]:
        """A saved index (``save_counts``; a ``.npz`` of earlier versions is read) and the store sequence it
        reflects; raises ``FileNotFoundError`` or ``ValueError`` (also for one derived from another store than
        ``store``: ``index.files.check_store``). The counts stay a read-only mapping of the file
        until the index stacks its rows anew (a checkpoint after changes): a process opens 1M articles' counts
        without reading them."""
        if path.suffix == ".npz":
            counts, keys, terms, seq, analyzer = _legacy_counts(path)
        else:
            arrays, meta = mapped_arrays(path)
            try:
                if int(meta["format"]) != COUNTS_FORMAT:
                    raise ValueError(f"format {meta['format']}, not {COUNTS_FORMAT}")
                check_store(path, meta.get("store", ""), store)
                shape, seq, analyzer = (int(meta["rows"]), int(meta["width"])), int(meta["seq"]), int(meta["analyzer"])
                counts = sp.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]), shape=shape)
                counts.check_format(full_check=True)  # a damaged file is refused now, not at a query (16 ms at 1M)
                keys, ends, blob = arrays["keys"], arrays["term_ends"].tolist(), arrays["terms"].tobytes()
                terms = [blob[start:end].decode() for start, end in zip([0, *ends], ends, strict=False)]
            except (KeyError, ValueError, UnicodeDecodeError) as exc:
                raise ValueError(f"lexical index {path} is unreadable: {exc}") from exc
        if len(terms) != counts.shape[1] or len(keys) != counts.shape[0]:
            raise ValueError(f"lexical index {path} is inconsistent (shape {counts.shape})")
        _check_analyzer(path, analyzer)
        index = cls()
        index._vocabulary.added(terms)
        index._counts = counts
        index._rows_are_locked(np.array(keys, dtype=np.int64))  # a copy of its own: removals mark it
        return index, seq

    @classmethod
    def map_weights(cls, path: Path, store: str | None = None) -> tuple[LexicalIndex, int]:
        """An index reading the weights file at ``path`` (``save_weights``) and the store sequence it reflects;
        raises ``FileNotFoundError`` or ``ValueError`` (also for one derived from another store than ``store``)."""
        arrays, meta = mapped_arrays(path)
        try:
            check_store(path, meta.get("store", ""), store)
            _check_analyzer(path, int(meta["analyzer"]))
            if int(meta["format"]) != WEIGHTS_FORMAT:
                raise ValueError(f"format {meta['format']}, not {WEIGHTS_FORMAT}")
            width, rows, seq = int(meta["width"]), len(arrays["keys"]), int(meta["seq"])
            _check_lengths(arrays, width)
            tfidf, bm25 = (sp.csc_matrix((arrays[name], arrays["rows"], arrays["starts"]), shape=(rows, width))
                           for name in ("tfidf", "bm25"))
            weights = _Weights(arrays["idf"], arrays["df"], float(meta["avg_length"]), tfidf, bm25)
            vocabulary = MappedVocabulary(arrays["term_hashes"], arrays["term_columns"], width)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"lexical weights {path} are unreadable: {exc}") from exc
        index = cls()
        index._vocabulary, index._weights, index.mapped = vocabulary, weights, True
        index._counts = sp.csr_matrix((0, width), dtype=np.float32)
        index._rows_are_locked(np.array(arrays["keys"], dtype=np.int64))  # a copy of its own: removals mark it
        return index, seq

    def _count_locked(self, texts: Sequence[str]) -> sp.csr_matrix:
        """Term counts of ``texts``, one row each; their new terms join the vocabulary (under the lock)."""
        indptr, indices, data = [0], [], []
        for text in texts:
            counted = Counter(analysis.terms(text))
            columns = self._vocabulary.added(list(counted))
            order = np.argsort(columns)
            indices.append(columns[order])
            data.append(np.fromiter(counted.values(), dtype=np.float32, count=len(counted))[order])
            indptr.append(indptr[-1] + len(counted))
        return sp.csr_matrix((np.concatenate(data) if data else np.zeros(0, np.float32),
                              np.concatenate(indices).astype(np.int32) if indices else np.zeros(0, np.int32),
                              np.array(indptr, dtype=np.int64)), shape=(len(texts), len(self._vocabulary)))

    def _count_one(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(sorted term columns, counts) of a query text; terms the corpus never had are left out."""
        counted = Counter(analysis.terms(text))
        columns = self._vocabulary.columns(list(counted))
        counts = np.fromiter(counted.values(), dtype=np.float32, count=len(counted))
        known = columns != UNKNOWN
        order = np.argsort(columns[known])
        return columns[known][order].astype(np.int32), counts[known][order]

    def add(self, keys: Sequence[int], texts: Sequence[str]) -> None:
        """Add or replace texts; before the first build the whole set becomes the corpus."""
        if not len(keys):
            return
        with self._lock:
            counts = self._count_locked(texts)
            self._remove_locked(keys)
            start = self._rows
            self._appended.append(counts)
            self._rows += counts.shape[0]
            added = np.asarray(keys, dtype=np.int64)
            self._keys = np.concatenate([self._keys, added])
            self._map_rows_locked(added, np.arange(start, start + len(added)))
            self._live += len(np.unique(added))
            self._changed_locked(len(keys))

    def remove(self, keys: Sequence[int]) -> None:
        with self._lock:
            self._remove_locked(keys)
            self._changed_locked(len(keys))

    def _changed_locked(self, rows: int) -> None:
        """Corpus weights (idf, average length) are recomputed over every row once the rows changed since the
        last time reach ``REWEIGH_SHARE`` of the corpus (a full pass costs ~0.6 s at 100k articles, too much per
        write); until then added rows are weighed with the last weights and removed rows are only masked. A
        mapped index has no counts to recompute them from: it waits for the writer's next weights file."""
        self._changed += rows
        if self._changed > max(REWEIGH_MIN, REWEIGH_SHARE * self._live) and not self.mapped:
            self._weights = None
        self._delta = None

    def _stacked_locked(self) -> sp.csr_matrix:
        """Every row's counts in one matrix as wide as the vocabulary (the rows appended since stacked now)."""
        if self._appended or self._counts.shape[1] != len(self._vocabulary):
            self._counts = _stacked([self._counts, *self._appended], len(self._vocabulary))
            self._appended = []
        return self._counts

    def _remove_locked(self, keys: Sequence[int]) -> None:
        gone = np.unique(np.asarray(keys, dtype=np.int64))
        gone = gone[(gone >= 0) & (gone < len(self._row_by_key))]
        rows = self._row_by_key[gone]
        held = rows >= 0
        self._keys[rows[held]] = -1
        self._row_by_key[gone[held]] = -1
        self._live -= int(held.sum())

    def _snapshot(self) -> tuple[np.ndarray, np.ndarray, tuple, tuple, np.ndarray, np.ndarray]:
        """(idf, document frequencies, (TF-IDF columns, delta rows), (BM25 columns, delta rows), row keys, key
        rows), taken together under the lock."""
        with self._lock:
            weights = self._weights_locked()
            start, tfidf_delta, bm25_delta, idf, df = self._delta_locked()
            return idf, df, (weights.tfidf, tfidf_delta), (weights.bm25, bm25_delta), self._keys, self._row_by_key

    def _weights_locked(self) -> _Weights:
        if self._weights is None:
            self._weights = _weights_of(self._stacked_locked(), (self._keys >= 0).astype(np.float32))
            self._changed, self._delta = 0, None
        return self._weights

    def _delta_locked(self) -> tuple[int, sp.csc_matrix, sp.csc_matrix, np.ndarray, np.ndarray]:
        """Weights of the rows added after the weighed ones (few: weighed per change, not per corpus), with the
        idf extended to the terms they brought (their document frequency among themselves)."""
        if self._delta is None:
            weights = self._weights_locked()
            idf, start, width = weights.idf, weights.rows, len(self._vocabulary)
            if len(self._appended) > 1:  # kept as one block: a write then stacks two blocks, not one per write
                self._appended = [_stacked(self._appended, width)]
            added = _stacked([self._counts[start:], *self._appended], width)
            df = np.bincount(added.indices, minlength=width).astype(np.float32)
            if width > len(idf):
                new = df[len(idf):]
                n = max(1.0, float(self._live))
                idf = np.concatenate([idf, np.log1p((n - new + 0.5) / (new + 0.5)).astype(np.float32)])
            df[:len(weights.df)] += weights.df
            self._delta = (start, *_weighed(added, idf, weights.avg_length), idf, df)
        return self._delta

    def _query_terms(self, idf: np.ndarray, df: np.ndarray, text: str,
                     method: str) -> tuple[np.ndarray, np.ndarray, float]:
        """(term columns ascending, query weights, the text's score against itself) for ``text``."""
        if method not in ("tfidf", "bm25"):
            raise ValueError(f"unknown lexical method {method!r}")
        columns, counts = self._count_one(text)
        # A term the vocabulary gained after this snapshot, or whose texts are all gone, scores no row.
        known = columns < len(idf)
        known[known] = df[columns[known]] > 0
        columns, counts = columns[known], counts[known]
        weighted = counts * idf[columns]
        if method == "tfidf":
            # Bit for bit what sklearn's normalize does to a float32 row: float32 squares summed in sequence
            # in float64, the division done in float64.
            norm = np.sqrt(np.cumsum((weighted * weighted).astype(np.float64))[-1]) if len(weighted) else 0.0
            data = (weighted / norm).astype(np.float32) if norm > 0 else weighted
            return columns, data, 1.0
        kept, self_score = _mlt_query(idf[columns], counts)
        return columns[kept], np.ones(len(kept), np.float32), self_score

    def search(self, text: str, k: int, method: str) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores, keys) for a text; BM25 scores are divided by the text's score against itself,
        so both methods give 0..~1."""
        return self.scorer(text, method).search(k)

    def scores_for(self, text: str, keys: Sequence[int], method: str) -> np.ndarray:
        """Normalised scores of ``text`` against particular indexed keys (0 for keys not indexed)."""
        return self.scorer(text, method).scores_for(keys)

    def scorer(self, text: str, method: str) -> Scorer:
        """One text scored against the corpus once; ``search`` and ``scores_for`` then cost no recount."""
        return Scorer(self, text, method)


def warm_up() -> None:
    """Load now what a process's first lexical query would (the stop words, the Russian stemmer), so that it is
    not a reader's first on-demand list that waits for them."""
    analysis.terms("warm")


def _legacy_counts(path: Path) -> tuple[sp.csr_matrix, np.ndarray, list[str], int, int]:
    """(counts, keys, terms, sequence, analyzer version) of a counts ``.npz`` of earlier versions."""
    try:
        with np.load(path, allow_pickle=False) as saved:
            shape = tuple(int(x) for x in saved["shape"])
            counts = sp.csr_matrix((saved["data"], saved["indices"], saved["indptr"]), shape=shape, dtype=np.float32)
            analyzer = int(saved["analyzer"]) if "analyzer" in saved.files else 1
            return counts, saved["keys"], saved["terms"].tolist(), int(saved["seq"]), analyzer
    except FileNotFoundError:
        raise
    except Exception as exc:  # truncated or foreign file: the caller rebuilds from the store
        raise ValueError(f"lexical index {path} is unreadable: {exc}") from exc


def _check_analyzer(path: Path, version: int) -> None:
    if version != analysis.ANALYZER_VERSION:
        raise ValueError(f"lexical index {path} was analysed by version {version} of the text analysis, "
                         f"not {analysis.ANALYZER_VERSION}")


def _check_lengths(arrays: dict[str, np.ndarray], width: int) -> None:
    """Raise ``ValueError`` unless the arrays of a weights file agree with each other (a damaged file that is
    still a valid array file must be refused at once, not fail or misweigh at a query)."""
    for name in ("idf", "df", "term_hashes", "term_columns"):
        if len(arrays[name]) != width:
            raise ValueError(f"{name} has {len(arrays[name])} entries for {width} terms")
    starts = arrays["starts"]
    if len(starts) != width + 1 or not starts[-1] == len(arrays["rows"]) == len(arrays["tfidf"]) == \
            len(arrays["bm25"]) or (width and (starts[0] != 0 or np.any(starts[1:] < starts[:-1]))):
        raise ValueError("the columns do not match the weights")
    if width and not 0 <= int(arrays["term_columns"].min()) <= int(arrays["term_columns"].max()) < width:
        raise ValueError("a term's column is out of range")


def _mlt_query(idf: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, float]:
    """(positions kept, ascending; the text's score against itself) of a More-Like-This query over terms of
    ``idf`` counted ``counts`` times: its ``MLT_MAX_QUERY_TERMS`` most telling terms, each weighing 1."""
    kept = np.arange(len(counts))
    if len(counts) > MLT_MAX_QUERY_TERMS:
        kept = np.sort(np.argsort(-(counts * idf))[:MLT_MAX_QUERY_TERMS])
    # The text's own BM25 weights for its query terms, at average document length.
    own = idf[kept] * counts[kept] * (BM25_K1 + 1) / (counts[kept] + BM25_K1)
    return kept, float(max(own.sum(), 1e-6))


# A text's terms with their counts, and their idf in that order (``CorpusStats.terms``).
Terms = tuple[dict[str, float], np.ndarray]


class CorpusStats:
    """A weights file's corpus weights looked up by term (idf, document frequencies, average length, rows): the
    BM25 score a process that maps the file would give a text it has not indexed yet, without its weights."""

    def __init__(self, hashes: np.ndarray, columns: np.ndarray, idf: np.ndarray, df: np.ndarray,
                 avg_length: float, rows: int):
        self._hashes, self._columns, self._idf, self._df = hashes, columns, idf, df
        self.avg_length = avg_length
        # What a term the file lacks weighs once the one followed text that brings it is in the corpus.
        self._new_idf = float(np.log1p((rows + 0.5) / 1.5))

    @classmethod
    def read(cls, path: Path, store: str | None = None) -> CorpusStats:
        """The statistics of the weights file at ``path`` (mapped); raises ``FileNotFoundError`` or ``ValueError``
        (also for one derived from another store than ``store``)."""
        arrays, meta = mapped_arrays(path)
        try:
            check_store(path, meta.get("store", ""), store)
            _check_analyzer(path, int(meta["analyzer"]))
            if int(meta["format"]) != WEIGHTS_FORMAT:
                raise ValueError(f"format {meta['format']}, not {WEIGHTS_FORMAT}")
            return cls(arrays["term_hashes"], arrays["term_columns"], arrays["idf"], arrays["df"],
                       float(meta["avg_length"]), len(arrays["keys"]))
        except KeyError as exc:
            raise ValueError(f"lexical weights {path} are unreadable: {exc}") from exc

    def terms(self, text: str) -> Terms:
        """(each term of ``text``: its count; their idf in that order), a term the file lacks at its new weight."""
        counted = Counter(analysis.terms(text))
        idf = np.full(len(counted), self._new_idf, dtype=np.float64)
        if len(counted) and len(self._hashes):
            hashes = term_hashes(list(counted))
            at = np.minimum(np.searchsorted(self._hashes, hashes), len(self._hashes) - 1)
            found = np.flatnonzero(self._hashes[at] == hashes)
            columns = self._columns[at[found]]
            known = self._df[columns] > 0
            idf[found[known]] = self._idf[columns[known]]
        return {t: float(c) for t, c in counted.items()}, idf

    def bm25(self, query: Terms, text: Terms) -> float:
        """The normalised BM25 score (0..~1) that ``query`` (a text's ``terms``), as a More-Like-This query, gives
        ``text`` (another's) once indexed: what ``LexicalIndex.scores_for`` would give in a process mapping the
        file, up to the weights of terms the file lacks."""
        (query_counts, query_idf), (counts, idf) = query, text
        kept, self_score = _mlt_query(query_idf, np.fromiter(query_counts.values(), np.float64, len(query_counts)))
        terms = list(query_counts)
        at = {t: i for i, t in enumerate(counts)}
        length_norm = BM25_K1 * (1 - BM25_B + BM25_B * sum(counts.values()) / max(self.avg_length, 1e-9))
        score = 0.0
        for t in (terms[k] for k in kept.tolist()):
            if t in at:
                c = counts[t]
                score += idf[at[t]] * c * (BM25_K1 + 1) / (c + length_norm)
        return score / self_score


def _weights_of(counts: sp.csr_matrix, live: np.ndarray) -> _Weights:
    """The corpus weights of ``counts``' rows where ``live`` is 1 (the others weigh nothing)."""
    counts = sp.diags(live) @ counts if not live.all() else counts
    n = max(1.0, float(live.sum()))
    df = np.bincount(counts.indices, minlength=counts.shape[1]).astype(np.float32)
    idf = np.log1p((n - df + 0.5) / (df + 0.5)).astype(np.float32)  # Lucene's BM25 idf, always > 0
    lengths = np.asarray(counts.sum(axis=1)).ravel()
    avg_length = float(lengths[live > 0].mean()) if live.any() else 1.0
    return _Weights(idf, df, avg_length, *_weighed(counts, idf, avg_length))


def _weighed(counts: sp.csr_matrix, idf: np.ndarray, avg_length: float) -> tuple[sp.csc_matrix, sp.csc_matrix]:
    """(L2-normalised TF-IDF rows, BM25 term weights) of term counts, with the corpus weights given: column-major
    (a query reads only its own terms' columns), both on one copy of the counts' structure, computed entry by
    entry (at 1M articles, sorting the weights into columns twice took most of a checkpoint's 20 s)."""
    columns = counts.tocsc()
    rows, entries = columns.indices, columns.data
    entry_idf = np.repeat(idf[:columns.shape[1]], np.diff(columns.indptr))
    tfidf = entries * entry_idf
    # Each row divided by its L2 norm as scikit-learn's ``normalize`` does, bit for bit: float32 squares summed
    # in float64 in the row's column order (bincount adds in entry order: a row's entries by ascending column).
    norms = np.sqrt(np.bincount(rows, weights=tfidf * tfidf, minlength=columns.shape[0]))
    np.divide(tfidf, norms[rows], out=tfidf, casting="unsafe")
    lengths = np.asarray(counts.sum(axis=1)).ravel()
    length_norm = BM25_K1 * (1 - BM25_B + BM25_B * lengths / max(avg_length, 1e-9))  # a row's, then its entries'
    bm25 = entry_idf * entries  # in place from here: a 1M-article corpus has ~100M entries
    bm25 *= BM25_K1 + 1
    bm25 /= entries + length_norm[rows]
    return (sp.csc_matrix((tfidf, rows, columns.indptr), shape=columns.shape),
            sp.csc_matrix((bm25, rows, columns.indptr), shape=columns.shape))


def _stacked(blocks: Sequence[sp.csr_matrix], width: int) -> sp.csr_matrix:
    """``blocks`` one under the other, each widened to ``width`` columns (a block counted before the vocabulary
    grew is narrower; its new columns are empty)."""
    widened = [b if b.shape[1] == width else sp.csr_matrix((b.data, b.indices, b.indptr), shape=(b.shape[0], width))
               for b in blocks]
    return sp.vstack(widened, format="csr") if len(widened) > 1 else widened[0]


def _best_rows(postings: np.ndarray, scores: np.ndarray, keys: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` best-scoring distinct rows of ``postings`` (a row once per query term it holds) whose key is live
    (``keys[row] >= 0``), best first, a tie to the lower row.

    The rows of the best postings are ranked, not every distinct row: every posting of a row carries the row's
    score, so the postings scoring at least the m-th best hold every row scoring that much, ties included; once
    they hold ``k`` live rows they hold the top ``k`` (ties then go to the lower row by the stable sort). At 1M
    articles a text's 25 terms have ~70,000 postings, nearly as many distinct rows: finding those (a mask of a
    million marks, or a sort) and checking each one's key took 2.3 ms of a list's ~11."""
    posting_scores = scores[postings]
    m = max(1, min(len(postings), 8 * k))
    while True:
        best = postings
        if m < len(postings):  # every posting scoring at least the m-th best: its ties too
            best = postings[posting_scores >= -np.partition(-posting_scores, m - 1)[m - 1]]
        rows = np.unique(best)
        rows = rows[keys[rows] >= 0]
        if len(rows) >= k or len(best) == len(postings):
            return rows[np.argsort(-scores[rows], kind="stable")[:k]]
        m = min(len(postings), 4 * max(m, len(best)))  # ties may have taken more than m already


class Scorer:
    __slots__ = ("_index", "_method", "_scores", "_self_score", "_postings", "_keys", "_row_by_key")

    def __init__(self, index: LexicalIndex, text: str, method: str):
        self._index, self._method = index, method
        self._scores: np.ndarray | None = None
        if method not in ("tfidf", "bm25"):
            raise ValueError(f"unknown lexical method {method!r}")
        if not len(index):
            return
        idf, df, tfidf, bm25, self._keys, self._row_by_key = index._snapshot()
        columns, data, self._self_score = index._query_terms(idf, df, text, method)
        matrix, delta = tfidf if method == "tfidf" else bm25
        if not len(columns):
            self._scores = np.zeros(matrix.shape[0] + delta.shape[0], np.float32)
            self._postings = np.zeros(0, np.int32)
            return
        # Only the query terms' columns are read, not every row of the corpus; the rows in them (their
        # postings) are the only ones that score.
        derived = columns < matrix.shape[1]  # the terms that came with later rows have no derived column
        terms = matrix[:, columns[derived]]
        scores, postings = np.asarray(terms @ data[derived], dtype=np.float32).ravel(), [terms.indices]
        if delta.shape[0]:  # rows added since the last weighing (none right after it)
            added = delta[:, columns]
            scores = np.concatenate([scores, np.asarray(added @ data, dtype=np.float32).ravel()])
            postings.append(added.indices + matrix.shape[0])
        self._scores, self._postings = scores, np.concatenate(postings)

    def _normalised(self, rows: np.ndarray) -> np.ndarray:
        """The scores of ``rows`` divided by the text's score against itself (BM25: 0..~1)."""
        assert self._scores is not None
        return self._scores[rows] / np.float32(self._self_score)

    def search(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self._scores is None or not len(self._postings) or k <= 0:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        rows = _best_rows(self._postings, self._scores, self._keys, k)
        return self._normalised(rows).astype(np.float32), self._keys[rows]

    def scores_for(self, keys: Sequence[int]) -> np.ndarray:
        out = np.zeros(len(keys), dtype=np.float32)
        if self._scores is None or not len(keys):
            return out
        wanted, by_key = np.asarray(keys, dtype=np.int64), self._row_by_key
        inside = (wanted >= 0) & (wanted < len(by_key))
        rows = np.where(inside, by_key[np.where(inside, wanted, 0)], -1)
        present = (rows >= 0) & (rows < len(self._scores))  # a row added after this scorer was made: not scored
        out[present] = self._normalised(rows[present])
        return out
