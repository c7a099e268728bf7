"""Events: the impressions and clicks the site reports (public, validated, capped, rate-limited per client)."""

from __future__ import annotations

import asyncio
import math
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request

from recommender.events import EventsBacklogged, event_errors
from recommender.store import now_ms
from service.deps import AppSettings, Engine
from service.errors import PayloadTooLarge, ServiceUnavailable, TooManyRequests, Unprocessable, error_responses
from service.ratelimit import RateLimiter
from service.schemas import EventIn, EventsOut

router = APIRouter(tags=["events"])


def get_limiter(request: Request) -> RateLimiter:
    return request.app.state.event_limiter


@router.post("/events", response_model=EventsOut, responses=error_responses(400, 408, 413, 415, 422, 429, 503))
async def post_events(body: Annotated[list[EventIn], Body()], request: Request, engine: Engine,
                      settings: AppSettings, limiter: Annotated[RateLimiter, Depends(get_limiter)]) -> EventsOut:
    """Store a batch of impressions and clicks; answered once they are committed (durable). Events are
    counted for reports (and the popularity signal when it is on); they never change a list directly."""
    if len(body) > settings.events_max_batch:
        raise PayloadTooLarge(f"{len(body)} events in one batch; send at most {settings.events_max_batch} "
                              "(RECOMMENDER_EVENTS_MAX_BATCH)")
    wait = limiter.retry_after(limiter.client(request), len(body))
    if wait is not None:
        raise TooManyRequests(f"over {settings.events_rate_per_s:g} events/s for this client: retry after "
                              f"{math.ceil(wait)} s", headers={"Retry-After": str(math.ceil(wait))})
    events = [e.event() for e in body]
    errors = event_errors(events, now_ms(), settings.events_retention_days)
    if errors:
        raise Unprocessable("; ".join(f"body.{i}.ts: {why}" for i, why in errors),
                            [{"type": "value_error", "loc": ["body", i, "ts"], "msg": why} for i, why in errors])
    try:
        stored = await asyncio.wrap_future(engine.events.submit(events))
    except EventsBacklogged as exc:
        raise ServiceUnavailable(f"{exc}: send the batch again shortly", headers={"Retry-After": "1"}) from None
    except Exception:  # the commit failed (logged by the writer): nothing of this batch is stored
        raise ServiceUnavailable("the events were not stored (see the server log): send them again",
                                 headers={"Retry-After": "1"}) from None
    return EventsOut(stored=stored)
