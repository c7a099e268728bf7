"""HTTP caching of the lists and the script, in-process: Cache-Control from the settings, a strong ETag (the
list id), 304 on If-None-Match, HEAD, gzip above a size, Vary, Timing-Allow-Origin, and the surrogate keys that
name every article a list shows (README "Behind a CDN")."""

import gzip
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from recommender.engine import Recommender
from recommender.purges import purge_key
from service.app import create_app
from tests.conftest import make_settings
from tests.service.conftest import TOKEN

SOURCE = "N34700"
SITE = "https://news.example"
IDENTITY = {"Accept-Encoding": "identity"}
EDITOR = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def client(ingested_dir, tmp_path_factory, embedder) -> Iterator[TestClient]:
    from tests.service.conftest import private_copy

    settings = make_settings(private_copy(ingested_dir, tmp_path_factory), api_token=TOKEN, cors_origins=[SITE],
                             list_max_age_s=45, list_shared_max_age_s=600, list_stale_while_revalidate_s=15,
                             list_stale_if_error_s=3600, compress_min_bytes=1024)
    with Recommender(settings, embedder=embedder) as engine, \
            TestClient(create_app(settings, recommender=engine)) as c:  # a reader's: a list asked with the token is
        yield c  # the editor's own (private, no-store: tests/service/test_access.py)


def vary(response) -> set[str]:
    return {v.strip().lower() for v in response.headers["vary"].split(",")}


def keys_of(response) -> set[str]:
    return set(response.headers["surrogate-key"].split(" "))


@pytest.mark.parametrize("params", [{}, {"limit": 5}, {"mmr_lambda": 0.9}], ids=["stored", "stored-limit", "ranked"])
def test_a_list_says_how_long_to_keep_it_its_etag_is_its_list_id_and_it_names_its_articles(client, params):
    r = client.get(f"/articles/{SOURCE}/similar", params=params, headers=IDENTITY)
    body = r.json()
    assert r.status_code == 200
    assert r.headers["cache-control"] == ("public, max-age=45, s-maxage=600, stale-while-revalidate=15, "
                                          "stale-if-error=3600")
    assert r.headers["etag"] == f'"{body["list_id"]}"'
    assert vary(r) == {"accept", "accept-encoding", "origin"}  # Origin: CORS's (the allowed origin varies)
    assert r.headers["timing-allow-origin"] == SITE
    assert "content-encoding" not in r.headers and int(r.headers["content-length"]) == len(r.content)
    shown = {SOURCE, *(i["id"] for i in body["items"]), *(a["id"] for i in body["items"] for a in i["also"])}
    assert keys_of(r) == {purge_key(i) for i in shown}


