"""What the app serves to browsers: the editor's page and the script of the ``<similar-news>`` element (files
of ``service/static``, read once; no build step)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

router = APIRouter(tags=["pages"])
STATIC = Path(__file__).resolve().parents[1] / "static"
EDITOR = (STATIC / "editor.html").read_bytes()
SCRIPT = (STATIC / "similar-news.js").read_bytes()
# Sites load the script on every page: let browsers keep it a while, and check it again after.
SCRIPT_HEADERS = {"Cache-Control": "public, max-age=300"}


@router.get("/editor", response_class=HTMLResponse)
def editor() -> HTMLResponse:
    """The editor's page: find an article, see its box and why each item is there, pin and block, preview a
    draft. Reading needs nothing; changes need the write token, typed into the page."""
    return HTMLResponse(EDITOR)


@router.get("/similar-news.js", response_class=Response,
            responses={200: {"content": {"text/javascript": {}}, "description": "the script"}})
def similar_news_script() -> Response:
    """``<script src=".../similar-news.js">`` then ``<similar-news article-id="...">``: the box, rendered in
    the browser from the JSON list."""
    return Response(SCRIPT, media_type="text/javascript", headers=SCRIPT_HEADERS)
