"""The box as HTML: the Jinja2 template the site may replace (RECOMMENDER_BOX_TEMPLATE), and ``Accept:
text/html`` on the list's URL sent to it."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from starlette.types import ASGIApp, Receive, Scope, Send

DEFAULT_TEMPLATE = Path(__file__).parent / "templates" / "similar-news.html"
# The list's URL answers JSON or HTML by the Accept header: shared caches must keep both apart.
VARY = {"Vary": "Accept"}
_SIMILAR = re.compile(r"/articles/[^/]{1,256}/similar")


class TemplateMissing(RuntimeError):
    pass


def long_date(value: str | None) -> str:
    """``2019-10-28T10:00:00Z`` as "28 October 2019" (the box shows the day, not the time)."""
    if not value:
        return ""
    day = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return f"{day.day} {day:%B %Y}"


class BoxRenderer:
    """The HTML box from a list's JSON, by a Jinja2 template with autoescaping on: a title holding ``<script>``
    shows as text. The template gets ``article_id`` and ``items`` (the JSON list's items) and a ``long_date``
    filter."""

    def __init__(self, path: Path | None = None):
        path = Path(path or DEFAULT_TEMPLATE)
        if not path.is_file():
            raise TemplateMissing(f"RECOMMENDER_BOX_TEMPLATE: no template file at {path}: give the path of a "
                                  "Jinja2 file, or unset it for the service's own")
        env = jinja2.Environment(loader=jinja2.FileSystemLoader(path.parent), autoescape=True,
                                 undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
        env.filters["long_date"] = long_date
        self.template = env.get_template(path.name)

    def render(self, box: dict[str, Any]) -> str:
        return self.template.render(article_id=box["article_id"], items=box["items"])


def prefers_html(scope: Scope) -> bool:
    """A browser's page load (``text/html`` asked for, JSON not named): API clients send ``application/json``
    or ``*/*``."""
    for name, value in scope["headers"]:
        if name == b"accept":
            return b"text/html" in value and b"application/json" not in value
    return False


class HtmlBoxes:
    """ASGI middleware: ``GET /articles/{id}/similar`` asking for ``text/html`` goes to ``.../similar.html``
    (before the stored-box lookup and the cache, which answer JSON)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] == "http" and scope["method"] == "GET" and scope["path"].endswith("/similar")
                and _SIMILAR.fullmatch(scope["path"]) and prefers_html(scope)):
            scope["path"] += ".html"  # in place: the observer outside reads what the route set in this scope
            scope["raw_path"] = scope.get("raw_path", b"") + b".html"
        await self.app(scope, receive, send)