def test_if_none_match_with_the_lists_etag_gets_a_304_without_a_body(client):
    first = client.get(f"/articles/{SOURCE}/similar", headers=IDENTITY)
    again = client.get(f"/articles/{SOURCE}/similar", headers={**IDENTITY, "If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    for header in ("etag", "cache-control", "vary", "surrogate-key", "timing-allow-origin"):
        assert again.headers[header] == first.headers[header]
    listed = client.get(f"/articles/{SOURCE}/similar",
                        headers={**IDENTITY, "If-None-Match": f'"0000000000000000", W/{first.headers["etag"]}'})
    assert listed.status_code == 304  # one of several, weak or not (RFC 9110's weak comparison)
    other = client.get(f"/articles/{SOURCE}/similar", headers={**IDENTITY, "If-None-Match": '"0000000000000000"'})
    assert other.status_code == 200 and other.content == first.content


def test_another_list_has_another_etag_and_a_changed_list_a_new_one(client):
    default = client.get(f"/articles/{SOURCE}/similar", headers=IDENTITY)
    shorter = client.get(f"/articles/{SOURCE}/similar", params={"limit": 3}, headers=IDENTITY)
    assert default.headers["etag"] != shorter.headers["etag"]
    top = default.json()["items"][0]["id"]
    assert client.put(f"/blocked/{top}", json={"reason": "test"}, headers=EDITOR).status_code == 204
    try:
        changed = client.get(f"/articles/{SOURCE}/similar", headers={**IDENTITY, "If-None-Match":
                                                                     default.headers["etag"]})
        assert changed.status_code == 200 and changed.headers["etag"] != default.headers["etag"]
        assert top not in [i["id"] for i in changed.json()["items"]]
    finally:
        assert client.delete(f"/blocked/{top}", headers=EDITOR).status_code == 204


def test_head_answers_the_headers_of_get_without_a_body(client):
    for path in (f"/articles/{SOURCE}/similar", f"/articles/{SOURCE}/similar.html", "/similar-news.js"):
        got = client.get(path, headers=IDENTITY)
        head = client.head(path, headers=IDENTITY)
        assert head.status_code == 200 and head.content == b""
        assert {k: v for k, v in head.headers.items() if k not in ("date", "x-request-id")} == \
               {k: v for k, v in got.headers.items() if k not in ("date", "x-request-id")}
    assert client.head("/articles/nope/similar").status_code == 404


def test_gzip_when_accepted_and_long_enough_with_its_own_etag(client):
    plain = client.get(f"/articles/{SOURCE}/similar", headers=IDENTITY)
    assert len(plain.content) >= 1024
    zipped = client.get(f"/articles/{SOURCE}/similar", headers={"Accept-Encoding": "gzip, br;q=0.5"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.content == plain.content  # httpx decoded it
    assert int(zipped.headers["content-length"]) == len(gzip.compress(plain.content, 6, mtime=0))
    assert int(zipped.headers["content-length"]) < len(plain.content) / 2
    assert zipped.headers["etag"] == plain.headers["etag"][:-1] + '-gzip"'
    assert client.get(f"/articles/{SOURCE}/similar", headers={
        "Accept-Encoding": "gzip", "If-None-Match": zipped.headers["etag"]}).status_code == 304
    refused = client.get(f"/articles/{SOURCE}/similar", headers={"Accept-Encoding": "gzip;q=0, deflate"})
    assert "content-encoding" not in refused.headers
    short = client.get(f"/articles/{SOURCE}/similar", params={"limit": 1}, headers={"Accept-Encoding": "gzip"})
    assert len(short.content) < 1024 and "content-encoding" not in short.headers


@pytest.mark.parametrize("path", [f"/articles/{SOURCE}/similar", "/similar-news.js"])
def test_brotli_when_asked_for_at_least_as_much_as_gzip(client, path):
    plain = client.get(path, headers=IDENTITY)
    for accepted in ("br", "gzip, deflate, br, zstd", "*"):
        r = client.get(path, headers={"Accept-Encoding": accepted})
        assert r.headers["content-encoding"] == "br" and r.content == plain.content  # httpx decoded it
        assert int(r.headers["content-length"]) < int(client.get(path, headers={"Accept-Encoding": "gzip"})
                                                      .headers["content-length"])
        assert r.headers["etag"] == plain.headers["etag"][:-1] + '-br"'
    assert client.get(path, headers={"Accept-Encoding": "br", "If-None-Match": r.headers["etag"]}).status_code == 304


def test_the_html_box_is_cached_and_keyed_like_the_json_list(client):
    listed = client.get(f"/articles/{SOURCE}/similar", headers=IDENTITY)
    for r in (client.get(f"/articles/{SOURCE}/similar.html", headers=IDENTITY),
              client.get(f"/articles/{SOURCE}/similar", headers={**IDENTITY, "Accept": "text/html"})):
        assert r.headers["content-type"].startswith("text/html")
        assert r.headers["cache-control"] == listed.headers["cache-control"]
        assert re.fullmatch(r'"[0-9a-f]{16}"', r.headers["etag"]) and r.headers["etag"] != listed.headers["etag"]
        assert keys_of(r) == keys_of(listed)
        assert client.get(f"/articles/{SOURCE}/similar.html",
                          headers={**IDENTITY, "If-None-Match": r.headers["etag"]}).status_code == 304
    assert vary(client.get(f"/articles/{SOURCE}/similar.html", headers=IDENTITY)) >= {"accept", "accept-encoding"}
    assert vary(client.get("/similar-news.js", headers=IDENTITY)) >= {"accept-encoding"}


def test_errors_are_not_stored_by_caches(client):
    for path in ("/articles/nope/similar", "/articles/nope/similar.html", f"/articles/{SOURCE}/similar?limit=0"):
        r = client.get(path)
        assert r.status_code in (404, 422) and r.headers["cache-control"] == "no-store"
        assert "etag" not in r.headers and "surrogate-key" not in r.headers


def test_the_script_is_compressed_validated_and_timed(client):
    plain = client.get("/similar-news.js", headers=IDENTITY)
    assert plain.headers["cache-control"].startswith("public, max-age=")
    assert plain.headers["timing-allow-origin"] == SITE and "surrogate-key" not in plain.headers
    zipped = client.get("/similar-news.js", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip" and zipped.content == plain.content
    assert client.get("/similar-news.js", headers={"If-None-Match": zipped.headers["etag"],
                                                   "Accept-Encoding": "gzip"}).status_code == 304


def test_keys_are_short_and_safe_for_any_id():
    for article_id in ("N1", "a b,c;d\"e", "новини/1", "x" * 256, "\u202e\U0001f600"):
        assert re.fullmatch(r"sn-[0-9a-f]{16}", purge_key(article_id))
    assert purge_key("a b") != purge_key("a,b") and purge_key("N1") == purge_key("N1")


def test_cloudflare_cache_tags_and_no_keys(data_dir, embedder):
    for header, name, separator in (("Cache-Tag", "cache-tag", ","), ("none", None, None)):
        settings = make_settings(data_dir, surrogate_key_header=header)
        with Recommender(settings, embedder=embedder) as engine, \
                TestClient(create_app(settings, recommender=engine)) as c:
            r = c.get(f"/articles/{SOURCE}/similar")
            assert "timing-allow-origin" not in r.headers  # no site origins set
            if name is None:
                assert "surrogate-key" not in r.headers and "cache-tag" not in r.headers
            else:
                tags = r.headers[name].split(separator)
                assert purge_key(SOURCE) in [t.strip() for t in tags] and "surrogate-key" not in r.headers
