"""FastAPI app: HTTP in, calls into ``recommender`` out. No ranking logic lives here."""

import logging
import secrets
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Annotated, Literal

from fastapi import Body, Depends, FastAPI, Header, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from pydantic import BeforeValidator
from starlette.concurrency import run_in_threadpool

from recommender.article import ArticleInput, InvalidArticle, article_id, error_details, parse_article
from recommender.engine import ArticleNotFound, Recommender
from recommender.refresher import Refresher
from recommender.overrides import BoxOverrides, Pin
from recommender.rank import STRATEGIES, SimilarQuery
from recommender.settings import Settings
from service.cache import CachedLists
from service.errors import JsonErrors
from service.limits import BodyLimits, Refusal
from service.lookup import StoredLists
from service.protocol import configure_protocol
from service.schemas import BlockIn, BoxOverridesIO, PinIn, PreviewRequest, SimilarList, UpsertOut

log = logging.getLogger("recommender.service")
Strategy = Literal["default", "embedding", "tfidf", "bm25"]
assert set(Strategy.__args__) == set(STRATEGIES)  # type: ignore[attr-defined]
# The id rule of recommender.article, on every path: an id that could not be stored is a 422, never cleaned.
ArticleId = Annotated[str, Path(min_length=1, max_length=256, description="The site's article id."),
                      BeforeValidator(article_id)]


