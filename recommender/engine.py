"""The recommender: store + embedder + FAISS index + lexical index, kept consistent, answering "similar" queries.

The one implementation of the list (the service, the CLI and the notebooks call it): a facade over collaborators,
each named for its job: ``following`` (what the process keeps at the applied sequence), ``lists`` (ranked now),
``writing`` (upserts, deletes, the boxes they queue), ``boxes`` (the refresh, stored lists), ``editorial`` (pins,
blocks) and ``experimenting``."""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

from threadpoolctl import threadpool_limits

from index import VectorIndex, index_kind_for
from recommender.article import Article
from recommender.boxes import Boxes
from recommender.editorial import Editorial
from recommender.embed import ModelOnDemand, TextEmbedder
from recommender.events import EventLog, EventStore
from recommender.experimenting import Experimenting
from recommender.experiments import Experiment, ExperimentStore
from recommender.following import Following
from recommender.lexical import LexicalIndex
from recommender.listing import DEFAULT_VARIANT, ListJson
from recommender.lists import DEFAULT_QUERY, Lists
from recommender.locks import RoleLock
from recommender.overrides import Attribution, BoxOverrides, OverrideChange, OverrideStore
from recommender.popularity import Popularity
from recommender.rank import Ranking, Recommendation, SimilarQuery
from recommender.rows import RowTable
from recommender.settings import Settings
from recommender.specs import ExperimentSpec
from recommender.store import open_store
from recommender.store.boxes import BoxState
from recommender.writing import UpsertResult, Writing

log = logging.getLogger("recommender")


