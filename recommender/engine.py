"""The recommender: store + embedder + FAISS index + lexical index, kept consistent, answering "similar" queries.

This is the one implementation of the list: the HTTP service, the CLI and evaluation notebooks all call it."""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from index import VectorIndex, index_kind_for, load_index
from recommender.article import Article, content_hash, embedding_text
from recommender.embed import TextEmbedder, load_embedder
from recommender.lexical import LexicalIndex
from recommender.overrides import BoxOverrides, OverrideStore
from recommender.rank import STRATEGIES, Candidate, Ranking, Recommendation, SimilarQuery, rank, with_pins
from recommender.settings import Settings
from recommender.store import ArticleStore, Change

log = logging.getLogger("recommender")

DEFAULT_QUERY = SimilarQuery()
# Candidate rows kept parsed between writes (about 1-2 KB each, so at most a few hundred MB).
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


class Recommender:
    """Open one per data dir and process; thread-safe for concurrent reads and writes."""

    def __init__(self, settings: Settings, embedder: TextEmbedder | None = None, index_kind: str | None = None):
        self.settings = settings
        self.ranking = Ranking.from_settings(settings)
        self.embedder = embedder or load_embedder(settings.model, settings.batch_size, settings.device)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = ArticleStore(settings.db_path)
        self.overrides = OverrideStore(settings.db_path)
        self._blocked_everywhere = set(self.overrides.blocked_everywhere())
        self._write_lock = threading.RLock()
        # Bumped by every write; the service's list cache (service.cache) and the row cache below key on it.
        self._generation = 0
        self._cache_lock = threading.Lock()  # guards _rows_cache and _generation together
        # Candidate rows (article, vector) by key, parsed once for many lists; cleared with the list cache.
        self._rows_cache: dict[int, tuple[Article, np.ndarray]] = {}
        self._saved_seq = 0
        self._reembed_if_model_changed()
        self.index = self._open_index(index_kind)
        self.lexical = LexicalIndex()
        self.lexical.build(*self._lexical_corpus())

    # -- opening and repair -------------------------------------------------------------------
    def _reembed_if_model_changed(self) -> None:
        stored_model = self.store.meta("model")
        if stored_model is not None and stored_model != self.embedder.name and self.store.count():
            log.warning("store was embedded with %s, now configured %s: re-embedding every article",
                        stored_model, self.embedder.name)
            # In place, chunk by chunk: a crash midway leaves the old model's name in the store, so the next
            # start re-embeds again, and no article is ever missing meanwhile.
            articles = [a for _, a in self.store.articles()]
            self._upsert(articles, progress=True, total=len(articles), index=None, reembed=True)
        self.store.set_meta("model", self.embedder.name)

    def _open_index(self, kind: str | None) -> VectorIndex:
        path = self.settings.index_path
        index, seq = None, 0
        try:
            index, meta = load_index(path)
            if meta.model != self.embedder.name or meta.dim != self.embedder.dim:
                log.warning("index %s was built for %s (dim %d): rebuilding for %s", path, meta.model, meta.dim,
                            self.embedder.name)
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
            index = VectorIndex(self.embedder.dim, kind, self.embedder.name)
        self._repair(index, seq)
        return index

    def _repair(self, index: VectorIndex, seq: int) -> None:
        """Make the index mirror the store: apply writes after ``seq``, drop what the store no longer publishes."""
        store_seq = self.store.seq
        published: list[Change] = []
        gone: list[Change] = []
        for change in self.store.changes_since(seq):
            (published if change.published else gone).append(change)
        if published:
            index.add(np.array([c.key for c in published]), np.stack([c.vector for c in published]))
        index.remove(np.array([c.key for c in gone], dtype=np.int64))
        stale = np.setdiff1d(index.ids(), self.store.published_keys())
        index.remove(stale)
        if published or gone or len(stale) or seq != store_seq:
            log.info("index repaired: %d added or updated, %d dropped", len(published), len(gone) + len(stale))
            index.save(self.settings.index_path, store_seq)
        self._saved_seq = store_seq

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
        """One store transaction; ``reembed`` embeds every article, not only those whose text changed."""
        texts = [self._text(a) for a in articles]
        hashes = [content_hash(t) for t in texts]
        with self._write_lock:
            known = self.store.content_hashes(a.id for a in articles)
            todo = [i for i, a in enumerate(articles) if reembed or known.get(a.id) != hashes[i]]
            # The model sorts each call's texts by length, so batches hold texts of similar length.
            new_vectors = self.embedder.encode([texts[i] for i in todo])
            vectors = dict(zip(todo, new_vectors, strict=True))
            kept = self.store.vectors_for(a.id for i, a in enumerate(articles) if i not in vectors)
            rows = [(a, hashes[i], vectors[i] if i in vectors else kept[a.id]) for i, a in enumerate(articles)]
            keys = self.store.upsert(rows)
            if index is not None:
                self._apply(index, articles, keys, [r[2] for r in rows], texts)
        created = sum(1 for a in articles if a.id not in known)
        return UpsertResult(created=created, updated=len(todo) - created,
                            unchanged=len(articles) - len(todo), embedded=len(todo))

    def _apply(self, index: VectorIndex, articles: Sequence[Article], keys: Sequence[int],
               vectors: Sequence[np.ndarray], texts: Sequence[str]) -> None:
        live = [i for i, a in enumerate(articles) if a.is_published]
        dead = [keys[i] for i, a in enumerate(articles) if not a.is_published]
        if live:
            index.add(np.array([keys[i] for i in live]), np.stack([vectors[i] for i in live]))
            self.lexical.add([keys[i] for i in live], [texts[i] for i in live])
        index.remove(np.array(dead, dtype=np.int64))
        self.lexical.remove(dead)
        self._invalidate()

    def delete(self, article_id: str) -> bool:
        """Take an article down: it leaves every list from the next call on."""
        with self._write_lock:
            key = self.store.delete(article_id)
            if key is None:
                return False
            self.index.remove(np.array([key], dtype=np.int64))
            self.lexical.remove([key])
            self._invalidate()
            return True

    def _invalidate(self) -> None:
        with self._cache_lock:
            self._generation += 1
            self._rows_cache.clear()

    def checkpoint(self) -> bool:
        """Save the index if the store moved since the last save; True when it wrote."""
        with self._write_lock:
            seq = self.store.seq
            if seq == self._saved_seq:
                return False
            self.index.save(self.settings.index_path, seq)
            self._saved_seq = seq
            return True

    def close(self) -> None:
        """Checkpoint the index and close the store; ``with Recommender(settings) as engine:`` does it."""
        self.checkpoint()
        self.overrides.close()
        self.store.close()

    def __enter__(self) -> Recommender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reads ----------------------------------------------------------------------------------
    def get(self, article_id: str) -> Article:
        stored = self.store.get(article_id)
        if stored is None:
            raise ArticleNotFound(article_id)
        return stored.article

    @property
    def generation(self) -> int:
        """Bumped by every write that can change a list; equal generations mean equal lists."""
        return self._generation

    def similar(self, article_id: str, query: SimilarQuery = DEFAULT_QUERY) -> list[Recommendation]:
        """The "Similar news" list for an indexed article."""
        stored = self.store.get(article_id)
        if stored is None:
            raise ArticleNotFound(article_id)
        box = self.overrides.box(article_id)
        ranked = self._ranked(stored.article, stored.vector, replace(query, exclude=query.exclude | box.blocks))
        return with_pins(ranked, self._pinned(stored.article, stored.vector, box, query), query.limit)

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
    def box_overrides(self, article_id: str) -> BoxOverrides:
        self.get(article_id)
        return self.overrides.box(article_id)

    def set_box_overrides(self, article_id: str, overrides: BoxOverrides) -> None:
        """Replace the pins and blocks of an article's box; takes effect on the next request."""
        self.get(article_id)
        with self._write_lock:
            self.overrides.set_box(article_id, overrides)
            self._invalidate()

    def blocked_everywhere(self) -> dict[str, str]:
        return self.overrides.blocked_everywhere()

    def block_everywhere(self, item_id: str, reason: str = "") -> None:
        """Keep an article out of every box (e.g. for legal reasons), whether or not it is indexed yet."""
        with self._write_lock:
            self.overrides.block_everywhere(item_id, reason)
            self._blocked_everywhere.add(item_id)
            self._invalidate()

    def unblock_everywhere(self, item_id: str) -> bool:
        with self._write_lock:
            found = self.overrides.unblock_everywhere(item_id)
            self._blocked_everywhere.discard(item_id)
            self._invalidate()
            return found

    def similar_to_text(self, title: str, text: str = "", query: SimilarQuery = DEFAULT_QUERY) -> list[Recommendation]:
        """The list for an article that is not indexed (a CMS preview)."""
        article = Article(id="", title=title, body=text)
        vector = self.embedder.encode([self._text(article)])[0]
        return self._ranked(article, vector, query)

    def _ranked(self, source: Article, vector: np.ndarray, query: SimilarQuery) -> list[Recommendation]:
        if query.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {query.strategy!r}; choose one of {', '.join(STRATEGIES)}")
        query = replace(query, exclude=query.exclude | self._blocked_everywhere)
        # Room for excluded ids among the neighbours (capped: a long legal block list must not widen every search).
        k = self.settings.candidates + min(len(query.exclude), self.settings.candidates) + 1
        keys: list[int] = []
        if query.strategy in ("default", "embedding"):
            _, found = self.index.search(vector, k)
            keys += [int(x) for x in found[0] if x >= 0]
        scorer = None
        if query.strategy in ("default", "tfidf", "bm25"):
            # One scorer: the text is counted and scored against the corpus once, for the search and the scores.
            scorer = self.lexical.scorer(self._text(source), "tfidf" if query.strategy == "tfidf" else "bm25")
            _, found = scorer.search(k)
            seen = set(keys)
            keys += [int(x) for x in found if int(x) not in seen]
        rows = self._rows(keys)
        keys = [key for key in keys if key in rows]
        semantic = (np.stack([rows[key][1] for key in keys]) @ vector).tolist() if keys else []
        lexical = scorer.scores_for(keys).tolist() if scorer is not None else [0.0] * len(keys)
        candidates = [Candidate(key, rows[key][0], rows[key][1], semantic[i], lexical[i])
                      for i, key in enumerate(keys)]
        return rank(source, vector, candidates, query, self.ranking)

    def _rows(self, keys: list[int]) -> dict[int, tuple[Article, np.ndarray]]:
        """``store.by_keys(keys)``, served from parsed rows kept since the last write where possible."""
        cache = self._rows_cache
        rows = {key: cache[key] for key in keys if key in cache}
        missing = [key for key in keys if key not in rows]
        if missing:
            generation = self._generation
            fetched = self.store.by_keys(missing)
            rows.update(fetched)
            with self._cache_lock:
                if generation == self._generation:  # rows read before a write that finished meanwhile: not kept
                    if len(cache) + len(fetched) > ROWS_CACHE_MAX:
                        cache.clear()
                    cache.update(fetched)
        return rows

    def with_ranking(self, **changes: Any) -> Recommender:
        """A view of this recommender with other ``Ranking`` values (for tuning in notebooks); shares all else."""
        view = copy.copy(self)
        view.ranking = replace(self.ranking, **changes)
        return view
