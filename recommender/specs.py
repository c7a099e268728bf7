"""The shapes settings accept, beside the settings (the bottom floor: they import nothing of the domain).

An experiment as defined in settings (``RECOMMENDER_EXPERIMENT``) or over the API, and the list options a variant
may set; ``recommender.experiments`` splits readers by them, ``recommender.rank`` ranks by the same options."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

Strategy = Literal["default", "embedding", "tfidf", "bm25"]
STRATEGIES: tuple[Strategy, ...] = get_args(Strategy)
GroupPick = Literal["best", "freshest"]  # which member of a same-story group represents it

NAME = r"^[a-z0-9][a-z0-9_-]{0,39}$"


class VariantOptions(BaseModel):
    """The per-request options a variant may set: the query parameters of ``GET /articles/{id}/similar`` of the
    same names, with the same bounds."""

    model_config = ConfigDict(extra="forbid")

    strategy: Strategy | None = None
    group_stories: bool | None = None
    group_pick: GroupPick | None = None
    window_days: float | None = Field(None, ge=0, le=36500)
    recency_half_life_days: float | None = Field(None, gt=0, le=36500)
    mmr_lambda: float | None = Field(None, ge=0, le=1)
    same_language_only: bool | None = None
    popularity_weight: float | None = Field(None, ge=0, le=1)

    def query(self) -> tuple[tuple[str, str], ...]:
        """The options as query parameters (those set), in field order."""
        return tuple((name, _param(value)) for name, value in self.model_dump(exclude_none=True).items())


def _param(value: object) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


class VariantSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME, description="Unique in its experiment: a-z, 0-9, '-', '_' (≤ 40).")
    share: float = Field(gt=0, le=1, description="Share of readers; the shares of an experiment add up to 1.")
    options: VariantOptions = Field(default_factory=VariantOptions,
                                    description="Per-request options; none = the stored default box.")


class ExperimentSpec(BaseModel):
    """An experiment as defined in settings (``RECOMMENDER_EXPERIMENT``) or over the API. The first variant is
    the control every other one is compared with."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME)
    variants: list[VariantSpec] = Field(min_length=2, max_length=10)

    @model_validator(mode="after")
    def _split(self) -> ExperimentSpec:
        check_split(self.variants)
        return self


def check_split(variants: list[VariantSpec]) -> None:
    """Variants split readers once each: unique names, shares adding up to 1."""
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise ValueError(f"variant names must be unique, got {names}")
    total = sum(v.share for v in variants)
    if abs(total - 1) > 1e-6:
        raise ValueError(f"variant shares must add up to 1, they add up to {total:g}")
