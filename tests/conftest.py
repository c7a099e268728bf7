"""Shared fixtures: a small slice of the real MIND sample, the real model, real data dirs."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from recommender.article import Article
from recommender.embed import TextEmbedder, load_embedder
from recommender.engine import Recommender
from recommender.loaders import read_articles
from recommender.migrate import migrate
from recommender.refresher import refresh_queued
from recommender.settings import Settings
from recommender.store.articles import ArticleStore
from recommender.store.postgres import PostgresStore
from recommender.store.sqlite import SQLiteStore
from tests.pgcluster import PostgresCluster

SHARED = Path(__file__).resolve().parents[2] / "shared"
MIND_SAMPLE = SHARED / "data" / "mind-sample"
# Enough articles for real neighbourhoods (several stories per topic), few enough to embed in seconds.
SLICE = 400


@pytest.fixture(autouse=True)
def no_log_handler_left_on_a_closed_stream() -> Iterator[None]:
    """A test that runs ``recommender.cli.main`` configures logging as a command does: a handler on the stderr of
    that moment, which pytest closes after the test. Taken off then: a later test's background thread (a
    refresher's) would log into the closed stream ("--- Logging error ---")."""
    yield
    root = logging.getLogger()
    for handler in root.handlers[:]:
        if getattr(getattr(handler, "stream", None), "closed", False):
            root.removeHandler(handler)


@pytest.fixture(scope="session")
def mind_articles() -> list[Article]:
    """The first SLICE articles of the MIND sample, plus N34700 and its neighbours used as known examples."""
    if not MIND_SAMPLE.is_dir():
        pytest.fail(f"the MIND sample is missing at {MIND_SAMPLE}: tests read ../shared beside the checkout")
    return list(read_articles(MIND_SAMPLE))[:SLICE]


@pytest.fixture(scope="session")
def embedder() -> TextEmbedder:
    settings = Settings()
    return load_embedder(settings.model, settings.batch_size, bfloat16=settings.embed_bfloat16)


def make_settings(data_dir: Path, **overrides) -> Settings:
    return Settings(data_dir=data_dir, **overrides)


@pytest.fixture(scope="session")
def ingested_dir(tmp_path_factory, mind_articles, embedder) -> Path:
    """A data dir with the slice ingested and checkpointed, built once; copy it before changing it."""
    path = tmp_path_factory.mktemp("ingested")
    engine = Recommender(make_settings(path), embedder=embedder)
    engine.upsert(mind_articles)
    refresh_queued(engine)  # as `recommender ingest` does: every box stored
    engine.close()
    return path


@pytest.fixture
def data_dir(ingested_dir, tmp_path) -> Path:
    """A private copy of the ingested data dir."""
    target = tmp_path / "data"
    shutil.copytree(ingested_dir, target)
    return target


@pytest.fixture
def engine(data_dir, embedder) -> Iterator[Recommender]:
    rec = Recommender(make_settings(data_dir), embedder=embedder)
    yield rec
    rec.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """A real PostgreSQL server for the session, on a free loopback port (see tests/pgcluster.py)."""
    with PostgresCluster() as cluster:
        yield cluster


@pytest.fixture
def database_url(postgres) -> str:
    """A new empty database on the session's PostgreSQL server."""
    return postgres.database()


def on_postgres(data_dir: Path, url: str, **overrides) -> Settings:
    """Settings for the store of ``data_dir`` moved into the empty PostgreSQL database at ``url`` (the data dir
    keeps the index files, as a replica's does)."""
    migrate(data_dir / "articles.sqlite3", url)
    return make_settings(data_dir, database_url=url, **overrides)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine_on_both(request, data_dir, embedder) -> Iterator[Recommender]:
    """The ``engine`` on each backend: SQLite in the data dir, then the same store moved into PostgreSQL."""
    settings = make_settings(data_dir) if request.param == "sqlite" else \
        on_postgres(data_dir, request.getfixturevalue("database_url"))
    rec = Recommender(settings, embedder=embedder)
    yield rec
    rec.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path) -> Iterator[ArticleStore]:
    """An empty store on each backend: SQLite in a file, PostgreSQL in a new database on a real server."""
    s = SQLiteStore(tmp_path / "a.sqlite3") if request.param == "sqlite" else \
        PostgresStore(request.getfixturevalue("database_url"))
    yield s
    s.close()


def another(store: ArticleStore) -> ArticleStore:
    """A second store on ``store``'s database: connections of its own, so what it reads was committed."""
    if isinstance(store, PostgresStore):
        return PostgresStore(store.url)
    assert isinstance(store, SQLiteStore)
    return SQLiteStore(store.path)
