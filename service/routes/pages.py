"""What the app serves to browsers: the editor's page, the script of the ``<similar-news>`` element and its
stylesheet (files of ``service/static``, read once; no build step)."""

from __future__ import annotations

import functools
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from service.deps import AppSettings
from service.html import script_source

router = APIRouter(tags=["pages"])
STATIC = Path(__file__).resolve().parents[1] / "static"
EDITOR = (STATIC / "editor.html").read_bytes()
STYLESHEET = (STATIC / "similar-news.css").read_text()
SCRIPT = (STATIC / "similar-news.js").read_text()
# Sites load the script on every page: let browsers keep it a while, and check it again after.
SCRIPT_HEADERS = {"Cache-Control": "public, max-age=300"}


@router.get("/editor", response_class=HTMLResponse)
def editor() -> HTMLResponse:
    """The editor's page: find an article, see its box and why each item is there, pin and block, preview a
    draft. Reading needs nothing; changes need the write token, typed into the page."""
    return HTMLResponse(EDITOR)


@router.get("/similar-news.js", response_class=Response,
            responses={200: {"content": {"text/javascript": {}}, "description": "the script"}})
def similar_news_script(settings: AppSettings) -> Response:
    """``<script src=".../similar-news.js">`` then ``<similar-news article-id="...">``: the box, rendered in
    the browser from the JSON list."""
    return Response(served_script(settings.box_timeout_ms), media_type="text/javascript", headers=SCRIPT_HEADERS)


@functools.lru_cache(maxsize=4)
def served_script(timeout_ms: int) -> bytes:
    return script_source(SCRIPT, STYLESHEET, timeout_ms)


@router.get("/similar-news.css", response_class=Response,
            responses={200: {"content": {"text/css": {}}, "description": "the stylesheet"}})
def similar_news_stylesheet() -> Response:
    """The box's default looks, for a page that links them (the server's HTML box; the script adopts them
    itself): zero-specificity rules, fonts and colours left to the site."""
    return Response(STYLESHEET, media_type="text/css", headers=SCRIPT_HEADERS)
