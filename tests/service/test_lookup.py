"""The stored-box fast path takes only a plain ``limit``; anything else goes to the route and its validation."""

import pytest

from service.lookup import default_limit, list_params


@pytest.mark.parametrize("query, expected", [
    (b"", 8), (b"limit=5", 5), (b"limit=50", 50), (b"reader=r1", 8), (b"limit=5&reader=r1", 5),
    (b"limit=0", None), (b"limit=51", None), (b"limit=5&section=x", None), (b"section=x", None),
    (b"limit=%C2%B2", None), (b"limit=%D9%A1", None), (b"limit=-1", None), (b"limit=1e1", None),
    (b"reader=r1&strategy=bm25", None),
])
def test_only_a_plain_ascii_limit_is_a_default_request(query, expected):
    assert default_limit(list_params(query)[0], 8) == expected


def test_the_reader_is_taken_out_of_the_parameters():
    assert list_params(b"limit=5&reader=r%201") == ([("limit", "5")], "r 1")
    assert list_params(b"limit=5") == ([("limit", "5")], None)


@pytest.mark.parametrize("limit", ["%C2%B2", "%D9%A1"])
def test_a_non_ascii_digit_limit_is_a_json_422_not_a_500(api, limit):
    r = api.get(f"/articles/N34700/similar?limit={limit}")
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/json"
