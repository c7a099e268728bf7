"""Writing articles: upserts (embedding only what changed) and deletes, each with the boxes it makes stale queued
in its own transaction: the boxes that hold the article (the store finds those) and those a new or changed
article may now enter (found here, from its nearest neighbours and each box's lowest stored score)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
from tqdm.auto import tqdm

from index.files import file_stamp
from recommender.article import Article, content_hash
from recommender.candidates import Facts, facts_of
from recommender.embed import ModelOnDemand, model_name
from recommender.embedpool import EmbeddingPool
from recommender.following import Following
from recommender.lexical import CorpusStats, Terms
from recommender.lists import DEFAULT_QUERY
from recommender.locks import RoleLock
from recommender.rank import Ranking, days_between, passes_filters, recency_factors
from recommender.store.articles import ArticleStore, StoredArticle

log = logging.getLogger("recommender")

# Room left by the bounds on what a new article may enter: the index's cosines are approximate (HNSW-SQ), and the
# lexical weights of the processes that rank may be a newer file's.
BOUND_SLACK = 0.02


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


def _to_embed(articles: Sequence[Article], hashes: Sequence[str], known: dict[str, StoredArticle],
              reembed: bool) -> list[int]:
    """Positions of the articles to embed: every one to ``reembed``, else those whose text is not stored as is."""
    return [i for i, a in enumerate(articles) if reembed or _hash_of(known, a.id) != hashes[i]]


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


@dataclass(frozen=True)
class _Ahead:
    """A chunk's embedded texts and their content hashes, and the vectors started for some of them ahead of its
    write, by position (``Writing._embedding_ahead``): the texts are not derived again at the write."""

    texts: list[str]
    hashes: list[str]
    vectors: Callable[[], dict[int, np.ndarray]]


class _NeighbourSearch:
    """Whether the chunks of one write search for the neighbours' boxes their articles may enter. Each does unless
    the writer holds the refresher lock (``sole``) and no box is stored (a fresh import): every box is then queued
    by its own write, and no other process stores one. A lock can be lost (PostgreSQL drops it with its session),
    so it is checked again after each chunk written without the search."""

    def __init__(self, sole: RoleLock | None = None):
        self.sole = sole

    @classmethod
    def for_write(cls, store: ArticleStore, refresher: RoleLock | None) -> _NeighbourSearch:
        held = refresher is not None and refresher.try_exclusive() and not store.any_box_stored()
        return cls(refresher if held else None)

    @property
    def searches(self) -> bool:
        return self.sole is None

    def lock_lost_since_last_check(self) -> bool:
        """After a chunk written without the search: whether the lock was lost since the check before it (a box
        ranked meanwhile may lack the chunk); from then on every chunk is searched."""
        if self.sole is None or self.sole.try_exclusive():
            return False
        self.sole = None
        return True


def _chunks(articles: Iterable[Article], size: int) -> Iterator[list[Article]]:
    """``articles`` in chunks of ``size`` distinct ids (a repeated id in one chunk: the last one wins)."""
    chunk: dict[str, Article] = {}
    for article in articles:
        chunk[article.id] = article
        if len(chunk) >= size:
            yield list(chunk.values())
            chunk = {}
    if chunk:
        yield list(chunk.values())


class Writing:
    """Writes under ``write_lock`` (shared with the editorial and experiment writes), each followed at once."""

    def __init__(self, following: Following, ranking: Ranking, model: ModelOnDemand, write_lock: threading.RLock):
        self.following = following
        self.store = following.store
        self.settings = following.settings
        self.ranking = ranking
        self.model = model
        self.write_lock = write_lock
        self._stats: tuple[tuple[int, int] | None, CorpusStats | None] | None = None  # (file stamp, its stats)

    def reembed_if_model_changed(self) -> None:
        """Before the indexes open: a store embedded with another model is re-embedded, in place."""
        stored_model, name = self.store.meta("model"), self.model.name
        if stored_model is not None and stored_model != name and self.store.count():
            log.warning("store was embedded with %s, now configured %s: re-embedding every article", stored_model, name)
            # In place, chunk by chunk: a crash midway leaves the old model's name in the store, so the next
            # start re-embeds again, and no article is ever missing meanwhile.
            # Read a page at a time as they are written (a page's rows are rewritten only after it is read).
            articles = (a for _, a in self.store.articles())
            self._upsert(articles, progress=True, total=self.store.count(), follow=False, reembed=True)
        if stored_model != name:
            self.store.set_meta("model", name)

    def upsert(self, articles: Iterable[Article], progress: bool = False, total: int | None = None,
               processes: int = 1, refresher: RoleLock | None = None) -> UpsertResult:
        """Store, embed (only what changed) and index articles; a repeated id in one call: the last one wins.

        Work goes in chunks, each one durable when it returns, so a crash loses at most the chunk in flight.
        ``processes`` above 1 embeds the chunks in that many processes (an import: ``EmbeddingPool``), the next
        chunk's while one is written: a crash then also loses the next chunk's embedding (it was not written).
        ``refresher``: the refresher lock, which the caller holds (no other process stores a box meanwhile);
        while no box is stored then (a fresh import), the neighbours' boxes a write may enter are not searched
        for (``_NeighbourSearch``: on the flat index an import grows, a scan of the corpus a chunk)."""
        return self._upsert(articles, progress, total, follow=True, reembed=False, processes=processes,
                            neighbours=_NeighbourSearch.for_write(self.store, refresher))

    def upsert_all(self, articles: Sequence[Article]) -> UpsertResult:
        """``upsert`` in one store transaction: every article is written, or (after a crash) none of them."""
        unique = list({a.id: a for a in articles}.values())  # a repeated id: the last one wins
        return self._upsert_chunk(unique, follow=True, reembed=False) if unique else UpsertResult()

    def _upsert(self, articles: Iterable[Article], progress: bool, total: int | None, follow: bool,
                reembed: bool, processes: int = 1, neighbours: _NeighbourSearch | None = None) -> UpsertResult:
        bar = tqdm(total=total, unit="article", desc="ingest", disable=not progress)
        pool = self._pool(processes)
        chunks = _chunks(articles, self.settings.ingest_chunk)
        try:
            if pool is None:
                return sum((self._upsert_chunk(chunk, follow, reembed, done=bar.update, neighbours=neighbours)
                            for chunk in chunks), UpsertResult())
            return self._upsert_ahead(chunks, follow, reembed, pool, bar.update, neighbours)
        finally:
            if pool is not None:
                pool.close()
            bar.close()

    def _upsert_ahead(self, chunks: Iterator[list[Article]], follow: bool, reembed: bool, pool: EmbeddingPool,
                      done: Callable[[int], object], neighbours: _NeighbourSearch | None) -> UpsertResult:
        """``_upsert`` with a pool: a chunk's vectors are computed while the chunk before it is written. A chunk
        whose vectors are ready is written even when reading the next one fails (a bad row, an interrupt)."""
        result, pending = UpsertResult(), None
        while True:
            try:
                chunk = next(chunks, None)
            except BaseException:
                if pending is not None:
                    self._upsert_chunk(pending[0], follow, reembed, pending[1], done, neighbours)
                raise
            started = None if chunk is None else (chunk, self._embedding_ahead(chunk, reembed, pool))
            if pending is not None:
                result += self._upsert_chunk(pending[0], follow, reembed, pending[1], done, neighbours)
            if started is None:
                return result
            pending = started

    def _pool(self, processes: int) -> EmbeddingPool | None:
        """The pool that embeds a bulk write in ``processes`` processes; None (the model here) for one process, a
        model on a GPU, or a model given to the engine that the settings do not name (the pool loads theirs)."""
        if processes <= 1:
            return None
        embedder = self.model.get()
        if embedder.device != "cpu" or embedder.name != model_name(self.settings.model):
            return None
        return EmbeddingPool(self.settings.model, self.settings.batch_size, processes, embedder,
                             self.settings.embed_bfloat16)

    def _embedding_ahead(self, articles: Sequence[Article], reembed: bool, pool: EmbeddingPool) -> _Ahead:
        """The vectors of the texts that differ from the store's now, started in the pool. The chunk before may
        change that by the time this one is written: ``_upsert_chunk`` embeds what is missing then, and drops
        what is no longer needed."""
        texts, hashes = self._texts_and_hashes(articles)
        todo = _to_embed(articles, hashes, self.store.stored(a.id for a in articles), reembed)
        vectors = pool.submit([texts[i] for i in todo])
        return _Ahead(texts, hashes, lambda: dict(zip(todo, vectors(), strict=True)))

    def _texts_and_hashes(self, articles: Sequence[Article]) -> tuple[list[str], list[str]]:
        """The texts ``articles`` are embedded from, and their content hashes (what tells a changed text)."""
        texts = [self.following.text(a) for a in articles]
        return texts, [content_hash(t) for t in texts]

    def _upsert_chunk(self, articles: Sequence[Article], follow: bool, reembed: bool, ahead: _Ahead | None = None,
                      done: Callable[[int], object] | None = None,
                      neighbours: _NeighbourSearch | None = None) -> UpsertResult:
        """One store transaction; ``reembed`` embeds every article, not only those whose text changed; ``follow``:
        the indexes are open (not while the store is re-embedded before they are); ``ahead``: its texts, and
        vectors already computed (by position), waited for before the write lock; ``done`` is told how many
        articles were written; ``neighbours``: whether the neighbours' boxes the articles may enter are searched for
        and queued (``_NeighbourSearch``; by default they are). An article stored exactly as sent is not written
        again (a re-ingest of an unchanged archive changes nothing)."""
        texts, hashes = (ahead.texts, ahead.hashes) if ahead is not None else self._texts_and_hashes(articles)
        ready = ahead.vectors() if ahead is not None else {}
        with self.write_lock:
            if follow:
                self.following.follow()  # the neighbour search below must see every article already stored
            known = self.store.stored(a.id for a in articles)
            todo = _to_embed(articles, hashes, known, reembed)
            missing = [i for i in todo if i not in ready]
            # The model sorts each call's texts by length, so batches hold texts of similar length.
            new_vectors = self.model.get().encode([texts[i] for i in missing])
            vectors = {i: ready[i] for i in todo if i in ready} | dict(zip(missing, new_vectors, strict=True))
            rows, entering = _rows_to_write(articles, hashes, vectors, known)
            entered, search = bool(entering) and follow, neighbours or _NeighbourSearch()
            searched = entered and search.searches
            self.store.upsert(rows, stale_boxes=self.boxes_it_may_enter(entering) if searched else [])
            if follow:
                self.following.follow()
            if entered and not searched and search.lock_lost_since_last_check():
                self._queue_missed_boxes(entering)
        created = sum(1 for a in articles if a.id not in known)
        if done is not None:
            done(len(articles))
        return UpsertResult(created=created, updated=len(todo) - created,
                            unchanged=len(articles) - len(todo), embedded=len(todo))

    def _queue_missed_boxes(self, entering: Sequence[tuple[Article, np.ndarray]]) -> None:
        """Queue the boxes a chunk written without the neighbour search may enter, once the refresher lock was found
        lost after its commit (``_NeighbourSearch``). The chunk's own articles are now in the index, among each
        other's nearest: the search reaches past them."""
        keys = self.boxes_it_may_enter(entering, self.settings.refresh_neighbours + len(entering))
        try:
            self.store.enqueue(keys)
        except Exception:
            # The chunk is committed: were this to fail, boxes would lack its articles until their next refresh.
            ids = [article.id for article, _ in entering]
            log.error("the refresher lock was lost during an import, and the %d boxes that articles %s ... %s may "
                      "enter could not be queued: they lack them until their next refresh", len(keys), ids[0],
                      ids[-1])
            raise

    def boxes_it_may_enter(self, entering: Sequence[tuple[Article, np.ndarray]],
                           neighbours: int | None = None) -> list[int]:
        """Keys of the boxes that articles (with their vectors) may now enter: among each one's nearest
        ``neighbours`` (default ``refresh_neighbours``) articles, those whose box's hard rules admit it (language,
        freshness window) and whose box is not full or has a lowest score it could beat (``_best_score``); and the
        boxes that hold a neighbour it is a copy or a report of the story of (it may be folded under it there)."""
        scores, found = self.following.index.search(np.stack([v for _, v in entering]),
                                                    neighbours or self.settings.refresh_neighbours)
        # Each neighbour once: a batch of thousands of new articles shares most of its neighbours.
        boxes = self.following.rows.articles(np.unique(found[found >= 0]).tolist())
        floors = self.store.floors(list(boxes))
        stats = self._corpus_stats()
        fold = min(self.ranking.story_threshold, self.ranking.duplicate_threshold)
        out: set[int] = set()
        close: set[int] = set()  # neighbours whose holders are queued
        queries: dict[int, Terms] = {}  # a box's source text's terms, analysed once
        for (article, _), row_scores, row_keys in zip(entering, scores.tolist(), found.tolist(), strict=True):
            terms = stats.terms(self.following.text(article)) if stats is not None else None
            facts = facts_of([article])  # once for its ~30 neighbours (a third of the rule's time, per pair)
            for cosine, key in zip(row_scores, row_keys, strict=True):
                if key not in boxes:
                    continue
                if cosine > fold - BOUND_SLACK and key not in close:  # it may be folded under this one where shown
                    close.add(key)
                    out.update(self.store.holders(key))
                if key in out:
                    continue
                lexical = partial(self._lexical_score, stats, queries, key, boxes[key], terms)
                if self._may_enter(boxes[key], article, facts, cosine, floors.get(key), lexical):
                    out.add(key)
        return sorted(out)

    def _may_enter(self, box: Article, article: Article, facts: Facts, cosine: float, floor: float | None,
                   lexical: Callable[[], float]) -> bool:
        """Whether ``article`` (of ``facts``) may enter the box of ``box``: its hard rules admit it, and the box is
        not full or its lowest score ``floor`` is within the article's best score (``lexical``, the article's
        lexical score there, is computed only where the cosine alone does not decide)."""
        days = days_between(box.published_at, article.published_at)
        if not passes_filters(box, facts, DEFAULT_QUERY, self.ranking, days):
            return False
        if floor is None:
            return True
        return self._best_score(cosine, 1.0, days) + BOUND_SLACK >= floor and \
            self._best_score(cosine, lexical(), days) + BOUND_SLACK >= floor

    def _lexical_score(self, stats: CorpusStats | None, queries: dict[int, Terms], key: int, box: Article,
                       terms: Terms | None) -> float:
        """The BM25 score the box of ``box`` (key ``key``) gives a text of ``terms`` (its source's terms kept in
        ``queries``); a full match where there are no corpus weights to tell."""
        if stats is None or terms is None:
            return 1.0
        if key not in queries:
            queries[key] = stats.terms(self.following.text(box))
        return stats.bm25(queries[key], terms)

    def _best_score(self, cosine: float, lexical: float, days: float | None) -> float:
        """The highest score an item of this ``cosine`` and ``lexical`` score, ``days`` apart from the source, can
        have in its list: full popularity, MMR's largest penalty."""
        ranking = self.ranking
        w, mmr, pw = ranking.lexical_weight, ranking.mmr_lambda, ranking.popularity_weight
        recency = float(recency_factors(np.array([np.nan if days is None else days]), ranking)[0])
        relevance = ((1 - w) * cosine + w * min(lexical, 1.0)) * recency
        return (1 - pw) * relevance + pw + (1 - mmr) / max(mmr, 1e-9)

    def _corpus_stats(self) -> CorpusStats | None:
        """The corpus weights of the lexical weights file (read again when it is replaced), which the processes
        that rank boxes weigh new texts with; None where there is none yet (every lexical score is then taken
        to be a full match)."""
        path = self.settings.lexical_weights_path
        stamp = file_stamp(path)
        if self._stats is None or self._stats[0] != stamp:
            try:
                self._stats = (stamp, CorpusStats.read(path, self.store.id))
            except (FileNotFoundError, ValueError):
                self._stats = (stamp, None)
        return self._stats[1]

    def delete(self, article_id: str) -> bool:
        """Take an article down: it leaves every list from the next call on, in every process."""
        with self.write_lock:
            key = self.store.delete(article_id)
            self.following.follow()
            return key is not None
