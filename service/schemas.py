"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, model_validator

from recommender.article import ArticleId, Text, Title


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
    """A list item as documented; the bytes are written by ``recommender.listing.item_json``."""

    id: str
    title: str
    url: str | None
    published_at: datetime | None
    section: str | None
    image_url: str | None
    image_credit: str | None = Field(None, description="The photo's credit, e.g. \"Getty Images\".")
    excerpt: str = Field("", description="The opening shown under the title: the lead, else the body, as plain "
                         "text, cut at a word boundary to RECOMMENDER_EXCERPT_CHARS.")
    score: float
    group_size: int = Field(1, description="Reports of the same story folded into this item (itself included).")
    pinned: bool = Field(False, description="Placed by an editor.")
    also: list[Report] = Field(default_factory=list,
                               description="The other reports of this item's story folded into it, best first.")
    explanation: ExplanationOut | None = None


class SimilarList(BaseModel):
    article_id: str | None
    items: list[Item]


class PreviewRequest(BaseModel):
    """The same title rule as an article's; the text is cut to the embedded length (and the body capped at
    RECOMMENDER_MAX_PREVIEW_BYTES) before any work on it."""

    title: Title
    text: Text = ""


class ArticleHit(BaseModel):
    """An article found by id or title (the editor's search)."""

    id: str
    title: str
    published_at: datetime | None
    section: str | None
    status: str


class UpsertOut(BaseModel):
    created: int
    updated: int
    unchanged: int
    embedded: int


class FieldError(BaseModel):
    type: str = Field(description="What kind of problem, e.g. missing, string_too_long, value_error.")
    loc: list[str | int] = Field(description="Where: e.g. [\"query\", \"limit\"] or [\"body\", \"title\"].")
    msg: str


class ErrorBody(BaseModel):
    """The body of every error the API answers (4xx, and the 500 nobody foresaw)."""

    detail: str = Field(description="What is wrong, and what to do about it.")
    errors: list[FieldError] = Field(description="Each field to blame; empty when no field is.")
    article_id: str | None = Field(description="The article of a batch the error is about, else null.")


class PinIn(BaseModel):
    id: ArticleId
    position: int = Field(ge=1, le=50, description="1 = top of the box.")


class BoxOverridesIO(BaseModel):
    """An article box's editorial overrides; a PUT replaces both lists. An item is pinned once, or blocked."""

    pins: list[PinIn] = Field(default_factory=list, max_length=50)
    blocks: list[ArticleId] = Field(default_factory=list, max_length=10_000)

    @model_validator(mode="after")
    def _each_item_once(self) -> BoxOverridesIO:
        pinned: set[str] = set()
        for n, pin in enumerate(self.pins):
            if pin.id in pinned:
                raise ValueError(f"pins.{n}: {pin.id!r} is pinned twice")
            pinned.add(pin.id)
        for n, item in enumerate(self.blocks):
            if item in pinned:
                raise ValueError(f"blocks.{n}: {item!r} is both pinned and blocked")
        return self


class BlockIn(BaseModel):
    reason: Text = Field("", max_length=2000)
