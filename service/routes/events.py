"""Events: the impressions and clicks the site reports (public, validated, capped, rate-limited per client).

Answered by ``service.intake.EventIntake`` before routing once the engine is open; this route documents the
call (OpenAPI) and answers the same way through the same ``take_events``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request

from service.deps import AppSettings, Engine
from service.errors import error_responses
from service.intake import take_events
from service.ratelimit import RateLimiter
from service.schemas import EventIn, EventsOut

router = APIRouter(tags=["events"])


async def get_limiter(request: Request) -> RateLimiter:
    return request.app.state.event_limiter


@router.post("/events", response_model=EventsOut, responses=error_responses(400, 408, 413, 415, 422, 429, 503))
async def post_events(body: Annotated[list[EventIn], Body()], request: Request, engine: Engine,
                      settings: AppSettings, limiter: Annotated[RateLimiter, Depends(get_limiter)]) -> EventsOut:
    """Store a batch of impressions and clicks; answered once they are committed (durable). Events are
    counted for reports (and the popularity signal when it is on); they never change a list directly."""
    return EventsOut(stored=await take_events(body, limiter.client(request), engine, settings, limiter))