def create_app(settings: Settings, recommender: Recommender | None = None) -> FastAPI:
    """The app for ``settings``; opens (and on shutdown checkpoints) its own ``Recommender`` unless given one."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The event loop answering stored boxes is always runnable under load; with the default 5 ms switch
        # interval every GIL hand-back of a write (each torch op, each SQLite call) waited that long, and one
        # PUT took seconds. 0.5 ms lets writes and the refresher through at a small cost to the loop.
        sys.setswitchinterval(settings.switch_interval_s)
        engine = recommender or Recommender(settings)
        app.state.recommender = engine
        stop = threading.Event()
        saver = threading.Thread(target=_checkpoint_loop, args=(engine, settings, stop), daemon=True)
        saver.start()
        refresher = Refresher(engine).start()
        log.info("serving %d articles (%d indexed)", engine.store.count(), len(engine.index))
        yield
        stop.set()
        saver.join()
        refresher.stop()
        if recommender is None:
            engine.close()
        else:
            engine.checkpoint()

    refuse_open_writes(settings)
    # No trailing-slash redirects: Starlette builds them from the client's Host header.
    app = FastAPI(title="Similar news", version="0.1.0", lifespan=lifespan, redirect_slashes=False,
                  description="Related-article recommendations for a news site's \"Similar news\" box.")
    app.add_middleware(CachedLists, size=settings.cache_size, generation=lambda: _generation(app))
    app.add_middleware(StoredLists, engine=lambda: getattr(app.state, "recommender", None),
                       limit=settings.default_limit)
    app.add_middleware(BodyLimits, max_article_bytes=settings.max_article_bytes,
                       max_batch_bytes=settings.max_batch_bytes, max_preview_bytes=settings.max_preview_bytes,
                       body_timeout_s=settings.body_timeout_s,
                       refuse_writer=lambda authorization: writer_refusal(settings, authorization))
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(JsonErrors)

    def engine(request: Request) -> Recommender:
        return request.app.state.recommender

    Engine = Annotated[Recommender, Depends(engine)]

    def require_writer(authorization: Annotated[str | None, Header()] = None) -> None:
        # Bodies of writes are refused earlier, unread (BodyLimits); this covers DELETE.
        refusal = writer_refusal(settings, authorization)
        if refusal is not None:
            raise HTTPException(refusal[0], refusal[1], headers=refusal[2])

    Writer = Depends(require_writer)

    @app.exception_handler(ArticleNotFound)
    async def _not_found(request: Request, exc: ArticleNotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(InvalidArticle)
    async def _invalid(request: Request, exc: InvalidArticle) -> JSONResponse:
        return JSONResponse({"detail": exc.errors, "article_id": exc.article_id}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def _unprocessable(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": error_details(exc.errors())}, status_code=422)

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], responses={503: {"description": "index not loaded yet"}})
    def readyz(request: Request) -> JSONResponse:
        engine = getattr(request.app.state, "recommender", None)
        if engine is None:
            return JSONResponse({"status": "starting"}, status_code=503)
        return JSONResponse({"status": "ready", "articles": len(engine.index)})

    @app.get("/articles/{article_id}/similar", response_model=SimilarList, tags=["similar"],
             responses={404: {"description": "unknown article id"}})
    async def similar(
        article_id: ArticleId,
        engine: Engine,
        limit: Annotated[int, Query(ge=1, le=50)] = settings.default_limit,
        section: Annotated[str | None, Query(max_length=200)] = None,
        language: Annotated[str | None, Query(max_length=35)] = None,
        max_age_days: Annotated[float | None, Query(
            ge=0, le=36500, description="Window around the article's date; 0 = none; default "
            "RECOMMENDER_WINDOW_DAYS.")] = None,
        exclude: Annotated[list[str], Query(description="Ids to leave out; repeat or comma-separate.")] = [],
        strategy: Strategy = "default",
        explain: bool = False,
        same_language_only: Annotated[bool | None, Query(
            description="Only the article's language; false = cross-lingual.")] = None,
        half_life_days: Annotated[float | None, Query(gt=0, le=36500, description="Recency half-life.")] = None,
        diversity: Annotated[float | None, Query(
            ge=0, le=1, description="MMR lambda: 1 = relevance only, lower = more diverse.")] = None,
        group: Annotated[bool, Query(description="One item per same-story group.")] = True,
        group_pick: Annotated[Literal["best", "freshest"], Query(
            description="Which report represents a story.")] = "best",
    ) -> Response:
        query = SimilarQuery(limit=limit, section=section, language=language, max_age_days=max_age_days,
                             exclude=frozenset(i for part in exclude for i in part.split(",") if i),
                             strategy=strategy, explain=explain, same_language_only=same_language_only,
                             half_life_days=half_life_days, diversity=diversity, group_stories=group,
                             group_pick=group_pick)
        # Default lists with a stored box never get here (StoredLists), nor repeated requests (CachedLists).
        items = await run_in_threadpool(engine.similar, article_id, query)
        return Response(engine.list_json(article_id, items), media_type="application/json")

    @app.post("/similar", response_model=SimilarList, tags=["similar"])
    def similar_preview(
        body: PreviewRequest,
        engine: Engine,
        limit: Annotated[int, Query(ge=1, le=50)] = settings.default_limit,
        strategy: Strategy = "default",
        explain: bool = False,
    ) -> Response:
        items = engine.similar_to_text(body.title, body.text, SimilarQuery(limit=limit, strategy=strategy,
                                                                         explain=explain))
        return Response(engine.list_json(None, items), media_type="application/json")

    @app.get("/articles/{article_id}", tags=["articles"], responses={404: {"description": "unknown article id"}})
    def get_article(article_id: ArticleId, engine: Engine) -> ArticleInput:
        return ArticleInput.model_validate(engine.get(article_id), from_attributes=True)

    @app.put("/articles/{article_id}", response_model=UpsertOut, tags=["articles"], dependencies=[Writer])
    def put_article(article_id: ArticleId, body: Annotated[dict, Body()], engine: Engine) -> UpsertOut:
        if body.get("id", article_id) != article_id:
            raise HTTPException(422, f"body id {body.get('id')!r} differs from the URL's {article_id!r}")
        article = parse_article(dict(body, id=article_id))
        return UpsertOut(**asdict(engine.upsert_all([article])))

    @app.post("/articles", response_model=UpsertOut, tags=["articles"], dependencies=[Writer])
    def post_articles(body: Annotated[list[dict], Body()], engine: Engine) -> UpsertOut:
        articles = [parse_article(raw) for raw in body]  # all or nothing: one bad article rejects the batch
        return UpsertOut(**asdict(engine.upsert_all(articles)))  # one transaction: all written, or none

    @app.delete("/articles/{article_id}", status_code=204, tags=["articles"], dependencies=[Writer],
                responses={404: {"description": "unknown article id"}})
    def delete_article(article_id: ArticleId, engine: Engine) -> None:
        if not engine.delete(article_id):
            raise ArticleNotFound(article_id)

    @app.get("/articles/{article_id}/overrides", response_model=BoxOverridesIO, tags=["editorial"],
             responses={404: {"description": "unknown article id"}})
    def get_overrides(article_id: ArticleId, engine: Engine) -> BoxOverridesIO:
        box = engine.box_overrides(article_id)
        return BoxOverridesIO(pins=[PinIn(id=p.item_id, position=p.position) for p in box.pins],
                              blocks=sorted(box.blocks))

    @app.put("/articles/{article_id}/overrides", response_model=BoxOverridesIO, tags=["editorial"],
             dependencies=[Writer], responses={404: {"description": "unknown article id"}})
    def put_overrides(article_id: ArticleId, body: BoxOverridesIO, engine: Engine) -> BoxOverridesIO:
        engine.set_box_overrides(article_id, BoxOverrides(
            pins=tuple(Pin(p.id, p.position) for p in body.pins), blocks=frozenset(body.blocks)))
        return body

    @app.get("/blocked", tags=["editorial"])
    def get_blocked(engine: Engine) -> dict[str, str]:
        """Articles kept out of every box, with the reason."""
        return engine.blocked_everywhere()

    @app.put("/blocked/{item_id}", status_code=204, tags=["editorial"], dependencies=[Writer])
    def put_blocked(item_id: ArticleId, body: BlockIn, engine: Engine) -> None:
        engine.block_everywhere(item_id, body.reason)

    @app.delete("/blocked/{item_id}", status_code=204, tags=["editorial"], dependencies=[Writer],
                responses={404: {"description": "not blocked"}})
    def delete_blocked(item_id: ArticleId, engine: Engine) -> None:
        if not engine.unblock_everywhere(item_id):
            raise HTTPException(404, f"{item_id!r} is not blocked")

    return app


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _generation(app: FastAPI) -> int | None:
    # None (nothing cached, nothing served from the cache) while this process has not applied the latest
    # write: the route's ranking then catches up first, off the event loop.
    engine = getattr(app.state, "recommender", None)
    return engine.current_generation() if engine is not None else None


class OpenWritesRefused(RuntimeError):
    pass


def writer_refusal(settings: Settings, authorization: str | None) -> Refusal:
    """Why a write with this ``Authorization`` header must be refused (status, detail, headers), or None."""
    if not settings.allow_writes:
        return 403, "this service is read-only (RECOMMENDER_ALLOW_WRITES=false)", {}
    token = settings.api_token.get_secret_value() if settings.api_token else None
    if token is None:
        return None
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(given.encode(), token.encode()):
        return 401, "writes need 'Authorization: Bearer <RECOMMENDER_API_TOKEN>'", {"WWW-Authenticate": "Bearer"}
    return None


def refuse_open_writes(settings: Settings) -> None:
    """Unauthenticated writes are only ever reachable from this machine."""
    if settings.host not in LOOPBACK and settings.api_token is None and settings.allow_writes:
        raise OpenWritesRefused(
            f"refusing to serve writes on {settings.host} without a token: set RECOMMENDER_API_TOKEN, "
            "or RECOMMENDER_ALLOW_WRITES=false for a read-only replica"
        )


def app_from_env() -> FastAPI:
    """The app for the settings in the environment (``uvicorn --factory``: each worker process builds its own)."""
    settings = Settings()
    configure_protocol(settings)
    return create_app(settings)


def _checkpoint_loop(engine: Recommender, settings: Settings, stop: threading.Event) -> None:
    while not stop.wait(settings.index_save_interval_s):
        try:
            engine.checkpoint()
        except Exception:  # a failed checkpoint must not stop the next one; the store still has every write
            log.exception("index checkpoint failed")
