"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, Field, model_validator

from recommender.article import ArticleId, Text, Title
from recommender.events import Event
from recommender.experiments import VARIANT_LABEL, Experiment
from recommender.report import Comparison, VariantStats
from recommender.specs import VariantSpec, check_split


class ExplanationOut(BaseModel):
    semantic: float
    lexical: float
    recency: float
    diversity_penalty: float
    popularity: float = Field(description="The click-popularity signal in [0, 1] (weighs popularity_weight).")


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
    reason: Literal["similar", "section", "popular"] = Field(
        "similar", description="Why the item is listed: `similar` to the article, or a fallback below the "
        "relevance floor: a fresh article of its section (`section`), a popular one when the click signal is on "
        "(`popular`).")
    explanation: ExplanationOut | None = None


class SimilarList(BaseModel):
    article_id: str | None
    list_id: str = Field(description="The id of this list as shown (a digest of article, variant and items): "
                         "send it back with the list's impressions and clicks (POST /events).")
    variant: str = Field(description="The experiment's variant as `experiment/variant`; outside experiments "
                         "`default` (the default list), `custom` (the request's own options) or `preview`.")
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


EditorName = Field("", max_length=200, description="Who makes the change (the name the editor gave), for the log.")


class BoxOverridesPut(BoxOverridesIO):
    """The box's new pins and blocks, and who changes them and why (kept in its history, not in the box)."""

    editor: Text = EditorName
    reason: Text = Field("", max_length=2000)


class BlockIn(BaseModel):
    reason: Text = Field("", max_length=2000)
    editor: Text = EditorName


class BoxStateOut(BaseModel):
    """The article's stored box (the default list every view reads): when it was computed, whether a refresh is
    queued (a write changed what it may show; meanwhile lists are ranked on demand), its items."""

    stored: bool = Field(description="false: no box stored (not computed yet, or the article is unpublished).")
    computed_at: datetime | None = Field(description="When the refresh that stored it ran; null if unknown.")
    queued: bool
    items: int = Field(description="Items stored (up to RECOMMENDER_BOX_DEPTH).")


class OverrideChangeOut(BaseModel):
    """One change of a pin or block: when, what, by whom, why."""

    at: datetime
    box: str | None = Field(description="Whose box; null = every box (blocked everywhere).")
    item_id: str
    action: Literal["pin", "unpin", "block", "unblock"]
    position: int | None = Field(description="A pin's slot, 1 = top.")
    editor: str
    reason: str


class EventIn(BaseModel):
    """What a reader saw or clicked: one item of one list, as the list response gave it."""

    type: Literal["impression", "click"]
    article_id: ArticleId = Field(description="The page: the article whose box it was.")
    item_id: ArticleId
    position: int = Field(ge=1, le=50, description="1 = the first item of the list.")
    list_id: str = Field(pattern=r"^[0-9a-f]{16}$", description="The list's `list_id`.")
    variant: str = Field(pattern=VARIANT_LABEL, description="The list's `variant`.")
    ts: AwareDatetime = Field(description="When, ISO 8601 with a timezone.")

    def event(self) -> Event:
        return Event(self.type, self.article_id, self.item_id, self.position, self.list_id, self.variant,
                     int(self.ts.timestamp() * 1000))


class EventsOut(BaseModel):
    stored: int = Field(description="Events committed to the store (durable) before this answer.")


class ExperimentIn(BaseModel):
    """An experiment's variants (the first is the control) and whether it runs; activating one stops the
    running one."""

    variants: list[VariantSpec] = Field(min_length=2, max_length=10)
    active: bool = True

    @model_validator(mode="after")
    def _split(self) -> ExperimentIn:
        check_split(self.variants)
        return self


def utc_time(ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, UTC) if ms is not None else None


class ExperimentOut(BaseModel):
    name: str
    variants: list[VariantSpec]
    active: bool
    started_at: datetime | None = Field(description="Defined or last redefined; null for the one in settings.")
    stopped_at: datetime | None

    @classmethod
    def of(cls, experiment: Experiment) -> ExperimentOut:
        return cls(name=experiment.name, variants=experiment.spec.variants, active=experiment.active,
                   started_at=utc_time(experiment.started_at), stopped_at=utc_time(experiment.stopped_at))


class ReportOut(BaseModel):
    """An experiment's report: per variant, and each variant against the control (the first)."""

    experiment: ExperimentOut
    since: datetime | None
    test: str
    alpha: float
    variants: list[VariantStats]
    comparisons: list[Comparison]
