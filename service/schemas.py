"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class ExplanationOut(BaseModel):
    semantic: float
    lexical: float
    recency: float
    diversity_penalty: float


class Item(BaseModel):
    """A list item as documented; the bytes are written by ``recommender.listing.item_json``."""

    id: str
    title: str
    url: str | None
    published_at: datetime | None
    section: str | None
    image_url: str | None
    score: float
    group_size: int = Field(1, description="Reports of the same story folded into this item (itself included).")
    pinned: bool = Field(False, description="Placed by an editor.")
    explanation: ExplanationOut | None = None


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
