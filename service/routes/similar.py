"""The "Similar news" list: for an indexed article, and for a text not indexed yet (CMS preview)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from recommender.rank import GroupPick, SimilarQuery, Strategy
from recommender.store import StoreUnavailable
from service.deps import AppSettings, ArticleId, Engine
from service.errors import Unprocessable, error_responses
from service.lookup import default_limit
from service.schemas import PreviewRequest, SimilarList

router = APIRouter(tags=["similar"])

Limit = Annotated[int | None, Query(ge=1, le=50, description="Items in the list; default RECOMMENDER_DEFAULT_LIMIT.")]


# Parameter names before they took their settings' names: an old client gets a 422 saying so, not a list that
# silently ignores what it asked for.
RENAMED = {"max_age_days": "window_days", "half_life_days": "recency_half_life_days", "diversity": "mmr_lambda",
           "group": "group_stories"}


def refuse_renamed(request: Request) -> None:
    errors = [{"type": "renamed", "loc": ["query", old], "msg": f"renamed '{new}'"}
              for old, new in RENAMED.items() if old in request.query_params]
    if errors:
        raise Unprocessable("; ".join(f"query parameter '{e['loc'][1]}' is now {e['msg']}" for e in errors), errors)


@router.get("/articles/{article_id}/similar", response_model=SimilarList, responses=error_responses(404, 422),
            dependencies=[Depends(refuse_renamed)])
async def similar(
    request: Request,
    article_id: ArticleId,
    engine: Engine,
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
) -> Response:
    query = SimilarQuery(limit=limit or settings.default_limit, section=section, language=language,
                         exclude=frozenset(i for part in exclude or () for i in part.split(",") if i),
                         strategy=strategy, explain=explain, group_stories=group_stories, group_pick=group_pick,
                         window_days=window_days, recency_half_life_days=recency_half_life_days,
                         mmr_lambda=mmr_lambda, same_language_only=same_language_only)
    # Default lists with a stored box never get here (service.lookup.StoredLists), nor repeated requests
    # (service.cache.CachedLists, from the bytes of this response).
    try:
        items = await run_in_threadpool(engine.similar, article_id, query)
    except StoreUnavailable:
        # The database went away while a default list was ranked: its stored box as this process last read it.
        stored = default_limit(request.scope["query_string"], settings.default_limit)
        body = engine.stored_list_json(article_id, stored, unranked=True) if stored is not None else None
        if body is None:
            raise
        return Response(body, media_type="application/json")
    return Response(engine.list_json(article_id, items), media_type="application/json")


@router.post("/similar", response_model=SimilarList, responses=error_responses(400, 408, 413, 415, 422))
def similar_preview(body: PreviewRequest, engine: Engine, settings: AppSettings, limit: Limit = None,
                    strategy: Strategy = "default", explain: bool = False) -> Response:
    query = SimilarQuery(limit=limit or settings.default_limit, strategy=strategy, explain=explain)
    items = engine.similar_to_text(body.title, body.text, query)
    return Response(engine.list_json(None, items), media_type="application/json")
