"""Following the store: what a process keeps in memory (the FAISS and lexical indexes, the published keys, the
parsed candidate rows, the blocks and the running experiment) kept at the store's applied sequence, whoever wrote
it (this process, another worker, a CLI ingest); opening the indexes and repairing them from the store; saving
them at checkpoints."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from itertools import chain
from pathlib import Path

import numpy as np

from index import MAPPABLE_KINDS, VectorIndex, index_kind_for, load_index, saved_at
from index.files import file_stamp, read_through
from index.layout import checkpoint_kind
from recommender.arrayfile import save_arrays
from recommender.article import Article, embedding_text
from recommender.derived import derived_seqs, remove_derived
from recommender.embed import ModelOnDemand
from recommender.experiments import Experiment, ExperimentStore, running
from recommender.lexical import (
    REWEIGH_MIN,
    LexicalIndex,
    LiveCounts,
    save_counts,
    saved_weights_seq,
    weights_file,
)
from recommender.locks import FileLock
from recommender.overrides import OverrideStore
from recommender.reindex import REINDEX_CHUNK, rebuilt_index, vector_batches
from recommender.rowfile import open_rows_file, rows_file_seq, write_rows_file
from recommender.rows import RowTable
from recommender.settings import Settings
from recommender.store.articles import CHANGES_CHUNK, ArticleStore, Change
from recommender.store.sql import StoreUnavailable

log = logging.getLogger("recommender")

# Vectors per index add when the index is repaired from the store (the first batch trains a quantised kind).
REPAIR_BATCH = REINDEX_CHUNK
# Changes applied to the indexes at once when following (pages of the store's reads, merged): a follow far
# behind holds this many articles at a time, and each add pays a pass over the index's ids.
APPLY_BATCH = 10_000
# Vectors a mapped index may hold beside its file (searched exactly, each query scanning all of them) in the process
# that saves the checkpoint; beyond it (a large ingest) the index is held whole until that process's next save.
DELTA_MAX = 20_000


def batched(pages: Iterable[list[Change]], size: int) -> Iterator[list[Change]]:
    """``pages`` merged into runs of ``size`` changes or more (the last may hold fewer; an empty page adds none)."""
    run: list[Change] = []
    for page in pages:
        run.extend(page)
        if len(run) >= size:
            yield run
            run = []
    if run:
        yield run


def _sum_until(stop: threading.Event, steps: Iterator[int]) -> int | None:
    """The sum of ``steps``, or None when ``stop`` is set between two."""
    total = 0
    for step in steps:
        total += step
        if stop.is_set():
            return None
    return total


class KeySet:
    """Store keys as a mask by key (they are dense row ids), with the calls of a ``set`` that its users make: one
    byte a key where a set of Python ints took ~60 (60-85 MB and 0.1 s of every process's start at 1M articles).
    A change of one key is atomic; growing swaps in a larger copy."""

    def __init__(self, keys: np.ndarray):
        self._mask = np.zeros(int(keys.max(initial=-1)) + 1, dtype=bool)
        self._mask[keys] = True

    def __contains__(self, key: object) -> bool:
        mask = self._mask
        return bool(isinstance(key, (int, np.integer)) and 0 <= key < len(mask) and mask[key])

    def issuperset(self, keys: Iterable[int]) -> bool:
        return all(key in self for key in keys)

    def absent(self, keys: np.ndarray) -> np.ndarray:
        """The ``keys`` not in this set, by the mask, not a sort (at 1M articles ``np.setdiff1d`` took 1.6 s of
        every process's start, a mask 0.004 s)."""
        mask = self._mask
        held = (keys >= 0) & (keys < len(mask))
        if held.any():
            held[held] = mask[keys[held]]
        return keys[~held]

    def update(self, keys: Iterable[int]) -> None:
        added = np.fromiter(keys, dtype=np.int64)
        if len(added) and added.max() >= len(self._mask):
            grown = np.zeros(max(int(added.max()) + 1, 2 * len(self._mask)), dtype=bool)
            grown[:len(self._mask)] = self._mask
            self._mask = grown
        self._mask[added] = True

    def difference_update(self, keys: Iterable[int]) -> None:
        removed = np.fromiter(keys, dtype=np.int64)
        self._mask[removed[(removed >= 0) & (removed < len(self._mask))]] = False


class Following:
    """Thread-safe; ``open`` reads the indexes (or builds them from the store), ``follow`` keeps them current."""

    def __init__(self, settings: Settings, store: ArticleStore, overrides: OverrideStore,
                 experiments: ExperimentStore, model: ModelOnDemand, saves: bool = True):
        self.settings = settings
        self.store = store
        self.overrides = overrides
        self.experiments = experiments
        self.model = model
        # Held while the indexes move to a newer store sequence (whoever wrote it: this process or another).
        self._follow_lock = threading.RLock()
        # Bumped by every change followed; the service's list cache (service.cache) keys on it.
        self.generation = 0
        self._cache_lock = threading.Lock()  # guards generation
        # Candidate rows by key, parsed once for many lists; a followed write drops its own.
        self.rows = RowTable(store.by_keys, settings.rows_cache_max, store.articles_by_keys)
        self._rows_read = False  # every published row was parsed (``warm_rows``): none left to read through
        self._saved_seq = self._lexical_saved_seq = self._weights_saved_seq = 0
        self.applied_seq = 0  # the store sequence the in-memory indexes reflect (never ahead of them)
        self._overrides_seq = -1
        self.blocked_everywhere: set[str] = set()
        self.box_blocks: dict[str, frozenset[str]] = {}
        self._experiments_seq = -1
        self.experiment: Experiment | None = None
        # Several processes save and load the index files: one at a time (an HNSW graph's hidden slots in the
        # meta file only make sense with the index file written by the same process).
        self._index_files = FileLock(settings.data_dir / "index.lock")
        # Every process maps the index checkpoint (its pages shared by all of them) instead of holding a copy: it
        # opens in a fraction of the time. The process that writes the checkpoint (the writer of `recommender
        # serve`, a one-process server, an ingest) reads it whole only to save a newer one, then maps that.
        self.maps_index = settings.index_mmap
        # A read worker leaves the checkpoint to the writer, a box helper (``saves`` false) to the import it helps.
        self.saves_index = saves and settings.writer_socket is None
        self._mapped_at: tuple[int, int] | None = None  # which checkpoint this process maps
        # The lexical weights are derived once by the writer at its checkpoint, from counts it holds; the read
        # workers map them.
        self.maps_lexical = settings.index_mmap and not self.saves_index
        self._weights_at: tuple[int, int] | None = None  # which weights file this process maps
        self._weights_lock = threading.Lock()  # one weights file derived at a time in this process
        self._weights_written = time.monotonic()  # when this process last wrote them (or opened)
        # The rows file (``recommender.rowfile``): every process reads it; the one that saves the index writes it,
        # as often as the lexical weights, one process at a time (its own lock: the index files' lock is not held
        # for the minutes of a first one at 1M articles).
        self._rows_at: tuple[int, int] | None = None  # which rows file this process reads
        self._rows_saved_seq = -1
        self._rows_written = time.monotonic()
        self._rows_files = FileLock(settings.data_dir / "rows.lock")
        self._rows_lock = threading.Lock()  # one rows file written at a time in this process

    def open(self, index_kind: str | None) -> None:
        if self.saves_index:
            self._drop_files_ahead_of_store()
        self.index = self._open_index(index_kind)
        self._map_only_mappable()
        self.lexical = self._open_lexical()
        if self.settings.index_mmap:
            if self.saves_index:  # which one the next is due after
                self._rows_saved_seq = rows_file_seq(self.settings.rows_path, self.store.id)
            self._open_rows(self.settings.rows_path)
        self._load_overrides()
        self._load_experiment()
        self.follow()  # writes committed while the indexes were read

    def text(self, article: Article) -> str:
        return embedding_text(article, self.settings.body_chars)

    # -- opening and repair -------------------------------------------------------------------
    def _drop_files_ahead_of_store(self) -> None:
        """Remove the data dir's derived files where one is ahead of the store (``recommender.derived``): they are
        derived again from the store. Where the files are saved, before any is read."""
        with self._index_files.held():
            head = self.store.seq
            ahead = {path: seq for path, seq in derived_seqs(self.settings).items() if seq > head}
            if ahead:
                log.warning("%s ahead of the store's sequence %d (was the store restored from a backup?): derived "
                            "again from the store", ", ".join(f"{p.name} at {s}" for p, s in ahead.items()), head)
                remove_derived(self.settings)

    def _not_ahead(self, path: Path, seq: int) -> None:
        """Refuse (``ValueError``) the file at ``path`` just read at store sequence ``seq`` where that is ahead of
        the store's, read after it (a file saved from this store never is)."""
        if seq > self.store.seq:
            raise ValueError(f"{path} is at sequence {seq}, ahead of the store's {self.store.seq}")

    def _open_index(self, kind: str | None) -> VectorIndex:
        path, name = self.settings.index_path, self.model.name
        index, seq, chosen = None, 0, None
        try:
            with self._index_files.held(shared=True):
                self._mapped_at = saved_at(path)
                index, meta = load_index(path, mmap=self.maps_index, store=self.store.id)
                self._not_ahead(path, meta.seq)
            if meta.model != name or meta.dim != self._dim():
                log.warning("index %s was built for %s (dim %d): rebuilding for %s", path, meta.model, meta.dim, name)
                index, chosen = None, meta.kind if meta.chosen else None
            else:
                seq = meta.seq
        except FileNotFoundError:
            log.info("no index at %s yet: building it from the store", path)
        except ValueError as exc:
            log.warning("%s: rebuilding the index from the store", exc)
        if index is None:
            # Default: the kind for the corpus size (index.index_kind_for), or the one chosen for the index it
            # replaces. A trained kind is built for the whole corpus, though trained on the repair's first batch.
            total = len(self.store.published_keys())
            index = VectorIndex(self._dim(), kind or chosen or index_kind_for(total), name, size_hint=total,
                                chosen=chosen is not None)
        return self._repair(index, seq)

    def _dim(self) -> int:
        """The vectors' dimension: the stored vectors' (no model load), or the model's for an empty store."""
        if not self.model.loaded:
            stored = self.store.by_keys(self.store.published_keys(limit=1).tolist())
            if stored:
                return len(next(iter(stored.values()))[1])
        return self.model.get().dim

    def _repair(self, index: VectorIndex, seq: int) -> VectorIndex:
        """Make the index mirror the store: apply writes after ``seq``, drop what the store no longer publishes, add
        what it publishes and the index lacks."""
        store_seq = self.store.seq
        added, gone = self._caught_up(index, seq)
        published = self.store.published_keys()  # after the sequence: what is written later is followed again
        self.published = KeySet(published)
        index, stale, missing = self._mirrored(index, published, store_seq)
        added += len(missing)
        index = self._delta_bounded(index)  # a checkpoint far behind the store: saved whole now
        changed = bool(added or gone or len(stale)) or seq != store_seq
        saved = changed and not index.mapped and self.saves_index
        if saved:
            log.info("index repaired: %d added or updated, %d dropped", added, gone + len(stale))
            with self._index_files.held():
                index.save(self.settings.index_path, store_seq, self.store.id)
        # Where the repair is beside a mapped checkpoint, that is still the file's sequence: the first checkpoint
        # saves it.
        self._saved_seq = store_seq if saved or not changed else seq
        self.applied_seq = store_seq
        return index

    def _mirrored(self, index: VectorIndex, published: np.ndarray,
                  store_seq: int) -> tuple[VectorIndex, np.ndarray, np.ndarray]:
        """(``index`` mirroring ``published``, the keys dropped, the keys added). Where no write after
        ``store_seq`` explains them (the follow applies those), such keys are a crash's: one between a checkpoint's
        two renames pairs a rebuilt graph with the hidden slots of the save before. A mapped index is then held
        whole, to be saved: a checkpoint reads the file again, not what is beside the mapping."""
        held = index.ids()
        stale = self.published.absent(held)
        index.remove(stale)
        later = KeySet(self.store.changed_since(store_seq))
        missing = later.absent(KeySet(held).absent(published))  # the stale keys held are not published
        if (len(missing) or len(later.absent(stale))) and index.mapped and self.saves_index:
            with self._index_files.held(shared=True):
                index = self._whole_index(index)
            index.remove(stale)
        if len(missing):
            log.warning("%d published articles missing from the index %s: added again", len(missing),
                        self.settings.index_path)
        self._restored(index, missing)
        return index, stale, missing

    def _restored(self, index: VectorIndex, missing: np.ndarray) -> None:
        """Add the published ``missing`` keys' vectors to ``index``."""
        for start in range(0, len(missing), REPAIR_BATCH):
            stored = self.store.by_keys(missing[start:start + REPAIR_BATCH].tolist())
            if stored:
                index.add(np.array(list(stored), dtype=np.int64), np.stack([v for _, v in stored.values()]))

    def _caught_up(self, index: VectorIndex, seq: int) -> tuple[int, int]:
        """Apply every write after ``seq`` to ``index``, ``REPAIR_BATCH`` vectors at a time (what is held at once
        when the whole store is read); how many were added or updated, and dropped."""
        added = 0
        gone: list[int] = []
        for keys, vectors in vector_batches(self.store.changes_since(seq, CHANGES_CHUNK), REPAIR_BATCH, gone):
            index.add(keys, vectors)
            added += len(keys)
        index.remove(np.array(gone, dtype=np.int64))
        return added, len(gone)

    def _open_lexical(self) -> LexicalIndex:
        """The lexical index brought up to the store (as the FAISS index is): the writer's weights file mapped
        where this process maps it, else the saved counts, else one built from the store."""
        if self.maps_lexical:
            try:
                with self._index_files.held(shared=True):
                    self._weights_at = file_stamp(self.settings.lexical_weights_path)
                    path = self.settings.lexical_weights_path
                    lexical, seq = LexicalIndex.map_weights(path, self.store.id)
                    self._not_ahead(path, seq)
                self._caught_up_lexical(lexical, seq)
                return lexical
            except (FileNotFoundError, ValueError) as exc:  # mapped at the writer's next checkpoint
                log.info("%s: reading the lexical counts until the writer's next checkpoint", exc)
        path = self.settings.lexical_path
        if not path.exists() and self.settings.legacy_lexical_path.exists():
            path = self.settings.legacy_lexical_path
        try:
            lexical, seq = LexicalIndex.load(path, self.store.id)
            self._not_ahead(path, seq)
        except (FileNotFoundError, ValueError) as exc:
            log.info("%s: building the lexical index from the store", exc)
            seq = self.store.seq  # before the corpus is read: later writes are applied again below
            lexical = LexicalIndex()
            lexical.build_from(self._published_texts())
            self._lexical_saved_seq = -1  # saved at the next checkpoint
        else:
            self._lexical_saved_seq = seq if path == self.settings.lexical_path else -1
        # None the read workers can map (a data dir of an older version, a writer killed before it wrote them):
        # written at the next checkpoint.
        self._weights_saved_seq = saved_weights_seq(self.settings.lexical_weights_path, self.store.id)
        self._caught_up_lexical(lexical, seq)
        return lexical

    def _caught_up_lexical(self, lexical: LexicalIndex, seq: int) -> None:
        """Apply every write after ``seq`` to ``lexical``, ``APPLY_BATCH`` articles at a time."""
        for changes in batched(self.store.change_pages(seq, CHANGES_CHUNK), APPLY_BATCH):
            live = [c for c in changes if c.published]
            lexical.add([c.key for c in live], [self.text(c.live_article) for c in live])
            lexical.remove([c.key for c in changes if not c.published])

    def _published_texts(self) -> Iterator[tuple[list[int], list[str]]]:
        """The published articles' keys and texts, ``CHANGES_CHUNK`` articles' worth at a time."""
        keys: list[int] = []
        texts: list[str] = []
        for key, article in self.store.articles(CHANGES_CHUNK):
            if article.is_published:
                keys.append(key)
                texts.append(self.text(article))
                if len(keys) >= CHANGES_CHUNK:
                    yield keys, texts
                    keys, texts = [], []
        if keys:
            yield keys, texts

    # -- following ------------------------------------------------------------------------------
    def current_generation(self) -> int | None:
        """The generation, if this process has applied every write in the store (one point read), else None.
        While the store is unreachable nothing can be written, so what this process applied is the latest."""
        try:
            head = self.store.seq
        except StoreUnavailable:
            return self.generation
        return self.generation if head == self.applied_seq else None

    def follow(self) -> bool:
        """Bring the indexes and editorial state to the store's latest sequence, whoever wrote it; one point read
        when nothing moved. True when something did."""
        if self.store.seq == self.applied_seq:
            return False
        with self._follow_lock:
            head = self.store.seq  # read first: every change up to it is in what changes_since reads next
            if head == self.applied_seq:
                return False
            written: list[int] = []
            for changes in batched(self.store.change_pages(self.applied_seq, CHANGES_CHUNK), APPLY_BATCH):
                self._apply(changes)
                written.extend(c.key for c in changes)
            if int(self.store.meta("overrides_seq") or 0) != self._overrides_seq:
                self._load_overrides()
            if self.experiments.version() != self._experiments_seq:
                self._load_experiment()
            self.store.followed(self.applied_seq, head)
            # Invalidate before moving the sequence: a reader in between sees the sequence still behind (no
            # cache) rather than the new sequence with the old generation (lists cached before the change).
            self._invalidate(written)
            self.applied_seq = head
            return True

    def map_newer_checkpoint(self) -> None:
        """A mapped index (and mapped lexical weights) move to the writer's newer checkpoint when there is one, with
        the writes since it applied again: what this process keeps of its own is then only what the checkpoint does
        not hold yet. Called by the process's refresher thread, off the requests' path (opening a mapping rebuilds
        the index's id map: 0.01 s at 100k articles, growing with them)."""
        index_stamp = saved_at(self.settings.index_path) if self.maps_index else self._mapped_at
        weights_stamp = file_stamp(self.settings.lexical_weights_path) if self.maps_lexical else self._weights_at
        rows_stamp = file_stamp(self.settings.rows_path) if self.settings.index_mmap else self._rows_at
        if index_stamp == self._mapped_at and weights_stamp == self._weights_at and rows_stamp == self._rows_at:
            return
        with self._follow_lock:  # no write is applied to the indexes being replaced meanwhile
            if index_stamp != self._mapped_at:
                self._map_checkpoint(self.settings.index_path)
            if weights_stamp != self._weights_at:
                self._map_weights(self.settings.lexical_weights_path)
            if rows_stamp != self._rows_at:
                self._open_rows(self.settings.rows_path)

    def _map_checkpoint(self, path: Path) -> None:
        with self._index_files.held(shared=True):
            stamp = saved_at(path)
            saved = checkpoint_kind(path)
            if saved is not None and saved[0] not in MAPPABLE_KINDS:  # a rebuild as ivfpq: read whole, not mapped
                self._mapped_at = stamp  # the next start takes it, unread here at each of its checkpoints
                return
            try:
                index, meta = load_index(path, mmap=True, store=self.store.id)
            except (FileNotFoundError, ValueError) as exc:
                log.warning("the index checkpoint at %s could not be mapped (%s): the current one stays", path, exc)
                self._mapped_at = stamp  # not tried again until the file changes
                return
        if meta.seq > self.applied_seq:
            return  # ahead of what this process has applied: mapped after a later follow
        if not index.mapped or meta.model != self.index.model:
            self._mapped_at = stamp  # another kind or model (a rebuild): the next start takes it
            return
        self._caught_up(index, meta.seq)  # what the index it replaces holds beyond the file
        self.index, self._mapped_at = index, stamp

    def _map_weights(self, path: Path) -> None:
        with self._index_files.held(shared=True):
            stamp = file_stamp(path)
            try:
                lexical, seq = LexicalIndex.map_weights(path, self.store.id)
            except (FileNotFoundError, ValueError) as exc:
                log.warning("the lexical weights at %s could not be mapped (%s): the current ones stay", path, exc)
                self._weights_at = stamp  # not tried again until the file changes
                return
        if seq > self.applied_seq:
            return  # ahead of what this process has applied: mapped after a later follow
        self._caught_up_lexical(lexical, seq)
        self.lexical, self._weights_at = lexical, stamp

    def _open_rows(self, path: Path) -> None:
        """Read candidate rows from the rows file at ``path`` where it is current (the caller holds the follow
        lock, or no other thread runs yet: no write is followed meanwhile)."""
        stamp = file_stamp(path)
        try:
            rows = open_rows_file(path, self.store.id)
        except (FileNotFoundError, ValueError) as exc:
            log.info("%s: candidate rows are read from the store until the next rows file", exc)
            self._rows_at = stamp  # not tried again until the file changes
            return
        if rows.seq > self.applied_seq:
            return  # ahead of what this process has applied: read after a later follow
        if rows.model != self.model.name or rows.dim != self.index.dim:
            self._rows_at = stamp  # another model (a re-embed): the next file is of this one
            return
        # Every key written since: those after what this process applied are dropped again as it follows them.
        self.rows.use_file(rows, self.store.changed_since(rows.seq))
        self._rows_at = stamp

    def _apply(self, changes: Iterable[Change]) -> None:
        live: list[Change] = []
        dead: list[int] = []
        for change in changes:
            (live.append(change) if change.published else dead.append(change.key))
        if live:
            keys = [c.key for c in live]
            self.index.add(np.array(keys), np.stack([c.live_vector for c in live]))
            self.lexical.add(keys, [self.text(c.live_article) for c in live])
            self.published.update(keys)
        self.index.remove(np.array(dead, dtype=np.int64))
        self.lexical.remove(dead)
        self.published.difference_update(dead)
        self.index = self._delta_bounded(self.index)

    def _load_overrides(self) -> None:
        seq = int(self.store.meta("overrides_seq") or 0)  # before the tables: a later change is read again
        self.blocked_everywhere = set(self.overrides.blocked_everywhere())
        self.box_blocks = self.overrides.all_blocks()
        self._overrides_seq = seq

    def _load_experiment(self) -> None:
        self._experiments_seq = self.experiments.version()  # before the table: a later change is read again
        self.experiment = running(self.experiments.active(), self.settings.experiment)

    def _invalidate(self, keys: Iterable[int]) -> None:
        """A new generation (no list cached before it is served); the parsed rows of ``keys`` (those written)
        are dropped, the others stay: a row changes only with a write of its own article."""
        self.rows.drop(list(keys))  # first: a list ranked under the new generation reads none of the old rows
        with self._cache_lock:
            self.generation += 1

    def warm_rows(self, chunk: int = 5000) -> None:
        """Parse the published rows into the candidate-row table now, when it holds them all: a refresher ranks
        hundreds of boxes a second, each reading ~200 rows, and a cold row costs more than its ranking. A table
        filled to its cap would start over at its first miss (9 s of a core lost at every start at 1M)."""
        keys = self.store.published_keys().tolist()
        if len(keys) > self.settings.rows_cache_max:
            return
        for start in range(0, len(keys), chunk):
            self.rows.articles(keys[start:start + chunk])
        self._rows_read = True

    def read_through(self, stop: threading.Event) -> None:
        """Read the index, lexical and rows files this server's processes read, then every article row unless there
        is a rows file, once (see the ``read_through`` setting), unless ``stop`` is set first; what fails is logged,
        never raised (it only makes the first lists slower)."""
        started = time.monotonic()
        files = (self.settings.index_path, self.settings.lexical_weights_path, self.settings.rows_path)
        try:
            size = _sum_until(stop, chain.from_iterable(read_through(path) for path in files))
            # Lists read their candidates from the rows file where there is one, and few article rows (those
            # shown): the store's rows read through then pushed the file's pages out of the cache.
            skip_rows = self._rows_read or self.rows.reads_file
            rows = None if size is None else 0 if skip_rows else _sum_until(stop, self.store.read_rows_through())
        except Exception:
            log.exception("reading the index files and article rows through failed: the first lists read them")
            return
        if size is None or rows is None:
            return
        log.info("read %.0f MB of index files and %d article rows into the page cache in %.1f s", size / 1e6, rows,
                 time.monotonic() - started)

    def checkpoint(self) -> bool:
        """Save the indexes if they moved since the last save, stamped with the sequence they have applied (never
        the store's head: another process may have written what they do not hold yet); then the lexical weights
        for the processes that map them, derived from what was saved, outside the locks (writes need not wait)."""
        self.follow()
        with self._follow_lock:
            seq = self.applied_seq
            weights_due = self._weights_due(seq)
            rows_due = self._rows_due(seq)
            if seq == self._saved_seq and seq == self._lexical_saved_seq and not weights_due and not rows_due:
                return False
            live = None if self.lexical.mapped else self.lexical.live_counts()
            with self._index_files.held():
                if seq != self._saved_seq and self.saves_index:
                    self._save_index(seq)
                if seq != self._lexical_saved_seq and live is not None:
                    save_counts(self.settings.lexical_path, live, seq, self.store.id)
                    self.settings.legacy_lexical_path.unlink(missing_ok=True)
            self._saved_seq = self._lexical_saved_seq = seq
        if weights_due and live is not None:
            self._write_weights(live, seq)
        if rows_due:
            self._write_rows(seq)
        return True

    def rebuild_index(self, kind: str, progress: bool = False) -> None:
        """Replace the index by one of ``kind`` built from the store's vectors, and save it. The rebuild reads the
        store after the sequence it is stamped with: a write it holds already is applied again (an add replaces)."""
        with self._follow_lock:
            self.follow()
            seq = self.applied_seq
            self.index = rebuilt_index(self.store, kind, self.index.model, progress)
            self._map_only_mappable()
            with self._index_files.held():
                self._save_index(seq, rebuilt=True)
            self._saved_seq = seq

    def _save_index(self, seq: int, rebuilt: bool = False) -> None:
        """Save the index stamped ``seq`` (``rebuilt``: as this process just rebuilt it, of its own kind), then map
        what was saved where this process maps its index. The caller holds the follow lock and the index files'
        lock."""
        path = self.settings.index_path
        adopts = not rebuilt and self._rebuilt_elsewhere()
        whole = self._whole_index(self.index) if self.index.mapped or adopts else self.index
        whole.save(path, seq, self.store.id)
        self.index = whole
        self._map_only_mappable()
        if not self.maps_index:
            return
        # Mapped again, the whole copy is dropped: between checkpoints the writer's pages are the workers'.
        self.index, _ = load_index(path, mmap=True, store=self.store.id)
        self._mapped_at = saved_at(path)

    def _map_only_mappable(self) -> None:
        """Stop mapping the checkpoint where the index is of a kind FAISS reads whole (ivfpq): each checkpoint would
        be read whole, then dropped."""
        if self.index.kind not in MAPPABLE_KINDS:
            self.maps_index = False

    def _rebuilt_elsewhere(self) -> bool:
        """Whether the checkpoint on disk is of another kind than this process's index, for the same model: another
        process rebuilt it (an import's server held its index whole while the import rebuilt the file as the kind
        for the corpus size), and this process's save takes that kind instead of writing its own over it."""
        on_disk = checkpoint_kind(self.settings.index_path)
        return on_disk is not None and on_disk[0] != self.index.kind and on_disk[1:] == (self.index.model,
                                                                                        self.index.dim)

    def _delta_bounded(self, index: VectorIndex) -> VectorIndex:
        """``index``, or the same held whole where this process saves the checkpoint and ``index`` holds more than
        ``DELTA_MAX`` vectors beside the file it maps (saved, and mapped again, at the next checkpoint)."""
        if not self.saves_index or index.delta_count() <= DELTA_MAX:
            return index
        with self._index_files.held(shared=True):
            return self._whole_index(index)

    def _whole_index(self, mapped: VectorIndex) -> VectorIndex:
        """A mapped index held whole (something FAISS can add to and save): the checkpoint it maps read again, not
        mapped, with every write since applied; rebuilt from the store if that file is gone or of another model.
        The caller holds the follow lock and the index files' lock."""
        path = self.settings.index_path
        try:
            index, meta = load_index(path, store=self.store.id)
        except (FileNotFoundError, ValueError) as exc:
            log.warning("%s: rebuilding the index from the store", exc)
        else:
            if meta.model == mapped.model and meta.dim == mapped.dim:
                self._caught_up(index, meta.seq)
                return index
        index = VectorIndex(mapped.dim, mapped.kind, mapped.model, size_hint=len(mapped), chosen=mapped.chosen)
        self._caught_up(index, 0)
        return index

    def _write_weights(self, live: LiveCounts, seq: int) -> None:
        """Derive the lexical weights of ``live`` (no lock held: seconds at 1M articles), then write them under
        the index files' lock, unless another process (an ingest beside the server) wrote newer ones meanwhile."""
        path = self.settings.lexical_weights_path
        with self._weights_lock:
            if seq <= self._weights_saved_seq:
                return
            arrays, metadata = weights_file(live, seq, self.store.id)
            with self._index_files.held():
                if saved_weights_seq(path, self.store.id) < seq:
                    save_arrays(path, arrays, metadata)
            self._weights_saved_seq, self._weights_written = seq, time.monotonic()

    def _weights_due(self, seq: int) -> bool:
        """Whether this checkpoint writes the lexical weights: in the process that writes (the others map them),
        when there are none yet, or something changed since the last and enough time or enough changes passed
        (each costs a pass over every article; the readers weigh the changes since with the last ones)."""
        if not self.settings.index_mmap or self.maps_lexical:
            return False
        return self._file_due(seq, self._weights_saved_seq, self._weights_written)

    def _rows_due(self, seq: int) -> bool:
        """Whether this checkpoint writes the rows file: as ``_weights_due``, in the process that saves the index
        (each costs a copy of the last and a read of what changed since; the readers read those from the store)."""
        if not self.settings.index_mmap or not self.saves_index:
            return False
        return self._file_due(seq, self._rows_saved_seq, self._rows_written)

    def _file_due(self, seq: int, saved_seq: int, written: float) -> bool:
        """A derived file saved at ``saved_seq`` (-1: none) and ``written`` (monotonic) is due again at ``seq``."""
        if seq == saved_seq:
            return False
        return saved_seq < 0 or seq - saved_seq >= REWEIGH_MIN or \
            time.monotonic() - written >= self.settings.lexical_weights_interval_s

    def _write_rows(self, seq: int) -> None:
        """Write the rows file at ``seq`` (no follow or index lock held), unless another process (an ingest beside
        the server) wrote one as new meanwhile or is writing one now; then read rows from it."""
        path = self.settings.rows_path
        with self._rows_lock:
            if not self._rows_files.try_exclusive():
                return  # another process writes one: read from at the next check
            try:
                if rows_file_seq(path, self.store.id) < seq:
                    write_rows_file(path, self.store, seq, self.model.name, self.index.dim)
            except Exception:  # never the checkpoint's failure (nor a close's): lists read the store's rows instead
                log.exception("writing the rows file failed: candidates are read from the store until the next one")
            finally:
                self._rows_files.release()
                # A failure waits as a write does; two checkpoints at once never move it back.
                self._rows_saved_seq, self._rows_written = max(seq, self._rows_saved_seq), time.monotonic()
        with self._follow_lock:
            self._open_rows(path)
