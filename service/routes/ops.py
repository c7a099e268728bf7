"""Liveness and readiness for the load balancer and the orchestrator."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from service.deps import Engine
from service.metrics import CONTENT_TYPE, exposition
from service.writer_socket import READY_PROBE_S, WRITES_UNAVAILABLE, writer_state

router = APIRouter(tags=["ops"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    # On the event loop, not in the thread pool: the writer answers it (its supervisor's health check) even
    # while every pool thread embeds.
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "index not loaded yet, or (a read worker of `recommender "
                                        "serve`) its writer process does not answer: writes cannot be taken"}})
def readyz(request: Request) -> JSONResponse:
    engine = getattr(request.app.state, "recommender", None)
    if engine is None:
        return JSONResponse({"status": "starting"}, status_code=503)
    socket = request.app.state.settings.writer_socket
    if socket is not None and writer_state(socket, READY_PROBE_S) != "answers":
        return JSONResponse({"status": WRITES_UNAVAILABLE, "articles": len(engine.index)}, status_code=503)
    return JSONResponse({"status": "ready", "articles": len(engine.index)})


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text exposition"}})
def metrics(engine: Engine) -> Response:
    """Prometheus metrics (names and meanings: README, "Operations")."""
    return Response(exposition(engine), media_type=CONTENT_TYPE)
