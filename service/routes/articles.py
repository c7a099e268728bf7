"""Articles: read one, upsert one or a batch, take one down."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query

from recommender.article import ArticleInput, ArticleNotFound, parse_article
from recommender.writing import UpsertResult
from service.deps import ArticleId, Editor, Engine, Writer
from service.errors import Unprocessable, error_responses
from service.metrics import DELETED, count_upserts
from service.schemas import ArticleHit, UpsertOut

router = APIRouter(tags=["articles"])
WRITE_ERRORS = error_responses(400, 401, 403, 408, 413, 415, 422, 503)


@router.get("/articles", response_model=list[ArticleHit], responses=error_responses(422))
def find_articles(engine: Engine, editor: Editor,
                  q: Annotated[str, Query(min_length=1, max_length=200, description="An id, or words of a title.")],
                  limit: Annotated[int, Query(ge=1, le=100)] = 20) -> list[ArticleHit]:
    """Find articles: the one with id ``q``, then those whose title holds ``q``, newest first (unpublished ones
    for the editor only)."""
    return [ArticleHit.model_validate(a, from_attributes=True) for a in engine.find(q, limit, editor)]


@router.get("/articles/{article_id}", responses=error_responses(404, 422))
def get_article(article_id: ArticleId, engine: Engine, editor: Editor) -> ArticleInput:
    """The article as stored; an unpublished one is a 404 but for the editor."""
    return ArticleInput.model_validate(engine.get(article_id, editor), from_attributes=True)


@router.put("/articles/{article_id}", response_model=UpsertOut, dependencies=[Writer], responses=WRITE_ERRORS)
def put_article(article_id: ArticleId, body: Annotated[dict[str, Any], Body()], engine: Engine) -> UpsertOut:
    if body.get("id", article_id) != article_id:
        raise Unprocessable(f"body id {body.get('id')!r} differs from the URL's {article_id!r}",
                            [{"type": "value_error", "loc": ["body", "id"], "msg": "differs from the URL's id"}])
    article = parse_article(dict(body, id=article_id))
    return upserted(engine.upsert_all([article]))


@router.post("/articles", response_model=UpsertOut, dependencies=[Writer], responses=WRITE_ERRORS)
def post_articles(body: Annotated[list[dict[str, Any]], Body()], engine: Engine) -> UpsertOut:
    articles = [parse_article(raw) for raw in body]  # all or nothing: one bad article rejects the batch
    return upserted(engine.upsert_all(articles))  # one transaction: all written, or none


@router.delete("/articles/{article_id}", status_code=204, dependencies=[Writer],
               responses=error_responses(401, 403, 404, 422))
def delete_article(article_id: ArticleId, engine: Engine) -> None:
    if not engine.delete(article_id):
        raise ArticleNotFound(article_id)
    DELETED.inc()


def upserted(result: UpsertResult) -> UpsertOut:
    count_upserts(result)
    return UpsertOut(**asdict(result))
