"""The article: what a site sends us, validated once, and the text we embed from it."""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

Status = Literal["published", "unpublished"]

# C0 controls other than tab/newline/CR: NUL bytes and friends break tokenizers and logs, never carry meaning.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_TAG = re.compile(r"<[^>]{0,1000}>")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Article:
    id: str
    title: str
    lead: str = ""
    body: str = ""
    url: str | None = None
    published_at: datetime | None = None
    section: str | None = None
    tags: tuple[str, ...] = ()
    language: str | None = None
    image_url: str | None = None
    status: Status = "published"

    @property
    def is_published(self) -> bool:
        return self.status == "published"


def _clean(text: str) -> str:
    return _CONTROL.sub("", text)


class ArticleInput(BaseModel):
    """The validation of an incoming article, shared by the HTTP API and file ingest."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    id: str = Field(min_length=1, max_length=256, description="The site's own article id.")
    title: str = Field(min_length=1, max_length=2000)
    lead: str = Field("", description="Summary / standfirst.")
    body: str = ""
    url: str | None = Field(None, max_length=4000)
    published_at: datetime | None = Field(None, description="ISO 8601 with a timezone, e.g. 2019-11-01T10:00:00Z.")
    section: str | None = Field(None, max_length=200)
    tags: list[str] = Field(default_factory=list)
    language: str | None = Field(None, max_length=35, description="BCP 47 code, e.g. en, uk.")
    image_url: str | None = Field(None, max_length=4000)
    status: Status = "published"

    @field_validator("id", "title", "lead", "body", "section", "language", mode="before")
    @classmethod
    def _no_control_characters(cls, value: Any) -> Any:
        return _clean(value) if isinstance(value, str) else value

    @field_validator("id")
    @classmethod
    def _id_is_one_path_segment(cls, value: str) -> str:
        if "/" in value:
            raise ValueError("id must not contain '/' (it is used in URLs)")
        return value

    @field_validator("title")
    @classmethod
    def _title_has_text(cls, value: str) -> str:
        if not _SPACE.sub("", value):
            raise ValueError("title must not be empty")
        return value

    @field_validator("published_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.utcoffset() is None:
            raise ValueError("published_at needs a timezone, e.g. 2019-11-01T10:00:00Z")
        return value

    @field_validator("tags", mode="before")
    @classmethod
    def _split_tags(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [t for t in (p.strip() for p in re.split(r"[|,;]", value)) if t]
        return value

    @field_validator("section", "language", "url", "image_url", mode="after")
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        return value or None

    def to_article(self) -> Article:
        data = self.model_dump()
        data["tags"] = tuple(t for t in (_clean(t).strip() for t in data["tags"]) if t)
        return Article(**data)


def parse_article(data: dict[str, Any]) -> Article:
    """Validate one raw article; raises ``InvalidArticle`` naming each bad field."""
    try:
        return ArticleInput.model_validate(data).to_article()
    except ValidationError as exc:
        raise InvalidArticle(data.get("id") if isinstance(data, dict) else None, exc) from None


class InvalidArticle(ValueError):
    def __init__(self, article_id: Any, error: ValidationError):
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'article'}: {e['msg']}" for e in error.errors())
        super().__init__(f"article {article_id!r}: {problems}")
        self.article_id = article_id
        self.errors = error.errors(include_url=False)


def plain_text(text: str) -> str:
    """Text with HTML tags and entities removed and white space folded."""
    return _SPACE.sub(" ", html.unescape(_TAG.sub(" ", text))).strip()


def embedding_text(article: Article, body_chars: int) -> str:
    """What the model reads for an article: title, lead, then the first ``body_chars`` characters of the body.

    The title and lead carry most of what a story is about; the start of the body adds the who/where that
    short leads leave out. The model truncates at its own token limit anyway (256 tokens for MiniLM).
    """
    parts = [plain_text(article.title), plain_text(article.lead), plain_text(article.body)[:body_chars]]
    return ". ".join(p for p in parts if p)


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
