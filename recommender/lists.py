"""Lists ranked now: an article's "Similar news" list (its candidates from both indexes, its pins and blocks) and a
list for a text that is not indexed (a CMS preview), with the ranking of ``recommender.rank``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from recommender.article import Article, ArticleNotFound
from recommender.candidates import Candidates, RowGone, text_hash
from recommender.embed import ModelOnDemand
from recommender.following import Following
from recommender.lexical import Scorer
from recommender.listing import DEFAULT_VARIANT, ListJson, item_json, list_json
from recommender.overrides import BoxOverrides, OverrideStore
from recommender.popularity import Popularity
from recommender.rank import Ranking, Recommendation, SimilarQuery, rank, with_pins
from recommender.specs import STRATEGIES

DEFAULT_QUERY = SimilarQuery()


class Lists:
    """Ranks with ``ranking`` over what ``following`` keeps in memory and the store holds."""

    def __init__(self, following: Following, ranking: Ranking, overrides: OverrideStore, popularity: Popularity,
                 model: ModelOnDemand):
        self.following = following
        self.store = following.store
        self.settings = following.settings
        self.ranking = ranking
        self.overrides = overrides
        self.popularity = popularity
        self.model = model

    def get(self, article_id: str, include_unpublished: bool = True) -> Article:
        """The stored article; an unpublished one (taken down, or not out yet) is not found for the public
        (``include_unpublished=False``)."""
        stored = self.store.get(article_id)
        if stored is None or not (include_unpublished or stored.article.is_published):
            raise ArticleNotFound(article_id)
        return stored.article

    def similar(self, article_id: str, query: SimilarQuery = DEFAULT_QUERY,
                include_unpublished: bool = True) -> list[Recommendation]:
        """The "Similar news" list for an indexed article, ranked now; that of an unpublished one (taken down, or
        not out yet) is not found for the public (``include_unpublished=False``)."""
        self.following.follow()
        stored = self.store.get(article_id)
        if stored is None or not (include_unpublished or stored.article.is_published):
            raise ArticleNotFound(article_id)
        return self.rank_list(stored.article, stored.vector, self.overrides.box(article_id), query)

    def rank_list(self, source: Article, vector: np.ndarray, box: BoxOverrides, query: SimilarQuery,
             neighbours: np.ndarray | None = None) -> list[Recommendation]:
        pins = self._pinned(source, vector, box, query)
        # Ranked deep enough that pinned items taken out still leave ``limit`` (so any list is a prefix of a
        # deeper one: a stored box cut to a limit is the list asked with that limit).
        ranked = self.ranked(source, vector, replace(query, exclude=query.exclude | box.blocks,
                                                     limit=query.limit + len(pins)), neighbours)
        return with_pins(ranked, pins, query.limit)

    def list_json(self, article_id: str | None, items: Sequence[Recommendation],
                  variant: str = DEFAULT_VARIANT) -> ListJson:
        """The response body of a list ranked now (the same bytes a stored box gives)."""
        return list_json(article_id, [item_json(r, self.settings.excerpt_chars) for r in items], variant,
                         (a.id for r in items for a in (r.article, *r.also)))

    def similar_to_text(self, title: str, text: str = "", query: SimilarQuery = DEFAULT_QUERY) -> list[Recommendation]:
        """The list for an article that is not indexed (a CMS preview)."""
        article = Article(id="", title=title, body=text)
        vector = self.model.get().encode([self.following.text(article)])[0]
        return self.ranked(article, vector, query)

    def _pinned(self, source: Article, vector: np.ndarray, box: BoxOverrides,
                query: SimilarQuery) -> list[tuple[int, Recommendation]]:
        """The box's pins that may show: published, not blocked everywhere, not the source or excluded."""
        out = []
        for pin in box.pins:
            stored = self.store.get(pin.item_id)
            if (stored is None or not stored.article.is_published or pin.item_id == source.id
                    or pin.item_id in self.following.blocked_everywhere or pin.item_id in query.exclude):
                continue
            out.append((pin.position, Recommendation(stored.article, round(float(stored.vector @ vector), 6),
                                                     pinned=True)))
        return out

    def candidate_count(self, excluded: int) -> int:
        # Room for excluded ids among the neighbours (capped: a long legal block list must not widen every search).
        return self.settings.candidates + min(excluded, self.settings.candidates) + 1

    def ranked(self, source: Article, vector: np.ndarray, query: SimilarQuery,
               neighbours: np.ndarray | None = None) -> list[Recommendation]:
        """``neighbours``: the index's nearest keys for ``vector`` when the caller searched already (in batch)."""
        if query.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {query.strategy!r}; choose one of {', '.join(STRATEGIES)}")
        following = self.following
        query = replace(query, exclude=query.exclude | following.blocked_everywhere)
        k = self.candidate_count(len(query.exclude))
        keys: list[int] = []
        if query.strategy in ("default", "embedding"):
            if neighbours is None or len(neighbours) < k:
                neighbours = following.index.search(vector, k)[1][0]
            keys += [int(x) for x in neighbours[:k] if x >= 0]
        scorer = None
        if query.strategy in ("default", "tfidf", "bm25"):
            # One scorer: the text is counted and scored against the corpus once, for the search and the scores.
            scorer = following.lexical.scorer(following.text(source), "tfidf" if query.strategy == "tfidf" else "bm25")
            _, found = scorer.search(k)
            seen = set(keys)
            keys += [int(x) for x in found if int(x) not in seen]
        for attempt in range(3):
            try:
                return self._ranked_rows(source, vector, query, keys, scorer)
            except RowGone:  # deleted while the list was ranked: not a candidate once followed
                if attempt == 2:
                    raise
                following.follow()
        raise AssertionError("unreachable")

    def _ranked_rows(self, source: Article, vector: np.ndarray, query: SimilarQuery, keys: list[int],
                     scorer: Scorer | None) -> list[Recommendation]:
        """The list of the candidates ``keys`` (their lexical scores from ``scorer``, if any)."""
        rows = self.following.rows.gather(keys)
        if not len(rows.keys):
            return []
        lexical = scorer.scores_for(rows.keys.tolist()) if scorer is not None else np.zeros(len(rows.keys))
        weighs_popularity = query.strategy == "default" and self.ranking.for_query(query).popularity_weight
        popular = self.popularity.scores() if weighs_popularity else {}
        popularity = np.zeros(len(rows.keys))
        if popular:  # the candidates carry their ids' hashes, not their ids
            by_hash = {text_hash(article_id): score for article_id, score in popular.items()}
            popularity = np.array([by_hash.get(h, 0.0) for h in rows.facts.id_hashes.tolist()])
        candidates = Candidates(rows.articles, rows.vectors, (rows.vectors @ vector).astype(np.float64),
                                lexical.astype(np.float64), popularity, rows.facts)
        return rank(source, vector, candidates, query, self.ranking)
