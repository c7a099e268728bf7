"""The recommender: store + embedder + FAISS index + lexical index, kept consistent, answering "similar" queries.

This is the one implementation of the list: the HTTP service, the CLI and evaluation notebooks all call it."""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from index import VectorIndex, index_kind_for, load_index
from recommender.article import Article, content_hash, embedding_text
from recommender.embed import TextEmbedder, load_embedder, model_name
from recommender.events import EventLog, EventStore
from recommender.experiments import Experiment, ExperimentStore, named, running
from recommender.lexical import LexicalIndex
from recommender.listing import DEFAULT_VARIANT, box_format, item_json, list_json
from recommender.locks import FileLock
from recommender.overrides import BoxOverrides, OverrideStore
from recommender.popularity import Popularity
from recommender.rank import (
    Candidates,
    Ranking,
    Recommendation,
    SimilarQuery,
    days_between,
    passes_filters,
    rank,
    with_pins,
)
from recommender.rows import RowTable
from recommender.settings import Settings
from recommender.specs import STRATEGIES, ExperimentSpec
from recommender.store import open_store
from recommender.store.articles import Change, StoredArticle
from recommender.store.sql import StoreUnavailable

log = logging.getLogger("recommender")

DEFAULT_QUERY = SimilarQuery()
# Candidate rows kept parsed (about 1-2 KB each, so at most a few hundred MB); a write drops only its own.
ROWS_CACHE_MAX = 200_000


class ArticleNotFound(KeyError):
    def __init__(self, article_id: str):
        super().__init__(article_id)
        self.article_id = article_id

    def __str__(self) -> str:
        return f"no article with id {self.article_id!r}"


@dataclass(frozen=True, slots=True)
class UpsertResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0  # same embedded text: stored, not re-embedded
    embedded: int = 0

    def __add__(self, other: UpsertResult) -> UpsertResult:
        return UpsertResult(self.created + other.created, self.updated + other.updated,
                            self.unchanged + other.unchanged, self.embedded + other.embedded)


def _hash_of(stored: dict[str, StoredArticle], article_id: str) -> str | None:
    return stored[article_id].content_hash if article_id in stored else None


def _rows_to_write(articles: Sequence[Article], hashes: Sequence[str], vectors: dict[int, np.ndarray],
                   known: dict[str, StoredArticle]) -> tuple[list[tuple[Article, str, np.ndarray]],
                                                             list[tuple[Article, np.ndarray]]]:
    """The (article, hash, vector) rows to store, leaving out articles stored exactly as sent, and those of them
    (with their vectors) that may enter boxes they were not in: new, new text (``vectors`` holds the new
    embeddings by position), back from unpublished, or moved in time or language (the window and the language
    rule admit them elsewhere). Boxes that already hold an article are queued by the store whatever changed."""
    rows, entering = [], []
    for i, article in enumerate(articles):
        before = known.get(article.id)
        if before is not None and i not in vectors and before.article == article:
            continue
        vector = vectors[i] if i in vectors else known[article.id].vector  # not re-embedded: stored, same text
        rows.append((article, hashes[i], vector))
        moved = before is None or not before.article.is_published or i in vectors or (
            (before.article.published_at, before.article.language) != (article.published_at, article.language))
        if article.is_published and moved:
            entering.append((article, vector))
    return rows, entering


