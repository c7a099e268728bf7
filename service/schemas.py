"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from recommender.rank import Explanation, Recommendation


class ExplanationOut(BaseModel):
    semantic: float
    lexical: float
    recency: float
    diversity_penalty: float


class Report(BaseModel):
    """Another report of an item's story, folded into it (a site can show "3 reports" and link them)."""

    id: str
    title: str
    url: str | None
    published_at: datetime | None


class Item(BaseModel):
    id: str
    title: str
    url: str | None
    published_at: datetime | None
    section: str | None
    image_url: str | None
    score: float
    group_size: int = Field(1, description="Reports of the same story folded into this item (itself included).")
    pinned: bool = Field(False, description="Placed by an editor.")
    also: list[Report] = Field(default_factory=list,
                               description="The other reports of this item's story folded into it, best first.")
    explanation: ExplanationOut | None = None

    @classmethod
    def of(cls, rec: Recommendation) -> Item:
        a = rec.article
        explanation = _explanation(rec.explanation) if rec.explanation else None
        return cls(id=a.id, title=a.title, url=a.url, published_at=a.published_at, section=a.section,
                   image_url=a.image_url, score=rec.score, group_size=rec.group_size, pinned=rec.pinned,
                   also=[Report(id=r.id, title=r.title, url=r.url, published_at=r.published_at) for r in rec.also],
                   explanation=explanation)


def _explanation(e: Explanation) -> ExplanationOut:
    return ExplanationOut(semantic=e.semantic, lexical=e.lexical, recency=e.recency,
                          diversity_penalty=e.diversity_penalty)


class SimilarList(BaseModel):
    article_id: str | None
    items: list[Item]


class PreviewRequest(BaseModel):
    title: str = Field(min_length=1, max_length=2000)
    text: str = Field("", max_length=1_000_000)


class UpsertOut(BaseModel):
    created: int
    updated: int
    unchanged: int
    embedded: int


class Problem(BaseModel):
    detail: str | list


class PinIn(BaseModel):
    id: str = Field(min_length=1, max_length=256)
    position: int = Field(ge=1, le=50, description="1 = top of the box.")


class BoxOverridesIO(BaseModel):
    """An article box's editorial overrides; a PUT replaces both lists."""

    pins: list[PinIn] = Field(default_factory=list, max_length=50)
    blocks: list[str] = Field(default_factory=list, max_length=10_000)


class BlockIn(BaseModel):
    reason: str = Field("", max_length=2000)
