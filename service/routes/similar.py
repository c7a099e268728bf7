"""The "Similar news" list: for an indexed article, and for a text not indexed yet (CMS preview)."""

from __future__ import annotations

import json
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from recommender.engine import Recommender
from recommender.listing import DEFAULT_VARIANT, PREVIEW_VARIANT, ListJson
from recommender.rank import SimilarQuery
from recommender.settings import BoxLocale
from recommender.specs import GroupPick, Strategy
from service.deps import AppSettings, ArticleId, BoxTemplate, Editor, Engine
from service.errors import ClientClosedRequest, Unprocessable, error_responses
from service.html import VARY
from service.http_caching import hold_list
from service.lookup import VARIANT
from service.metrics import count_list
from service.schemas import BoxStateOut, PreviewRequest, SimilarList

router = APIRouter(tags=["similar"])

Limit = Annotated[int | None, Query(ge=1, le=50, description="Items in the list; default RECOMMENDER_DEFAULT_LIMIT.")]


# Parameter names before they took their settings' names: an old client gets a 422 saying so, not a list that
# silently ignores what it asked for.
RENAMED = {"max_age_days": "window_days", "half_life_days": "recency_half_life_days", "diversity": "mmr_lambda",
           "group": "group_stories"}


async def refuse_renamed(request: Request) -> None:
    errors = [{"type": "renamed", "loc": ["query", old], "msg": f"renamed '{new}'"}
              for old, new in RENAMED.items() if old in request.query_params]
    if errors:
        raise Unprocessable("; ".join(f"query parameter '{e['loc'][1]}' is now {e['msg']}" for e in errors), errors)


async def similar_query(
    settings: AppSettings,
    limit: Limit = None,
    section: Annotated[str | None, Query(max_length=200)] = None,
    language: Annotated[str | None, Query(max_length=35)] = None,
    exclude: Annotated[list[str] | None, Query(description="Ids to leave out; repeat or comma-separate.")] = None,
    strategy: Strategy = "default",
    explain: bool = False,
    group_stories: Annotated[bool, Query(description="One item per same-story group.")] = True,
    group_pick: Annotated[GroupPick, Query(description="Which report represents a story.")] = "best",
    # Per-request overrides of the settings of the same names (RECOMMENDER_...).
    window_days: Annotated[float | None, Query(
        ge=0, le=36500, description="Window around the article's date; 0 = none.")] = None,
    recency_half_life_days: Annotated[float | None, Query(gt=0, le=36500)] = None,
    mmr_lambda: Annotated[float | None, Query(
        ge=0, le=1, description="1 = relevance only, lower = more diverse.")] = None,
    same_language_only: Annotated[bool | None, Query(description="false = cross-lingual.")] = None,
    popularity_weight: Annotated[float | None, Query(
        ge=0, le=1, description="Share of the readers' click popularity in the default's score; 0 = none.")] = None,
) -> SimilarQuery:
    """The list's query parameters, the same for the JSON list and the HTML box."""
    return SimilarQuery(limit=limit or settings.default_limit, section=section, language=language,
                        exclude=frozenset(i for part in exclude or () for i in part.split(",") if i),
                        strategy=strategy, explain=explain, group_stories=group_stories, group_pick=group_pick,
                        window_days=window_days, recency_half_life_days=recency_half_life_days,
                        mmr_lambda=mmr_lambda, same_language_only=same_language_only,
                        popularity_weight=popularity_weight)


ListQuery = Annotated[SimilarQuery, Depends(similar_query)]
Locale = Annotated[BoxLocale | None, Query(description=(
    "Language of the box's heading, photo credit and dates; unset = RECOMMENDER_BOX_LOCALE."))]
Reader = Annotated[str | None, Query(max_length=256, description=(
    "The site's id for the visitor (or the x-reader header): the running experiment's variant is chosen by it; "
    "without one, by the client's address and user agent."))]


