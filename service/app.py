"""The app factory: the routers of ``service.routes`` behind the middleware, over one ``Recommender``.

HTTP in, calls into ``recommender`` out; no ranking logic lives in this package."""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import anyio
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline

from recommender.engine import Recommender
from recommender.processes import die_with_spawner
from recommender.refresher import Refresher
from recommender.settings import Settings
from service.cache import CachedLists
from service.deps import writer_refusal
from service.errors import JsonErrors, install_error_handlers
from service.forward import ForwardWrites
from service.html import HtmlBoxes
from service.http_caching import HttpCaching
from service.intake import EventIntake
from service.limits import BodyLimits
from service.lookup import StoredLists
from service.metrics import MODEL_LOAD, process_ended
from service.observe import AccessLog, Observed
from service.paths import DecodedPaths
from service.previews import PreviewCap
from service.protocol import configure_protocol
from service.ratelimit import RateLimiter
from service.refusals import box_renderer
from service.routes import ROUTERS

log = logging.getLogger("recommender.service")


def create_app(settings: Settings, recommender: Recommender | None = None, refresh_boxes: bool = True) -> FastAPI:
    """The app for ``settings``; opens (and on shutdown checkpoints) its own ``Recommender`` unless given one.

    With ``settings.writer_socket`` it is a read worker (writes go to the writer process there); otherwise it
    writes itself, and refreshes the stored boxes too unless ``refresh_boxes`` is false (the writer process of
    `recommender serve`, whose refresher is a process of its own)."""
    renderer = box_renderer(settings)
    configure_protocol(settings)  # the server this process runs, whoever starts it
    # /docs serves Swagger UI's script and CSS from the app (fastapi-offline ships them): no CDN, so it works on
    # an intranet. No trailing-slash redirects: Starlette builds them from the client's Host header.
    app = FastAPIOffline(title="Similar news", version="0.1.0", lifespan=_lifespan(settings, recommender, refresh_boxes),
                         redirect_slashes=False,
                         description="Related-article recommendations for a news site's \"Similar news\" box.")
    app.state.settings = settings
    app.state.box_template = renderer
    limiter = app.state.event_limiter = RateLimiter(settings.events_rate_per_s, settings.events_burst,
                                                    settings.events_client_header, settings.events_proxy_hops)
    app.add_middleware(CachedLists, size=settings.cache_size, generation=lambda: _generation(app))
    app.add_middleware(StoredLists, engine=lambda: getattr(app.state, "recommender", None),
                       limit=settings.default_limit)
    app.add_middleware(HtmlBoxes)
    if settings.writer_socket is None:  # this process embeds previews itself
        app.add_middleware(PreviewCap, cap=settings.max_previews)
    else:  # a read worker of `recommender serve`: the writer process writes (and caps previews)
        app.add_middleware(ForwardWrites, socket=settings.writer_socket,
                           followed=lambda: app.state.recommender.follow(), answer_s=settings.writer_timeout_s)
    # Outside ForwardWrites: every process takes events itself (an append, no model), each client rate-limited
    # by its own address, which a relay to the writer would hide.
    app.add_middleware(EventIntake, engine=lambda: getattr(app.state, "recommender", None), settings=settings,
                       limiter=limiter)
    app.add_middleware(BodyLimits, max_article_bytes=settings.max_article_bytes,
                       max_batch_bytes=settings.max_batch_bytes, max_preview_bytes=settings.max_preview_bytes,
                       max_events_bytes=settings.max_events_bytes,
                       body_timeout_s=settings.body_timeout_s, refuse_writer=writer_refusal)
    app.add_middleware(DecodedPaths)
    # Outside every layer that answers a list (HEAD reaches them as GET) and inside CORS (which adds its headers
    # to a 304 too).
    app.add_middleware(HttpCaching, settings=settings)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type", "X-Reader"])
    app.add_middleware(JsonErrors)
    # Outermost: it times, counts and logs what every layer answers.
    app.state.access_log = AccessLog(settings.log_format)
    app.add_middleware(Observed, access_log=app.state.access_log)
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    return app


def _lifespan(settings: Settings, given: Recommender | None, refresh_boxes: bool
              ) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The event loop answering stored boxes is always runnable under load; with the default 5 ms switch
        # interval every GIL hand-back of a write (each torch op, each SQLite call) waited that long, and one
        # PUT took seconds. 0.5 ms lets writes and the refresher through at a small cost to the loop.
        sys.setswitchinterval(settings.switch_interval_s)
        # A read worker only follows the store; a process that writes also checkpoints the index (and refreshes
        # boxes, unless a refresher process does). A read worker yields the CPU to the writer and the refresher
        # once it has loaded (os.nice applies to this thread and those it starts from now on).
        writes_here = settings.writer_socket is None
        engine = given or Recommender(settings)
        if not writes_here:
            os.nice(settings.reader_nice)
        engine.on_model_load = MODEL_LOAD.set
        app.state.recommender = engine
        app.state.ranking_turns = anyio.CapacityLimiter(settings.ranking_threads)
        stop = threading.Event()
        saver = threading.Thread(target=_checkpoint_loop, args=(engine, settings, stop), daemon=True)
        if writes_here:
            saver.start()
        refresher = Refresher(engine, boxes=writes_here and refresh_boxes).start()
        log.info("serving %d articles (%d indexed)", engine.store.count(), len(engine.index))
        yield
        stop.set()
        if writes_here:
            saver.join()
        refresher.stop()
        if given is None:
            engine.close()
        else:
            engine.checkpoint()
        process_ended()
        app.state.access_log.flush()

    return lifespan


def _generation(app: FastAPI) -> int | None:
    # None (nothing cached, nothing served from the cache) while this process has not applied the latest
    # write: the route's ranking then catches up first, off the event loop.
    engine = getattr(app.state, "recommender", None)
    return engine.current_generation() if engine is not None else None


def app_from_env() -> FastAPI:
    """The app for the settings in the environment (``uvicorn --factory``: each worker process builds its own)."""
    die_with_spawner()
    return create_app(Settings())


def _checkpoint_loop(engine: Recommender, settings: Settings, stop: threading.Event) -> None:
    while not stop.wait(settings.index_save_interval_s):
        try:
            engine.checkpoint()
        except Exception:  # a failed checkpoint must not stop the next one; the store still has every write
            log.exception("index checkpoint failed")
