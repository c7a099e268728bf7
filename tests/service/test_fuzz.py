"""Property-based fuzz (hypothesis) of every write body against a real server: any JSON, NaN, lone surrogates,
hostile ids, urls and markup, broken bytes. Never a 5xx, always a JSON answer, the connection always kept."""

import json
from urllib.parse import quote

import httpx
import hypothesis
from hypothesis import strategies as st

from service.schemas import ErrorBody

EXAMPLES = 60
SETTINGS = hypothesis.settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                               suppress_health_check=list(hypothesis.HealthCheck))

ODD = ["", " ", "\u200b", "\u200e", "\ud800", "\udfff", "a\ud83c", "\x00", "I\x00D", " N9", "a/b", "a\tb", "%00",
       "../x", "<" * 300, "&#x0;", "javascript:alert(1)", "//evil.example", "https://news.example/a", "/img/1.jpg",
       "2024-01-01T10:00:00", "2024-01-01T10:00:00Z", "published", "unpublished", "N34700", "N16278", "🇺🇦",
       "\u202eRTL", "a|b,c", "x" * 3000]
TEXT = st.one_of(st.sampled_from(ODD), st.text(max_size=30),
                 st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=2))
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(), TEXT)
JSON = st.recursive(SCALAR, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
                    max_leaves=12)
FIELDS = ("id", "title", "lead", "body", "url", "published_at", "section", "tags", "language", "image_url", "status")
ID = st.one_of(TEXT, st.from_regex(r"fz-[A-Za-z0-9_.~-]{1,12}", fullmatch=True))
WORDS = st.from_regex(r"[A-Za-z][A-Za-z ]{0,40}", fullmatch=True)
ANY_FIELD = st.one_of(TEXT, SCALAR, st.lists(TEXT, max_size=3), JSON)
LINK = st.sampled_from(["https://news.example/a", "/img/1.jpg", ""])
VALID = {"url": LINK, "image_url": LINK, "published_at": st.sampled_from(["2024-01-01T10:00:00Z", None]),
         "status": st.sampled_from(["published", "unpublished"]), "language": st.sampled_from(["en", "uk", ""])}
# Two in three nearly valid (a real title, each field most often valid), so that bodies reach the store and the
# index, not only validation.
NEARLY_VALID = st.fixed_dictionaries({"title": WORDS}, optional={
    f: st.one_of(*[VALID.get(f, WORDS)] * 9, ANY_FIELD) for f in FIELDS[2:]})
ARTICLE = st.one_of(
    st.dictionaries(st.sampled_from(FIELDS), ANY_FIELD, max_size=len(FIELDS)), NEARLY_VALID, NEARLY_VALID,
).flatmap(lambda a: ID.map(lambda i: {"id": i, **a}) if "id" not in a else st.just(a))
PIN = st.fixed_dictionaries({"id": TEXT, "position": st.one_of(st.integers(-2, 60), SCALAR)})
OVERRIDES = st.fixed_dictionaries({}, optional={"pins": st.one_of(st.lists(PIN, max_size=4), JSON),
                                                "blocks": st.one_of(st.lists(TEXT, max_size=4), JSON)})
PREVIEW = st.fixed_dictionaries({}, optional={"title": st.one_of(WORDS, TEXT, SCALAR),
                                              "text": st.one_of(WORDS, TEXT, SCALAR)})


def body(structured: st.SearchStrategy) -> st.SearchStrategy:
    """Mostly the call's own shape, sometimes any JSON, sometimes bytes that are not JSON or not UTF-8."""
    as_json = st.one_of(structured, structured, JSON).map(lambda v: json.dumps(v).encode())
    return st.one_of(as_json, as_json, as_json, st.binary(max_size=40))


def path_id(value: str) -> str:
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


CALLS = {
    "PUT /articles/{id}": st.tuples(st.just("PUT"), ID.map(lambda i: f"/articles/{path_id(i)}"), body(ARTICLE.map(
        lambda a: {k: v for k, v in a.items() if k != "id"}))),
    "POST /articles": st.tuples(st.just("POST"), st.just("/articles"), body(st.lists(ARTICLE, max_size=4))),
    "PUT /articles/{id}/overrides": st.tuples(st.just("PUT"), st.sampled_from(
        ["/articles/N34700/overrides", "/articles/N16278/overrides", "/articles/nope/overrides"]), body(OVERRIDES)),
    "PUT /blocked/{id}": st.tuples(st.just("PUT"), TEXT.map(lambda i: f"/blocked/{path_id(i)}"),
                                   body(st.fixed_dictionaries({}, optional={"reason": st.one_of(TEXT, JSON)}))),
    "POST /similar": st.tuples(st.just("POST"), st.sampled_from(["/similar", "/similar?limit=3&explain=true"]),
                               body(PREVIEW)),
}


def fuzz(client: httpx.Client, calls: st.SearchStrategy) -> dict[int, int]:
    """Send the calls' examples over one connection; how many answers of each status came back."""
    seen: dict[int, int] = {}

    @SETTINGS
    @hypothesis.given(call=calls)
    def check(call):
        method, path, content = call
        r = client.request(method, path, content=content, headers={"Content-Type": "application/json"})
        assert r.status_code < 500, f"{method} {path} {content[:300]!r} -> {r.status_code} {r.text[:300]}"
        if r.status_code != 204:
            assert r.headers["content-type"] == "application/json", r.text[:300]
            body = r.json()
            if r.status_code >= 400:
                assert set(body) == set(ErrorBody.model_fields), body
        seen[r.status_code] = seen.get(r.status_code, 0) + 1

    check()
    return seen


def test_no_write_body_makes_the_server_fail(server, capsys):
    with server.client() as client:  # one keep-alive connection: a reset would fail the run
        statuses = {name: fuzz(client, calls) for name, calls in CALLS.items()}
        assert client.get("/readyz").json()["status"] == "ready"
    with capsys.disabled():
        print(f"\nwrite-body fuzz, {EXAMPLES} examples per call, statuses: {statuses}")
    assert all(200 in s or 204 in s for s in statuses.values()), "the fuzz never got a write through"
    assert all(422 in s for s in statuses.values())