class Recommender:
    """Open one per data dir and process; thread-safe for concurrent reads and writes."""

    def __init__(self, settings: Settings, embedder: TextEmbedder | None = None, index_kind: str | None = None):
        self.settings = settings
        self.ranking = Ranking.from_settings(settings)
        # Ranking multiplies small matrices (200 x 384): BLAS threads there cost far more than they give (a box
        # took 45 ms with OpenBLAS on every core, 3 ms on one; torch's own threads for encoding are not BLAS's).
        threadpool_limits(1, user_api="blas")
        # Loaded on first use: serving stored boxes and ranking stored articles need no model.
        self._embedder = embedder
        self._embedder_lock = threading.Lock()
        self.model_load_seconds: float | None = None
        # Told how long the model took to load, once it has (the service's metrics).
        self.on_model_load: Callable[[float], None] | None = None
        self._model_name = embedder.name if embedder is not None else model_name(settings.model)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = open_store(settings)
        self.overrides = OverrideStore(self.store)
        self.experiments = ExperimentStore(self.store)
        self.event_store = EventStore(self.store)
        self.events = EventLog(self.event_store, settings.events_flush_interval_s, settings.events_max_pending,
                               settings.events_retention_days)
        self.popularity = Popularity(self.event_store, settings.popularity_half_life_days)
        self._experiment: Experiment | None = None
        self._experiments_seq = -1
        self._write_lock = threading.RLock()
        # Held while the indexes move to a newer store sequence (whoever wrote it: this process or another).
        self._follow_lock = threading.RLock()
        # Bumped by every change followed; the service's list cache (service.cache) keys on it.
        self._generation = 0
        self._cache_lock = threading.Lock()  # guards _generation
        # Candidate rows by key, parsed once for many lists; a followed write drops its own.
        self.rows = RowTable(self.store.by_keys, ROWS_CACHE_MAX)
        self._saved_seq = 0
        self._applied_seq = 0  # the store sequence the in-memory indexes reflect (never ahead of them)
        self._overrides_seq = -1
        self._blocked_everywhere: set[str] = set()
        self._box_blocks: dict[str, frozenset[str]] = {}
        # Several processes save and load the index files: one at a time (an HNSW graph's hidden slots in the
        # meta file only make sense with the index file written by the same process).
        self._index_files = FileLock(settings.data_dir / "index.lock")
        self._reembed_if_model_changed()
        self.index = self._open_index(index_kind)
        self.lexical = self._open_lexical()
        self._published = set(self.store.published_keys().tolist())
        self._load_overrides()
        self._load_experiment()
        self.follow()  # writes committed while the indexes were read
        self._requeue_boxes_of_other_format()

    @property
    def embedder(self) -> TextEmbedder:
        with self._embedder_lock:  # two first requests at once load the weights once
            if self._embedder is None:
                started = time.perf_counter()
                self._embedder = load_embedder(self.settings.model, self.settings.batch_size,
                                               self.settings.device, self.settings.embed_threads)
                self.model_load_seconds = time.perf_counter() - started
                if self.on_model_load is not None:
                    self.on_model_load(self.model_load_seconds)
        return self._embedder

    # -- opening and repair -------------------------------------------------------------------
    def _reembed_if_model_changed(self) -> None:
        stored_model = self.store.meta("model")
        if stored_model is not None and stored_model != self._model_name and self.store.count():
            log.warning("store was embedded with %s, now configured %s: re-embedding every article",
                        stored_model, self._model_name)
            # In place, chunk by chunk: a crash midway leaves the old model's name in the store, so the next
            # start re-embeds again, and no article is ever missing meanwhile.
            articles = [a for _, a in self.store.articles()]
            self._upsert(articles, progress=True, total=len(articles), index=None, reembed=True)
        if stored_model != self._model_name:
            self.store.set_meta("model", self._model_name)

    def _requeue_boxes_of_other_format(self) -> None:
        """Boxes stored by code writing other items (another excerpt length, other ranking values) are never
        served."""
        requeued = self.store.requeue_boxes_of_other_format(box_format(self.settings.excerpt_chars, self.ranking))
        if requeued:
            log.info("%d stored boxes hold items of another format: queued for a refresh", requeued)

    def _open_index(self, kind: str | None) -> VectorIndex:
        path = self.settings.index_path
        index, seq = None, 0
        try:
            with self._index_files.held(shared=True):
                index, meta = load_index(path)
            if meta.model != self._model_name or meta.dim != self._dim():
                log.warning("index %s was built for %s (dim %d): rebuilding for %s", path, meta.model, meta.dim,
                            self._model_name)
                index = None
            else:
                seq = meta.seq
        except FileNotFoundError:
            log.info("no index at %s yet: building it from the store", path)
        except ValueError as exc:
            log.warning("%s: rebuilding the index from the store", exc)
        if index is None:
            # Default: the kind for the corpus size (index.index_kind_for); a loaded index keeps its kind.
            kind = kind or index_kind_for(len(self.store.published_keys()))
            index = VectorIndex(self._dim(), kind, self._model_name)
        self._repair(index, seq)
        return index

    def _dim(self) -> int:
        """The vectors' dimension: the stored vectors' (no model load), or the model's for an empty store."""
        if self._embedder is None:
            stored = self.store.by_keys(self.store.published_keys()[:1].tolist())
            if stored:
                return len(next(iter(stored.values()))[1])
        return self.embedder.dim

    def _repair(self, index: VectorIndex, seq: int) -> None:
        """Make the index mirror the store: apply writes after ``seq``, drop what the store no longer publishes."""
        store_seq = self.store.seq
        published: list[Change] = []
        gone: list[Change] = []
        for change in self.store.changes_since(seq):
            (published if change.published else gone).append(change)
        if published:
            index.add(np.array([c.key for c in published]), np.stack([c.live_vector for c in published]))
        index.remove(np.array([c.key for c in gone], dtype=np.int64))
        stale = np.setdiff1d(index.ids(), self.store.published_keys())
        index.remove(stale)
        if published or gone or len(stale) or seq != store_seq:
            log.info("index repaired: %d added or updated, %d dropped", len(published), len(gone) + len(stale))
            with self._index_files.held():
                index.save(self.settings.index_path, store_seq)
        self._saved_seq = self._applied_seq = store_seq

    def _open_lexical(self) -> LexicalIndex:
        """The saved lexical index brought up to the store (as the FAISS index is), else one built from it."""
        path = self.settings.lexical_path
        try:
            lexical, seq = LexicalIndex.load(path)
        except (FileNotFoundError, ValueError) as exc:
            log.info("%s: building the lexical index from the store", exc)
            seq = self.store.seq  # before the corpus is read: later writes are applied again below
            lexical = LexicalIndex()
            lexical.build(*self._lexical_corpus())
            self._lexical_saved_seq = -1  # saved at the next checkpoint
        else:
            self._lexical_saved_seq = seq
        live: list[Change] = []
        dead: list[Change] = []
        for change in self.store.changes_since(seq):
            (live if change.published else dead).append(change)
        lexical.add([c.key for c in live], [self._text(c.live_article) for c in live])
        lexical.remove([c.key for c in dead])
        return lexical

    def _lexical_corpus(self) -> tuple[list[int], list[str]]:
        keys, texts = [], []
        for key, article in self.store.articles():
            if article.is_published:
                keys.append(key)
                texts.append(self._text(article))
        return keys, texts

    def _text(self, article: Article) -> str:
        return embedding_text(article, self.settings.body_chars)

    # -- writes ---------------------------------------------------------------------------------
    def upsert(self, articles: Iterable[Article], progress: bool = False, total: int | None = None) -> UpsertResult:
        """Store, embed (only what changed) and index articles; a repeated id in one call: the last one wins.

        Work goes in chunks, each one durable when it returns, so a crash loses at most the chunk in flight."""
        return self._upsert(articles, progress, total, index=self.index, reembed=False)

    def upsert_all(self, articles: Sequence[Article]) -> UpsertResult:
        """``upsert`` in one store transaction: every article is written, or (after a crash) none of them."""
        unique = list({a.id: a for a in articles}.values())  # a repeated id: the last one wins
        return self._upsert_chunk(unique, self.index, reembed=False) if unique else UpsertResult()

    def _upsert(self, articles: Iterable[Article], progress: bool, total: int | None, index: VectorIndex | None,
                reembed: bool) -> UpsertResult:
        result = UpsertResult()
        bar = tqdm(total=total, unit="article", desc="ingest", disable=not progress)
        chunk: dict[str, Article] = {}
        for article in articles:
            chunk[article.id] = article
            if len(chunk) >= self.settings.ingest_chunk:
                result += self._upsert_chunk(list(chunk.values()), index, reembed)
                bar.update(len(chunk))
                chunk = {}
        if chunk:
            result += self._upsert_chunk(list(chunk.values()), index, reembed)
            bar.update(len(chunk))
        bar.close()
        return result

    def _upsert_chunk(self, articles: Sequence[Article], index: VectorIndex | None, reembed: bool) -> UpsertResult:
        """One store transaction; ``reembed`` embeds every article, not only those whose text changed. An article
        stored exactly as sent is not written again (a re-ingest of an unchanged archive changes nothing)."""
        texts = [self._text(a) for a in articles]
        hashes = [content_hash(t) for t in texts]
        with self._write_lock:
            if index is not None:
                self.follow()  # the neighbour search below must see every article already stored
            known = self.store.stored(a.id for a in articles)
            todo = [i for i, a in enumerate(articles) if reembed or _hash_of(known, a.id) != hashes[i]]
            # The model sorts each call's texts by length, so batches hold texts of similar length.
            new_vectors = self.embedder.encode([texts[i] for i in todo])
            vectors = dict(zip(todo, new_vectors, strict=True))
            rows, entering = _rows_to_write(articles, hashes, vectors, known)
            stale = self._boxes_it_may_enter(entering) if entering and index is not None else []
            self.store.upsert(rows, stale_boxes=stale)
            if index is not None:
                self.follow()
        created = sum(1 for a in articles if a.id not in known)
        return UpsertResult(created=created, updated=len(todo) - created,
                            unchanged=len(articles) - len(todo), embedded=len(todo))

    def _boxes_it_may_enter(self, entering: Sequence[tuple[Article, np.ndarray]],
                            neighbours: int | None = None) -> list[int]:
        """Keys of the boxes that articles (with their vectors) may now enter: among each one's nearest
        ``neighbours`` (default ``refresh_neighbours``) articles, those whose box's hard rules admit it (language,
        freshness window) and whose box is not full or has a lowest score it could beat (its best possible score:
        full lexical match, no recency loss, MMR's largest penalty)."""
        scores, found = self.index.search(np.stack([v for _, v in entering]),
                                          neighbours or self.settings.refresh_neighbours)
        # Each neighbour once: a batch of thousands of new articles shares most of its neighbours.
        rows = self.rows.gather(np.unique(found[found >= 0]).tolist())
        boxes = dict(zip(rows.keys.tolist(), rows.articles, strict=True))
        floors = self.store.floors(list(boxes))
        w, mmr, pw = self.ranking.lexical_weight, self.ranking.mmr_lambda, self.ranking.popularity_weight
        margin = (1 - mmr) / max(mmr, 1e-9)
        default = DEFAULT_QUERY
        out: set[int] = set()
        for (article, _), row_scores, row_keys in zip(entering, scores.tolist(), found.tolist(), strict=True):
            for cosine, key in zip(row_scores, row_keys, strict=True):
                if key not in boxes or key in out:
                    continue
                box = boxes[key]
                days = days_between(box.published_at, article.published_at)
                if not passes_filters(box, article, default, self.ranking, days):
                    continue
                if floors.get(key) is None or (1 - pw) * ((1 - w) * cosine + w) + pw + margin >= floors[key]:
                    out.add(key)
        return sorted(out)

    def delete(self, article_id: str) -> bool:
        """Take an article down: it leaves every list from the next call on, in every process."""
        with self._write_lock:
            key = self.store.delete(article_id)
            self.follow()
            return key is not None

    # -- following the store --------------------------------------------------------------------
    def current_generation(self) -> int | None:
        """The generation, if this process has applied every write in the store (one point read), else None.
        While the store is unreachable nothing can be written, so what this process applied is the latest."""
        try:
            head = self.store.seq
        except StoreUnavailable:
            return self._generation
        return self._generation if head == self._applied_seq else None

    def follow(self) -> bool:
        """Bring the indexes and editorial state to the store's latest sequence, whoever wrote it (this
        process, another worker, a CLI ingest); one point read when nothing moved. True when something did."""
        if self.store.seq == self._applied_seq:
            return False
        with self._follow_lock:
            head = self.store.seq  # read first: every change up to it is in what changes_since reads next
            if head == self._applied_seq:
                return False
            changes = list(self.store.changes_since(self._applied_seq))
            self._apply(changes)
            if int(self.store.meta("overrides_seq") or 0) != self._overrides_seq:
                self._load_overrides()
            if self.experiments.version() != self._experiments_seq:
                self._load_experiment()
            self.store.followed(self._applied_seq, head)
            # Invalidate before moving the sequence: a reader in between sees the sequence still behind (no
            # cache) rather than the new sequence with the old generation (lists cached before the change).
            self._invalidate([c.key for c in changes])
            self._applied_seq = head
            return True

    def _apply(self, changes: Iterable[Change]) -> None:
        live: list[Change] = []
        dead: list[int] = []
        for change in changes:
            (live.append(change) if change.published else dead.append(change.key))
        if live:
            keys = [c.key for c in live]
            self.index.add(np.array(keys), np.stack([c.live_vector for c in live]))
            self.lexical.add(keys, [self._text(c.live_article) for c in live])
            self._published.update(keys)
        self.index.remove(np.array(dead, dtype=np.int64))
        self.lexical.remove(dead)
        self._published.difference_update(dead)

    def _load_overrides(self) -> None:
        seq = int(self.store.meta("overrides_seq") or 0)  # before the tables: a later change is read again
        self._blocked_everywhere = set(self.overrides.blocked_everywhere())
        self._box_blocks = self.overrides.all_blocks()
        self._overrides_seq = seq

    def _load_experiment(self) -> None:
        self._experiments_seq = self.experiments.version()  # before the table: a later change is read again
        self._experiment = running(self.experiments.active(), self.settings.experiment)

    def _invalidate(self, keys: Iterable[int]) -> None:
        """A new generation (no list cached before it is served); the parsed rows of ``keys`` (those written)
        are dropped, the others stay: a row changes only with a write of its own article."""
        self.rows.drop(list(keys))  # first: a list ranked under the new generation reads none of the old rows
        with self._cache_lock:
            self._generation += 1

    def checkpoint(self) -> bool:
        """Save the index if it moved since the last save, stamped with the sequence it has applied (never
        the store's head: another process may have written what this index does not hold yet)."""
        self.follow()
        with self._follow_lock:
            seq = self._applied_seq
            if seq == self._saved_seq and seq == self._lexical_saved_seq:
                return False
            with self._index_files.held():
                self.index.save(self.settings.index_path, seq)
                self.lexical.save(self.settings.lexical_path, seq)
            self._saved_seq = self._lexical_saved_seq = seq
            return True

    def close(self) -> None:
        """Checkpoint the index and close the store; ``with Recommender(settings) as engine:`` does it."""
        self.checkpoint()
        self.events.close()  # what was acknowledged is stored already; this writes what is still queued
        self.store.close()

    def __enter__(self) -> Recommender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reads ----------------------------------------------------------------------------------
    def get(self, article_id: str, include_unpublished: bool = True) -> Article:
        """The stored article; an unpublished one (taken down, or not out yet) is not found for the public
        (``include_unpublished=False``)."""
        stored = self.store.get(article_id)
        if stored is None or not (include_unpublished or stored.article.is_published):
            raise ArticleNotFound(article_id)
        return stored.article

    def find(self, text: str, limit: int = 20, include_unpublished: bool = True) -> list[Article]:
        """Articles for an editor's search: the one with this id, then those whose title holds the text
        (published ones only, for the public)."""
        return self.store.find(text, limit, include_unpublished)

    @property
    def generation(self) -> int:
        """Bumped by every write that can change a list; equal generations mean equal lists."""
        return self._generation

    def similar(self, article_id: str, query: SimilarQuery = DEFAULT_QUERY) -> list[Recommendation]:
        """The "Similar news" list for an indexed article, ranked now."""
        self.follow()
        stored = self.store.get(article_id)
        if stored is None:
            raise ArticleNotFound(article_id)
        return self._list(stored.article, stored.vector, self.overrides.box(article_id), query)

    def _list(self, source: Article, vector: np.ndarray, box: BoxOverrides, query: SimilarQuery,
              neighbours: np.ndarray | None = None) -> list[Recommendation]:
        pins = self._pinned(source, vector, box, query)
        # Ranked deep enough that pinned items taken out still leave ``limit`` (so any list is a prefix of a
        # deeper one: a stored box cut to a limit is the list asked with that limit).
        ranked = self._ranked(source, vector, replace(query, exclude=query.exclude | box.blocks,
                                                      limit=query.limit + len(pins)), neighbours)
        return with_pins(ranked, pins, query.limit)

    def list_json(self, article_id: str | None, items: Sequence[Recommendation],
                  variant: str = DEFAULT_VARIANT) -> bytes:
        """The response body of a list ranked now (the same bytes a stored box gives)."""
        return list_json(article_id, [item_json(r, self.settings.excerpt_chars) for r in items], variant)

    def list_body(self, article_id: str, query: SimilarQuery,
                  variant: str = DEFAULT_VARIANT) -> tuple[bytes, str]:
        """A list's response body and where it came from: a default query's stored box (``"stored"``) when
        there is a fresh one, else ranked now (``"ranked"``); the same bytes either way. If the database goes
        away while a default list is ranked (PostgreSQL), its stored box as this process last read it."""
        default = query == replace(DEFAULT_QUERY, limit=query.limit)
        if default:
            body = self.stored_list_json(article_id, query.limit, variant)
            if body is not None:
                return body, "stored"
        try:
            return self.list_json(article_id, self.similar(article_id, query), variant), "ranked"
        except StoreUnavailable:
            body = self.stored_list_json(article_id, query.limit, variant, unranked=True) if default else None
            if body is None:
                raise
            return body, "stored"

    def stored_list_json(self, article_id: str, limit: int, variant: str = DEFAULT_VARIANT,
                         unranked: bool = False) -> bytes | None:
        """The default list from the article's stored box, or None when there is no fresh one (no box yet,
        a refresh queued, or ``limit`` deeper than stored): then the caller ranks on demand.

        Needs no follow (it never waits on one): every write that can change a box queues it in the write's
        own transaction, so a box that is not queued is current. Items this process knows are gone
        (deleted, unpublished, blocked) are dropped all the same and the list backfilled from the stored depth.
        ``unranked``: nothing can be ranked (the store is unreachable), so the box is served even if a refresh is
        pending, and an item with a folded report this process does not know as published is dropped too,
        rather than the whole box."""
        if limit > self.settings.box_depth:
            return None
        try:
            box = self.store.box(article_id)
        except StoreUnavailable:
            return None  # ranked on demand, which answers 503 while the store is unreachable
        if box is None or (box.pending and not unranked):
            return None
        published, blocked = self._published, self._blocked_everywhere
        here = self._box_blocks.get(article_id, frozenset())
        if any(not published.issuperset(also) for *_, also in box.items):
            if not unranked:
                return None  # a report folded into an item is gone: its JSON lists it, so rank the list afresh
            box = replace(box, items=[item for item in box.items if published.issuperset(item[3])])
        items = [item for key, item_id, item, _ in box.items
                 if key in published and item_id not in blocked and item_id not in here]
        return list_json(article_id, items[:limit], variant)

    # -- stored boxes ---------------------------------------------------------------------------
    def refresh_boxes(self, keys: Sequence[int]) -> int:
        """Recompute the default boxes of ``keys`` with the ranking of ``similar`` and store them, taking them
        off the queue, in one transaction; returns how many were stored. The FAISS search runs once for all."""
        self.follow()
        seq = self._applied_seq
        rows = self.store.by_keys(list(keys))
        live = [key for key in keys if key in rows and rows[key][0].is_published]
        k = self._candidate_count(len(self._blocked_everywhere))
        found: Any = self.index.search(np.stack([rows[key][1] for key in live]), k)[1] if live else []
        query = SimilarQuery(limit=self.settings.box_depth)
        lists = {key: self._list(rows[key][0], rows[key][1], self.overrides.box(rows[key][0].id), query, neighbours)
                 for key, neighbours in zip(live, found, strict=True)}
        # One read for the batch; an item deleted since it was ranked has no key: its box stays queued.
        item_keys = self.store.keys_of(list({a.id for items in lists.values() for r in items
                                             for a in (r.article, *r.also)}))
        # (box key, its article id, its items, its floor); a gone box: only taken off the queue
        boxes: list[tuple[int, str, list[Any], float | None]] = [(key, "", [], None) for key in keys
                                                                  if key not in live]
        for key, items in lists.items():
            if all(a.id in item_keys for r in items for a in (r.article, *r.also)):
                boxes.append((key, rows[key][0].id, [(item_keys[r.id], r.id, item_json(r, self.settings.excerpt_chars),
                                                      [item_keys[a.id] for a in r.also]) for r in items],
                              self._floor(items)))
        self.store.write_boxes(boxes, seq)
        return len(live)

    def _floor(self, items: Sequence[Recommendation]) -> float | None:
        """A stored box's lowest ranked score when the box is full, else None (any article may enter it)."""
        ranked = [r.score for r in items if not r.pinned]
        return min(ranked) if len(ranked) >= self.settings.box_depth else None

    def _pinned(self, source: Article, vector: np.ndarray, box: BoxOverrides,
                query: SimilarQuery) -> list[tuple[int, Recommendation]]:
        """The box's pins that may show: published, not blocked everywhere, not the source or excluded."""
        out = []
        for pin in box.pins:
            stored = self.store.get(pin.item_id)
            if (stored is None or not stored.article.is_published or pin.item_id == source.id
                    or pin.item_id in self._blocked_everywhere or pin.item_id in query.exclude):
                continue
            out.append((pin.position, Recommendation(stored.article, round(float(stored.vector @ vector), 6),
                                                     pinned=True)))
        return out

    # -- editorial overrides --------------------------------------------------------------------
    def box_overrides(self, article_id: str, include_unpublished: bool = True) -> BoxOverrides:
        """An article's pins and blocks; not found for the public while it is unpublished."""
        self.get(article_id, include_unpublished)
        return self.overrides.box(article_id)

    def set_box_overrides(self, article_id: str, overrides: BoxOverrides) -> None:
        """Replace the pins and blocks of an article's box; takes effect on the next request."""
        self.get(article_id)
        with self._write_lock:
            self.overrides.set_box(article_id, overrides)
            self.follow()

    def blocked_everywhere(self) -> dict[str, str]:
        return self.overrides.blocked_everywhere()

    def block_everywhere(self, item_id: str, reason: str = "") -> None:
        """Keep an article out of every box (e.g. for legal reasons), whether or not it is indexed yet."""
        with self._write_lock:
            self.overrides.block_everywhere(item_id, reason)
            self.follow()

    def unblock_everywhere(self, item_id: str) -> bool:
        """Let an item back into the boxes; the boxes it may enter again are queued with the unblock."""
        with self._write_lock:
            stored = self.store.get(item_id)
            # As wide as a box's own candidates: an unblocked item may return as a box's section fallback, below
            # its nearest neighbours (rare enough to search widely; a new article's write searches the nearest).
            entering = self._boxes_it_may_enter([(stored.article, stored.vector)], self._candidate_count(0)) \
                if stored is not None and stored.article.is_published else []
            found = self.overrides.unblock_everywhere(item_id, entering)
            self.follow()
            return found

    # -- experiments ----------------------------------------------------------------------------
    @property
    def running_experiment(self) -> Experiment | None:
        """The experiment that splits list requests now (activated over the API, else in settings), if any."""
        return self._experiment

    def experiment(self, name: str) -> Experiment | None:
        """An experiment by name: defined over the API, or the one in settings."""
        return named(self.experiments, self.settings.experiment, name)

    def all_experiments(self) -> list[Experiment]:
        """Every experiment defined over the API, the latest first, then the one in settings (if not redefined)."""
        stored = self.experiments.all()
        configured = self.settings.experiment
        if configured is not None and all(e.name != configured.name for e in stored):
            stored.append(self.experiment(configured.name) or Experiment(configured))
        return stored

    def define_experiment(self, spec: ExperimentSpec, active: bool = True) -> Experiment:
        """Define or redefine an experiment (activating it stops the running one); every process follows."""
        with self._write_lock:
            experiment = self.experiments.put(spec, active)
            self.follow()
            return experiment

    def similar_to_text(self, title: str, text: str = "", query: SimilarQuery = DEFAULT_QUERY) -> list[Recommendation]:
        """The list for an article that is not indexed (a CMS preview)."""
        article = Article(id="", title=title, body=text)
        vector = self.embedder.encode([self._text(article)])[0]
        return self._ranked(article, vector, query)

    def _candidate_count(self, excluded: int) -> int:
        # Room for excluded ids among the neighbours (capped: a long legal block list must not widen every search).
        return self.settings.candidates + min(excluded, self.settings.candidates) + 1

    def _ranked(self, source: Article, vector: np.ndarray, query: SimilarQuery,
                neighbours: np.ndarray | None = None) -> list[Recommendation]:
        """``neighbours``: the index's nearest keys for ``vector`` when the caller searched already (in batch)."""
        if query.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {query.strategy!r}; choose one of {', '.join(STRATEGIES)}")
        query = replace(query, exclude=query.exclude | self._blocked_everywhere)
        k = self._candidate_count(len(query.exclude))
        keys: list[int] = []
        if query.strategy in ("default", "embedding"):
            if neighbours is None or len(neighbours) < k:
                neighbours = self.index.search(vector, k)[1][0]
            keys += [int(x) for x in neighbours[:k] if x >= 0]
        scorer = None
        if query.strategy in ("default", "tfidf", "bm25"):
            # One scorer: the text is counted and scored against the corpus once, for the search and the scores.
            scorer = self.lexical.scorer(self._text(source), "tfidf" if query.strategy == "tfidf" else "bm25")
            _, found = scorer.search(k)
            seen = set(keys)
            keys += [int(x) for x in found if int(x) not in seen]
        rows = self.rows.gather(keys)
        if not len(rows.articles):
            return []
        lexical = scorer.scores_for(rows.keys.tolist()) if scorer is not None else np.zeros(len(rows.keys))
        weighs_popularity = query.strategy == "default" and self.ranking.for_query(query).popularity_weight
        popular = self.popularity.scores() if weighs_popularity else {}
        popularity = np.array([popular.get(a.id, 0.0) for a in rows.articles]) if popular else \
            np.zeros(len(rows.keys))
        candidates = Candidates(rows.articles, rows.vectors, (rows.vectors @ vector).astype(np.float64),
                                lexical.astype(np.float64), popularity, rows.facts)
        return rank(source, vector, candidates, query, self.ranking)

    def warm_rows(self, chunk: int = 5000) -> None:
        """Parse the published rows into the candidate-row table now (up to its cap): a refresher ranks hundreds
        of boxes a second, each reading ~200 rows, and a cold row costs more than its ranking."""
        keys = self.store.published_keys().tolist()[:ROWS_CACHE_MAX]
        for start in range(0, len(keys), chunk):
            self.rows.gather(keys[start:start + chunk])

    def with_ranking(self, **changes: Any) -> Recommender:
        """A view of this recommender with other ``Ranking`` values (for tuning in notebooks); shares all else."""
        view = copy.copy(self)
        view.ranking = replace(self.ranking, **changes)
        return view