async def _list_body(request: Request, engine: Recommender, article_id: str, query: SimilarQuery, variant: str,
                     editor: bool) -> tuple[ListJson, str]:
    """``Recommender.list_body`` in the thread pool, in its turn among the lists this process ranks
    (RECOMMENDER_RANKING_THREADS at once); not ranked for a client gone by its turn (a box script or a CDN that
    gave up, and may have asked again: nobody would receive it, and the readers queued behind would wait)."""
    async with request.app.state.ranking_turns:
        if await request.is_disconnected():
            raise ClientClosedRequest(f"the client closed the connection before the list of {article_id!r} was "
                                      "ranked")
        return await anyio.to_thread.run_sync(engine.list_body, article_id, query, variant, editor)


@router.get("/articles/{article_id}/similar", response_model=SimilarList, responses=error_responses(404, 422),
            dependencies=[Depends(refuse_renamed)])
async def similar(request: Request, article_id: ArticleId, engine: Engine, query: ListQuery, editor: Editor,
                  reader: Reader = None) -> Response:
    """The list as JSON (``Accept: text/html`` gets the HTML box instead: ``similar.html``); that of an
    unpublished article is a 404 but for the editor."""
    # Default lists with a stored box never get here (service.lookup.StoredLists), nor repeated requests
    # (service.cache.CachedLists, from the bytes of this response). StoredLists gave the request its variant
    # (the reader's) and put that variant's options in the query.
    variant = request.scope.get(VARIANT, DEFAULT_VARIANT)
    body, source = await _list_body(request, engine, article_id, query, variant, editor)
    count_list(request.scope, source)
    hold_list(request.scope, body)  # its surrogate keys (service.http_caching)
    return Response(body, media_type="application/json", headers=VARY)


@router.get("/articles/{article_id}/similar.html", dependencies=[Depends(refuse_renamed)],
            responses={**error_responses(404, 422), 200: {"content": {"text/html": {}},
                                                          "description": "the box as an HTML fragment"}})
async def similar_html(request: Request, article_id: ArticleId, engine: Engine, query: ListQuery,
                       template: BoxTemplate, editor: Editor, locale: Locale = None) -> HTMLResponse:
    """The box as an HTML fragment for the site to embed (template: RECOMMENDER_BOX_TEMPLATE), same query;
    ``locale`` chooses the words and dates (default RECOMMENDER_BOX_LOCALE); an unpublished article's is a 404 but for
    the editor."""
    # A stored box is read here, as StoredLists reads the JSON list's before routing: a page view embedding the box
    # never waits for a turn behind lists ranked on demand.
    body, source = engine.stored_body(article_id, query, DEFAULT_VARIANT), "stored"
    if body is None:
        body, source = await _list_body(request, engine, article_id, query, DEFAULT_VARIANT, editor)
    count_list(request.scope, source)
    hold_list(request.scope, body)  # its surrogate keys (service.http_caching)
    return HTMLResponse(template.render(json.loads(body), locale), headers=VARY)


@router.get("/articles/{article_id}/box", response_model=BoxStateOut, responses=error_responses(404, 422))
def box_state(article_id: ArticleId, engine: Engine, editor: Editor) -> BoxStateOut:
    """When the article's stored box was computed and whether a refresh of it is queued (the editor's page
    shows it); an unpublished article's is a 404 but for the editor."""
    state = engine.box_state(article_id, editor)
    if state is None:
        return BoxStateOut(stored=False, computed_at=None, queued=False, items=0)
    return BoxStateOut(stored=True, computed_at=state.computed_at, queued=state.queued, items=state.items)


@router.post("/similar", response_model=SimilarList, responses=error_responses(400, 408, 413, 415, 422))
def similar_preview(request: Request, body: PreviewRequest, engine: Engine, settings: AppSettings,
                    limit: Limit = None, strategy: Strategy = "default", explain: bool = False) -> Response:
    query = SimilarQuery(limit=limit or settings.default_limit, strategy=strategy, explain=explain)
    items = engine.similar_to_text(body.title, body.text, query)
    count_list(request.scope, "preview")
    return Response(engine.list_json(None, items, PREVIEW_VARIANT), media_type="application/json")
