"""The box as HTML: the Jinja2 template the site may replace (RECOMMENDER_BOX_TEMPLATE), and ``Accept:
text/html`` on the list's URL sent to it."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from starlette.types import ASGIApp, Receive, Scope, Send

DEFAULT_TEMPLATE = Path(__file__).parent / "templates" / "similar-news.html"
# The list's URL answers JSON or HTML by the Accept header: shared caches must keep both apart.
VARY = {"Vary": "Accept"}
_SIMILAR = re.compile(r"/articles/[^/]{1,256}/similar")


class TemplateMissing(RuntimeError):
    pass


# The box's words per language, for the template and (put into similar-news.js when served) the script:
# heading, credit prefix, the locale of the script's Intl.DateTimeFormat, and the server's long date as
# that format writes it (day, month in the genitive, year).
BOX_STRINGS: dict[str, dict[str, Any]] = {
    "en": {"heading": "Similar news", "photo": "Photo:", "date_locale": "en-GB", "date": "{day} {month} {year}",
           "months": ["January", "February", "March", "April", "May", "June", "July", "August", "September",
                      "October", "November", "December"]},
    "uk": {"heading": "Схожі новини", "photo": "Фото:", "date_locale": "uk", "date": "{day} {month} {year} р.",
           "months": ["січня", "лютого", "березня", "квітня", "травня", "червня", "липня", "серпня", "вересня",
                      "жовтня", "листопада", "грудня"]},
    "ru": {"heading": "Похожие новости", "photo": "Фото:", "date_locale": "ru", "date": "{day} {month} {year} г.",
           "months": ["января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа", "сентября",
                      "октября", "ноября", "декабря"]},
}


def long_date(value: str | None, locale: str = "en", time_zone: str = "UTC") -> str:
    """``2019-10-28T10:00:00Z`` as "28 October 2019" (the box shows the day, not the time), or "28 жовтня
    2019 р." in Ukrainian; the day as it is in ``time_zone``."""
    if not value:
        return ""
    day = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(ZoneInfo(time_zone))
    words = BOX_STRINGS[locale]
    return str(words["date"]).format(day=day.day, month=words["months"][day.month - 1], year=day.year)


@jinja2.pass_context
def _long_date(context: jinja2.runtime.Context, value: str | None) -> str:
    return long_date(value, context.get("locale", "en"), context.get("time_zone", "UTC"))


def script_source(script: str, css: str, timeout_ms: int) -> bytes:
    """similar-news.js as served: with the stylesheet and the box's words put in (one copy of each), and the
    element's default timeout (RECOMMENDER_BOX_TIMEOUT_MS)."""
    words = {lang: {k: v for k, v in w.items() if k in ("heading", "photo", "date_locale")}
             for lang, w in BOX_STRINGS.items()}
    script = re.sub(r'/\*similar-news\.css\*/""', lambda _: json.dumps(css), script)
    script = re.sub(r"/\*timeout\*/[0-9]+", str(timeout_ms), script)
    script = re.sub(r"/\*strings\*/\{.*?\}\};", lambda _: json.dumps(words, ensure_ascii=False) + ";", script)
    return script.encode()


class BoxRenderer:
    """The HTML box from a list's JSON, by a Jinja2 template with autoescaping on: a title holding ``<script>``
    shows as text. The template gets ``article_id``, ``list_id``, ``items`` (the JSON list's items), the
    ``locale``'s words as ``text`` and a ``long_date`` filter (in that locale and ``time_zone``)."""

    def __init__(self, path: Path | None = None, locale: str = "en", time_zone: str = "UTC"):
        self.locale, self.time_zone = locale, time_zone
        path = Path(path or DEFAULT_TEMPLATE)
        if not path.is_file():
            raise TemplateMissing(f"RECOMMENDER_BOX_TEMPLATE: no template file at {path}: give the path of a "
                                  "Jinja2 file, or unset it for the service's own")
        env = jinja2.Environment(loader=jinja2.FileSystemLoader(path.parent), autoescape=True,
                                 undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
        env.filters["long_date"] = _long_date
        self.template = env.get_template(path.name)

    def render(self, box: dict[str, Any], locale: str | None = None) -> str:
        locale = locale or self.locale
        return self.template.render(article_id=box["article_id"], list_id=box.get("list_id", ""), items=box["items"],
                                    locale=locale, time_zone=self.time_zone, text=BOX_STRINGS[locale])


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
