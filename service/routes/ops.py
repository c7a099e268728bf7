"""Liveness and readiness for the load balancer and the orchestrator."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from service.deps import Engine
from service.metrics import CONTENT_TYPE, exposition

router = APIRouter(tags=["ops"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "index not loaded yet"}})
def readyz(request: Request) -> JSONResponse:
    engine = getattr(request.app.state, "recommender", None)
    if engine is None:
        return JSONResponse({"status": "starting"}, status_code=503)
    return JSONResponse({"status": "ready", "articles": len(engine.index)})


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text exposition"}})
def metrics(engine: Engine) -> Response:
    """Prometheus metrics (names and meanings: README, "Operations")."""
    return Response(exposition(engine), media_type=CONTENT_TYPE)
