"""What route handlers are given: the engine, the settings, the HTML box's template, the writer's check and the
id path parameter."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BeforeValidator
from starlette.requests import HTTPConnection

from recommender.article import article_id
from recommender.engine import Recommender
from recommender.settings import Settings
from service.errors import ApiError, Forbidden, Unauthorized
from service.html import BoxRenderer


# Dependencies are ``async def`` unless they block: FastAPI runs a plain ``def`` one in the thread pool, a hop to a
# thread and back for each. A list ranked on demand made five (four for its dependencies): at 1M articles 5.5 ms
# of a worker's CPU against 4.6-4.9 with one (one client at a time: docs/benchmarks.md), and under load each hop
# waits for the GIL both ways behind the lists being ranked.
async def get_engine(request: Request) -> Recommender:
    return request.app.state.recommender


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_box_template(request: Request) -> BoxRenderer:
    return request.app.state.box_template


Engine = Annotated[Recommender, Depends(get_engine)]
AppSettings = Annotated[Settings, Depends(get_settings)]
BoxTemplate = Annotated[BoxRenderer, Depends(get_box_template)]

# The id rule of recommender.article, on every path: an id that could not be stored is a 422, never cleaned.
ArticleId = Annotated[str, Path(min_length=1, max_length=256, description="The site's article id."),
                      BeforeValidator(article_id)]

bearer = HTTPBearer(auto_error=False, scheme_name="writer",
                    description="RECOMMENDER_API_TOKEN: every write (PUT/POST/DELETE of articles, overrides, blocks) "
                    "and experiment reports; on reads, the editor finds unpublished articles too.")


async def writer_refusal(connection: HTTPConnection) -> ApiError | None:
    """Why this request may not write (403 read-only, 401 token), or None; read from its headers alone, so the
    body of a refused write is never read (``service.limits``)."""
    settings: Settings = connection.app.state.settings
    if not settings.allow_writes:
        return Forbidden("this service is read-only (RECOMMENDER_ALLOW_WRITES=false)")
    return await token_refusal(connection, "writes")


async def token_refusal(connection: HTTPConnection, what: str) -> ApiError | None:
    """401 when a token is set and this request does not carry it (``what`` names the calls that need it), else
    None."""
    settings: Settings = connection.app.state.settings
    if settings.api_token is None:
        return None
    credentials = await bearer(connection)
    token = settings.api_token.get_secret_value().encode()
    if credentials is None or not secrets.compare_digest(credentials.credentials.encode(), token):
        return Unauthorized(f"{what} need 'Authorization: Bearer <RECOMMENDER_API_TOKEN>'")
    return None


async def require_writer(request: Request,
                         _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
    """The writer's check as a dependency; it declares the bearer scheme in the OpenAPI document (``/docs``'s
    "Authorize"). Bodies of refused writes were answered before routing; this covers DELETE."""
    refusal = await writer_refusal(request)
    if refusal is not None:
        raise refusal


Writer = Depends(require_writer)


async def require_token(request: Request,
                        _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
    """The token, when one is set, for reads that are the site's own business (experiment reports), on a
    read-only replica too."""
    refusal = await token_refusal(request, "experiment reports")
    if refusal is not None:
        raise refusal


Token = Depends(require_token)


async def holds_token(request: Request) -> bool:
    """Whether the caller may write (the editor): it then also reads unpublished articles, which are not found
    for anyone else (a takedown is unpublished at once, everywhere). Not a declared security scheme: the
    token is optional on reads."""
    return await writer_refusal(request) is None


Editor = Annotated[bool, Depends(holds_token)]
