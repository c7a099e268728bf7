"""HTTP caching of the lists and the box's static files, as browsers and CDNs expect it (README "Behind a CDN"):
``Cache-Control``, a strong ``ETag`` and ``304`` on ``If-None-Match``, ``HEAD``, brotli or gzip above a size,
``Vary``, ``Timing-Allow-Origin`` for the site's origins, and the surrogate keys a CDN purges an article's lists
by."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections.abc import Iterable

import brotli
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from recommender.listing import ListJson
from recommender.purges import list_ids, purge_key
from recommender.settings import Settings
from service.cache import ResponseCache, authorized

_LIST = re.compile(r"/articles/[^/]{1,256}/similar(\.html)?")
STATIC = ("/similar-news.js", "/similar-news.css")
# The list id a JSON list carries (recommender.listing.list_json): in a JSON string every '"' is escaped, so
# this matches the list's own field only.
_LIST_ID = re.compile(rb'"list_id":"([0-9a-f]{16})"')
LIST_IDS = "recommender.list_ids"  # scope key: the ids of the articles the list of the response names (its keys)
# Headers a 304 repeats (RFC 9110 15.4.5): what a cache updates its stored response with.
_NOT_MODIFIED_KEEPS = (b"cache-control", b"etag", b"vary", b"surrogate-key", b"cache-tag", b"timing-allow-origin")


def hold_list(scope: Scope, body: ListJson) -> None:
    """Note the list a response shows (the JSON list, or the HTML box made from it): its surrogate keys, from the
    ids it carries, not from its bytes parsed again."""
    scope[LIST_IDS] = body.ids


def list_cache_control(settings: Settings) -> bytes:
    shared = "" if settings.list_shared_max_age_s is None else f", s-maxage={settings.list_shared_max_age_s}"
    return (f"public, max-age={settings.list_max_age_s}{shared}, stale-while-revalidate="
            f"{settings.list_stale_while_revalidate_s}, stale-if-error={settings.list_stale_if_error_s}").encode()


def content_coding(scope: Scope) -> str | None:
    """The coding to answer in by the request's Accept-Encoding: ``br`` or ``gzip`` (named, or ``*``, with a q
    above 0; br when it is asked for at least as much as gzip), else None (identity)."""
    for name, value in scope["headers"]:
        if name == b"accept-encoding":
            codings = {}
            for part in value.decode("latin-1").lower().split(","):
                coding, _, params = part.strip().partition(";")
                q = params.strip().removeprefix("q=") if params.strip().startswith("q=") else "1"
                try:
                    codings[coding.strip()] = float(q)
                except ValueError:
                    codings[coding.strip()] = 0.0
            anything = codings.get("*", 0.0)
            br, gz = codings.get("br", anything), codings.get("gzip", codings.get("x-gzip", anything))
            return "br" if br > 0 and br >= gz else "gzip" if gz > 0 else None
    return None


def compressed(body: bytes, coding: str, static: bool) -> bytes:
    """``body`` in ``coding``, the same bytes every time (a strong ETag per coding): gzip at level 6 with mtime 0;
    brotli at quality 5 for a list (0.6 ms for 5 KB; made once per list) and 11 for a static file (23 ms, once
    per start; 10 % smaller)."""
    if coding == "br":
        return bytes(brotli.compress(body, quality=11 if static else 5))
    return gzip.compress(body, compresslevel=6, mtime=0)


def etag_matches(scope: Scope, etag: bytes) -> bool:
    """``If-None-Match`` names ``etag`` (weak comparison, as RFC 9110 asks of it) or is ``*``."""
    for name, value in scope["headers"]:
        if name == b"if-none-match":
            tags = [t.strip().removeprefix(b"W/") for t in value.split(b",")]
            return b"*" in tags or etag in tags
    return False


def _entity_tag(body: bytes, json_list: bool) -> str:
    if json_list:  # a JSON list's bytes follow from its id (its article, variant and items' bytes)
        found = _LIST_ID.search(body)
        if found:
            return found.group(1).decode()
    return hashlib.blake2b(body, digest_size=8).hexdigest()


class HttpCaching:
    """ASGI middleware for the lists (``GET``/``HEAD /articles/{id}/similar`` and ``.../similar.html``) and the
    box's static files. ``HEAD`` is answered as ``GET`` without the body. A 200 gets its caching headers (a list:
    ``Cache-Control`` from the settings and its surrogate keys; a static file keeps the route's), brotli or gzip
    when the client accepts it and the body is ``compress_min_bytes`` or longer, and a ``304`` when ``If-None-Match``
    names its ETag; any other status of a list gets ``Cache-Control: no-store`` (a 404 may be created soon)."""

    def __init__(self, app: ASGIApp, settings: Settings):
        self.app = app
        self.cache_control = list_cache_control(settings)
        origins = settings.cors_origins
        self.timing = ("*" if "*" in origins else ", ".join(origins)).encode() if origins else None
        self.key_header = None if settings.surrogate_key_header == "none" else settings.surrogate_key_header
        self.key_separator = ", " if self.key_header == "Cache-Tag" else " "
        self.min_bytes = settings.compress_min_bytes
        # Per ETag: the compressed bodies and the key header (a list's bytes follow from its ETag).
        self.derived = ResponseCache(max(256, settings.cache_size))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        is_list = bool(_LIST.fullmatch(path)) if path.startswith("/articles/") else False
        if (not is_list and path not in STATIC) or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        head = scope["method"] == "HEAD"
        scope["method"] = "GET"  # in place, as the layers inside read it; the observer outside sees HEAD again
        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
        try:
            await self.app(scope, receive, capture)
        finally:
            if head:
                scope["method"] = "HEAD"
        if not start:
            return
        body = b"".join(chunks)
        if start["status"] == 200:
            start, body = self._cacheable(scope, start, body, is_list)
        elif is_list:
            start = {**start, "headers": [*_without(start["headers"], (b"cache-control",)),
                                          (b"cache-control", b"no-store")]}
        await send(start)
        await send({"type": "http.response.body", "body": b"" if head else body})

    def _cacheable(self, scope: Scope, start: Message, body: bytes, is_list: bool) -> tuple[Message, bytes]:
        """The 200's start message and body with the caching headers, compressed, or the 304 instead."""
        # The route's Vary (the list's URL answers JSON or HTML by Accept), and the content coding.
        vary = {part.strip().lower(): part.strip() for name, value in start["headers"] if name.lower() == b"vary"
                for part in value.split(b",")}
        vary.setdefault(b"accept-encoding", b"Accept-Encoding")
        headers = _without(start["headers"], (b"content-length", b"vary", b"etag"))
        json_list = is_list and any(n == b"content-type" and v.startswith(b"application/json") for n, v in headers)
        tag = _entity_tag(body, json_list)
        coding = content_coding(scope) if len(body) >= self.min_bytes else None
        etag = f'"{tag}-{coding}"'.encode() if coding else f'"{tag}"'.encode()
        headers += [(b"etag", etag), (b"vary", b", ".join(vary.values()))]
        if is_list and authorized(scope):
            # The editor's lists may show unpublished articles: for the editor's browser only, never a CDN's
            # (a shared cache stores a response to an authorized request when it says "public").
            headers = [*_without(headers, (b"cache-control",)), (b"cache-control", b"private, no-store")]
        elif is_list:
            headers = [*_without(headers, (b"cache-control",)), (b"cache-control", self.cache_control)]
            if self.key_header is not None:
                headers.append((self.key_header.lower().encode(), self._keys(scope, tag, body if json_list else None)))
        if self.timing is not None:
            headers.append((b"timing-allow-origin", self.timing))
        if etag_matches(scope, etag):
            return {**start, "status": 304, "headers": [h for h in headers if h[0] in _NOT_MODIFIED_KEEPS]}, b""
        if coding:
            body = self._compressed(tag, body, coding, not is_list)
            headers.append((b"content-encoding", coding.encode()))
        headers.append((b"content-length", str(len(body)).encode()))
        return {**start, "headers": headers}, body

    def _compressed(self, tag: str, body: bytes, coding: str, static: bool) -> bytes:
        held = self.derived.get((coding, tag), 0)
        if held is None:
            held = compressed(body, coding, static)
            self.derived.put((coding, tag), 0, held)
        return held

    def _keys(self, scope: Scope, tag: str, body: bytes | None) -> bytes:
        held = self.derived.get(("keys", tag), 0)
        if held is None:
            ids = scope.get(LIST_IDS)
            if ids is None:  # a JSON list answered from bytes alone (the response cache): parsed
                ids = list_ids(json.loads(body)) if body is not None else ()
            held = self.key_separator.join(sorted(purge_key(i) for i in ids)).encode()
            if body is not None:  # an HTML box's tag is its bytes', not its list's: not kept
                self.derived.put(("keys", tag), 0, held)
        return held


def _without(headers: Iterable[tuple[bytes, bytes]], names: tuple[bytes, ...]) -> list[tuple[bytes, bytes]]:
    return [(n, v) for n, v in headers if n.lower() not in names]
