"""The article: what a site sends us, validated once, and the text we embed from it."""

from __future__ import annotations

import hashlib
import html
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

Status = Literal["published", "unpublished"]

# C0 controls other than tab/newline/CR: NUL bytes and friends break tokenizers and logs, never carry meaning.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_TAG = re.compile(r"<[^>]{0,1000}>")
# What a page never shows as text: a script's or a style sheet's contents, up to its end tag (or to the end of the
# text, as a browser reads an unclosed one).
_HIDDEN = re.compile(r"<(script|style)\b[^>]{0,1000}>.*?(?:</\1\s*>|\Z)", re.IGNORECASE | re.DOTALL)
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True, weakref_slot=True)  # weakly referenced by the item-JSON cache (listing)
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
    image_credit: str | None = None  # shown with the photo: "Photo: Getty Images"

    @property
    def is_published(self) -> bool:
        return self.status == "published"


def _clean(text: str) -> str:
    return _CONTROL.sub("", text)


def unicode_text(value: Any) -> Any:
    """A string that is valid Unicode: a lone UTF-16 surrogate (``"\\ud800"``, or a non-UTF-8 byte of a file)
    can be neither stored nor embedded."""
    if isinstance(value, str) and not _encodable(value):
        raise ValueError("holds a lone UTF-16 surrogate (or, in a file, a byte that is not UTF-8)")
    return value


def article_id(value: Any) -> Any:
    """The id rule, the same on every path (write and read): ids are compared exactly as sent, never cleaned."""
    if isinstance(value, str):
        unicode_text(value)
        if value != value.strip():
            raise ValueError("id must not start or end with white space")
        if any(unicodedata.category(c) == "Cc" for c in value):
            raise ValueError("id must not contain control characters")
        if "/" in value:
            raise ValueError("id must not contain '/' (it is used in URLs)")
        if value in (".", ".."):  # a browser and an HTTP client resolve them as path segments
            raise ValueError("id must not be '.' or '..' (URLs resolve them as path segments)")
    return value


def has_text(value: str) -> str:
    """A title must show something: white space, control and invisible format characters (zero-width space,
    direction marks) alone are blank."""
    if all(c.isspace() or unicodedata.category(c) in ("Cc", "Cf") for c in value):
        raise ValueError("must not be blank")
    return value


def web_url(value: str | None) -> str | None:
    """Only links a browser may follow safely: absolute http(s) URLs, or paths on the site ("/news/1")."""
    if not value:
        return value
    if any(c.isspace() or unicodedata.category(c) == "Cc" for c in value):
        raise ValueError("must not contain white space or control characters (encode them, e.g. %20)")
    if any(c in '"<>' for c in value):  # never needed in a URL, and what breaks out of an HTML attribute
        raise ValueError('must not contain ", < or > (encode them: %22, %3C, %3E)')
    if value.startswith("/") and not value.startswith(("//", "/\\")):
        return value
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http:// or https:// URL, or a path starting with '/'")
    return value


Text = Annotated[str, BeforeValidator(unicode_text)]
ArticleId = Annotated[str, BeforeValidator(article_id), Field(min_length=1, max_length=256)]
Title = Annotated[str, BeforeValidator(unicode_text), Field(min_length=1, max_length=2000), AfterValidator(has_text)]


class ArticleInput(BaseModel):
    """The validation of an incoming article, shared by the HTTP API and file ingest."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    id: ArticleId = Field(description="The site's own article id.")
    title: Title
    lead: Text = Field("", description="Summary / standfirst.")
    body: Text = ""
    url: Text | None = Field(None, max_length=4000)
    published_at: datetime | None = Field(None, description="ISO 8601 with a timezone, e.g. 2019-11-01T10:00:00Z.")
    section: Text | None = Field(None, max_length=200)
    tags: list[Text] = Field(default_factory=list)
    language: Text | None = Field(None, max_length=35, description="BCP 47 code, e.g. en, uk.")
    image_url: Text | None = Field(None, max_length=4000)
    status: Status = "published"
    image_credit: Text | None = Field(None, max_length=500, description="Who took or owns the photo, shown with it.")

    @field_validator("title", "lead", "body", "section", "language", "image_credit", mode="before")
    @classmethod
    def _no_control_characters(cls, value: Any) -> Any:
        return _clean(value) if isinstance(value, str) else value

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

    @field_validator("section", "language", "url", "image_url", "image_credit", mode="after")
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("url", "image_url", mode="after")
    @classmethod
    def _safe_link(cls, value: str | None) -> str | None:
        return web_url(value)

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
        # Echoed in the 422: only an id JSON can carry (not NaN, not a lone surrogate).
        self.article_id = article_id if isinstance(article_id, str | int) and _encodable(str(article_id)) else None
        self.errors = error_details(error.errors())


class ArticleNotFound(KeyError):
    def __init__(self, article_id: str):
        super().__init__(article_id)
        self.article_id = article_id

    def __str__(self) -> str:
        return f"no article with id {self.article_id!r}"


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def error_details(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Validation errors as plain JSON: where and what, never the input echoed back (it may be huge, NaN or
    not encodable) nor exception objects."""
    def part(p: Any) -> int | str:
        return p if isinstance(p, int) else str(p).encode("utf-8", "backslashreplace").decode("utf-8")

    return [{"type": e.get("type", "value_error"), "loc": [part(p) for p in e["loc"]], "msg": str(e["msg"])}
            for e in errors]


def plain_text(text: str) -> str:
    """Text with HTML tags (with the contents of scripts and style sheets) and entities removed and white space
    folded."""
    return _SPACE.sub(" ", html.unescape(_TAG.sub(" ", _HIDDEN.sub(" ", text)))).strip()


# A tag is at most 1002 characters (_TAG): that much plain text past the cut shields the kept part from whatever
# a cut through a tag or an entity leaves at the end.
_CUT_MARGIN = 1100


def leading_plain_text(text: str, chars: int) -> str:
    """``plain_text(text)[:chars]``, reading only as much of ``text`` as that needs (a hostile body of a
    million ``<`` costs what its first few thousand characters cost)."""
    end = 4 * (chars + _CUT_MARGIN)
    while end < len(text):
        plain = plain_text(text[:end])
        if len(plain) >= chars + _CUT_MARGIN:
            return plain[:chars]
        end *= 2
    return plain_text(text)[:chars]


def excerpt(article: Article, chars: int) -> str:
    """The opening a box shows under a title: the lead, else the body, as plain text, cut at a word boundary to
    at most ``chars`` characters (an ellipsis marks a cut)."""
    text = leading_plain_text(article.lead, chars + 1) or leading_plain_text(article.body, chars + 1)
    if len(text) <= chars:
        return text
    room = text[:chars]  # what may show of it: at most chars - 1 characters and the ellipsis
    space = room.rfind(" ")
    cut = room[:space] if space > 0 else room[:chars - 1]
    return cut.rstrip(" ,;:-") + "…"


def embedding_text(article: Article, body_chars: int) -> str:
    """What the model reads for an article: title, lead, then the first ``body_chars`` characters of the body.

    The title and lead carry most of what a story is about; the start of the body adds the who/where that
    short leads leave out. The model truncates at its own token limit anyway (256 tokens for MiniLM).
    """
    parts = [plain_text(article.title), plain_text(article.lead), leading_plain_text(article.body, body_chars)]
    return ". ".join(p for p in parts if p)


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