class Recommender:
    """Open one per data dir and process; thread-safe for concurrent reads and writes. ``saves`` false: a process
    beside the one that saves the index checkpoints (a helper computing boxes): it maps them and saves none."""

    def __init__(self, settings: Settings, embedder: TextEmbedder | None = None, index_kind: str | None = None,
                 saves: bool = True):
        self.settings = settings
        # Ranking multiplies small matrices (200 x 384): BLAS threads there cost far more than they give (a box
        # took 45 ms with OpenBLAS on every core, 3 ms on one; torch's own threads for encoding are not BLAS's).
        threadpool_limits(1, user_api="blas")
        self.model = ModelOnDemand(settings.model, settings.batch_size, settings.device, settings.embed_threads,
                                   embedder, settings.embed_bfloat16)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = open_store(settings)
        self.overrides = OverrideStore(self.store)
        self.experiments = ExperimentStore(self.store)
        self.event_store = EventStore(self.store)
        self.events = EventLog(self.event_store, settings.events_flush_interval_s, settings.events_max_pending,
                               settings.events_retention_days)
        self.popularity = Popularity(self.event_store, settings.popularity_half_life_days)
        self.following = Following(settings, self.store, self.overrides, self.experiments, self.model, saves)
        self._write_lock = threading.RLock()
        self.experimenting = Experimenting(self.following, self.experiments, self._write_lock)
        self._wire(Ranking.from_settings(settings))
        self.writing.reembed_if_model_changed()
        self.following.open(index_kind)
        if requeued := self.boxes.requeue_other_format():
            log.info("%d stored boxes hold items of another format: queued for a refresh", requeued)

    def _wire(self, ranking: Ranking) -> None:
        """The collaborators that rank, with ``ranking``; the rest is shared."""
        self.ranking = ranking
        self.lists = Lists(self.following, ranking, self.overrides, self.popularity, self.model)
        self.writing = Writing(self.following, ranking, self.model, self._write_lock)
        self.boxes = Boxes(self.following, self.lists)
        self.editorial = Editorial(self.lists, self.writing)

    def with_ranking(self, **changes: Any) -> Recommender:
        """A view of this recommender with other ``Ranking`` values (for tuning in notebooks); shares all else."""
        view = copy.copy(self)
        view._wire(replace(self.ranking, **changes))
        return view

    # -- the model and what following keeps ------------------------------------------------------
    @property
    def embedder(self) -> TextEmbedder:
        return self.model.get()

    @property
    def model_load_seconds(self) -> float | None:
        return self.model.load_seconds

    @property
    def on_model_load(self) -> Callable[[float], None] | None:
        """Told how long the model took to load, once it has (the service's metrics)."""
        return self.model.on_load

    @on_model_load.setter
    def on_model_load(self, call: Callable[[float], None] | None) -> None:
        self.model.on_load = call

    @property
    def index(self) -> VectorIndex:
        return self.following.index

    @property
    def lexical(self) -> LexicalIndex:
        return self.following.lexical

    @property
    def rows(self) -> RowTable:
        return self.following.rows

    @property
    def generation(self) -> int:
        """Bumped by every write that can change a list; equal generations mean equal lists."""
        return self.following.generation

    def current_generation(self) -> int | None:
        return self.following.current_generation()

    def follow(self) -> bool:
        return self.following.follow()

    def checkpoint(self) -> bool:
        return self.following.checkpoint()

    def index_kind_due(self) -> str | None:
        """The kind picked for the corpus size (``index_kind_for``) where the index is of another, not chosen by
        ``recommender reindex --kind``; None to keep it."""
        kind = index_kind_for(len(self.index))
        return None if self.index.chosen or kind == self.index.kind else kind

    def rebuild_index(self, kind: str, progress: bool = False) -> None:
        self.following.rebuild_index(kind, progress)

    def warm_rows(self, chunk: int = 5000) -> None:
        self.following.warm_rows(chunk)

    def close(self) -> None:
        """Checkpoint the index and close the store; ``with Recommender(settings) as engine:`` does it."""
        self.checkpoint()
        self.events.close()  # what was acknowledged is stored already; this writes what is still queued
        self.store.close()

    def __enter__(self) -> Recommender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes ---------------------------------------------------------------------------------
    def upsert(self, articles: Iterable[Article], progress: bool = False, total: int | None = None,
               processes: int = 1, refresher: RoleLock | None = None) -> UpsertResult:
        return self.writing.upsert(articles, progress, total, processes, refresher)

    def upsert_all(self, articles: Sequence[Article]) -> UpsertResult:
        return self.writing.upsert_all(articles)

    def delete(self, article_id: str) -> bool:
        return self.writing.delete(article_id)

    # -- reads and lists ------------------------------------------------------------------------
    def get(self, article_id: str, include_unpublished: bool = True) -> Article:
        return self.lists.get(article_id, include_unpublished)

    def find(self, text: str, limit: int = 20, include_unpublished: bool = True) -> list[Article]:
        """Articles for an editor's search: the one with this id, then those whose title holds the text
        (published ones only, for the public)."""
        return self.store.find(text, limit, include_unpublished)

    def similar(self, article_id: str, query: SimilarQuery = DEFAULT_QUERY,
                include_unpublished: bool = True) -> list[Recommendation]:
        return self.lists.similar(article_id, query, include_unpublished)

    def similar_to_text(self, title: str, text: str = "", query: SimilarQuery = DEFAULT_QUERY) -> list[Recommendation]:
        return self.lists.similar_to_text(title, text, query)

    def list_json(self, article_id: str | None, items: Sequence[Recommendation],
                  variant: str = DEFAULT_VARIANT) -> ListJson:
        return self.lists.list_json(article_id, items, variant)

    def list_body(self, article_id: str, query: SimilarQuery, variant: str = DEFAULT_VARIANT,
                  include_unpublished: bool = True) -> tuple[ListJson, str]:
        return self.boxes.list_body(article_id, query, variant, include_unpublished)

    def stored_body(self, article_id: str, query: SimilarQuery, variant: str = DEFAULT_VARIANT) -> ListJson | None:
        return self.boxes.stored_body(article_id, query, variant)

    def box_state(self, article_id: str, include_unpublished: bool = True) -> BoxState | None:
        return self.boxes.state(article_id, include_unpublished)

    def stored_list_json(self, article_id: str, limit: int, variant: str = DEFAULT_VARIANT,
                         unranked: bool = False) -> ListJson | None:
        return self.boxes.stored_list_json(article_id, limit, variant, unranked)

    def refresh_boxes(self, keys: Sequence[int]) -> int:
        return self.boxes.refresh(keys)

    # -- editorial overrides --------------------------------------------------------------------
    def box_overrides(self, article_id: str, include_unpublished: bool = True) -> BoxOverrides:
        return self.editorial.box_overrides(article_id, include_unpublished)

    def set_box_overrides(self, article_id: str, overrides: BoxOverrides, editor: str = "",
                          reason: str = "") -> None:
        self.editorial.set_box_overrides(article_id, overrides, Attribution(editor, reason))

    def blocked_everywhere(self) -> dict[str, str]:
        return self.editorial.blocked_everywhere()

    def block_everywhere(self, item_id: str, reason: str = "", editor: str = "") -> None:
        self.editorial.block_everywhere(item_id, Attribution(editor, reason))

    def unblock_everywhere(self, item_id: str, editor: str = "", reason: str = "") -> bool:
        return self.editorial.unblock_everywhere(item_id, Attribution(editor, reason))

    def override_history(self, article_id: str | None, limit: int = 100,
                         include_unpublished: bool = True) -> list[OverrideChange]:
        return self.editorial.history(article_id, limit, include_unpublished)

    # -- experiments ----------------------------------------------------------------------------
    @property
    def running_experiment(self) -> Experiment | None:
        return self.experimenting.running

    def experiment(self, name: str) -> Experiment | None:
        return self.experimenting.experiment(name)

    def all_experiments(self) -> list[Experiment]:
        return self.experimenting.all()

    def define_experiment(self, spec: ExperimentSpec, active: bool = True) -> Experiment:
        return self.experimenting.define(spec, active)
