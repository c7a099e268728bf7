"""``POST /events`` taken before FastAPI routing: a page view's report costs a JSON parse and a queue hand-off,
not a pass through the framework, so the lists the same process serves barely feel it. The route
(``service.routes.events``) documents the call and shares ``take_events`` with this middleware."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from recommender.engine import Recommender
from recommender.events import EventsBacklogged, event_errors
from recommender.settings import Settings
from recommender.store.sql import now_ms
from service.cache import send_json
from service.errors import ApiError, PayloadTooLarge, ServiceUnavailable, TooManyRequests, Unprocessable, api_error
from service.ratelimit import RateLimiter
from service.schemas import EventIn

EVENTS = TypeAdapter(list[EventIn])


async def take_events(events: list[EventIn], client: str, engine: Recommender, settings: Settings,
                      limiter: RateLimiter) -> int:
    """Check a batch against the caps, the client's rate and the clock, hand it to the event writer and wait
    for its commit; returns how many were stored, or raises the ``ApiError`` to answer."""
    if len(events) > settings.events_max_batch:
        raise PayloadTooLarge(f"{len(events)} events in one batch; send at most {settings.events_max_batch} "
                              "(RECOMMENDER_EVENTS_MAX_BATCH)")
    wait = limiter.retry_after(client, len(events))
    if wait is not None:
        raise TooManyRequests(f"over {settings.events_rate_per_s:g} events/s for this client: retry after "
                              f"{math.ceil(wait)} s", headers={"Retry-After": str(math.ceil(wait))})
    batch = [e.event() for e in events]
    errors = event_errors(batch, now_ms(), settings.events_retention_days)
    if errors:
        raise Unprocessable("; ".join(f"body.{i}.ts: {why}" for i, why in errors),
                            [{"type": "value_error", "loc": ["body", i, "ts"], "msg": why} for i, why in errors])
    try:
        return await asyncio.wrap_future(engine.events.submit(batch))
    except EventsBacklogged as exc:
        raise ServiceUnavailable(f"{exc}: send the batch again shortly") from None
    except Exception:  # the commit failed (logged by the writer): nothing of this batch is stored
        raise ServiceUnavailable("the events were not stored (see the server log): send them again") from None


class EventIntake:
    """ASGI middleware for ``POST /events`` (inside ``service.limits.BodyLimits``, which has checked the media
    type, capped the body and read it): parsed and validated in one pydantic call, errors in the one error
    body, the answer written as bytes."""

    def __init__(self, app: ASGIApp, engine: Callable[[], Recommender | None], settings: Settings,
                 limiter: RateLimiter):
        self.app = app
        self.engine = engine  # None while the engine is not open yet: the route answers
        self.settings = settings
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        engine = self.engine() if scope["type"] == "http" and scope["path"] == "/events" \
            and scope["method"] == "POST" else None
        if engine is None:
            await self.app(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        try:
            events = EVENTS.validate_json(body)
            stored = await take_events(events, self.limiter.client(HTTPConnection(scope)), engine, self.settings,
                                       self.limiter)
        except ValidationError as exc:
            errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
            await api_error(RequestValidationError(errors)).send(send)
            return
        except ApiError as exc:
            await exc.send(send)
            return
        await send_json(send, b'{"stored":%d}' % stored)
