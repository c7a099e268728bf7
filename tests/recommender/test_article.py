"""Article validation and the embedded text: defined behaviour for every odd input."""

import json

import hypothesis
import pytest
from hypothesis import strategies as st

from recommender.article import (
    InvalidArticle,
    content_hash,
    embedding_text,
    excerpt,
    leading_plain_text,
    parse_article,
    plain_text,
)


def test_only_id_and_title_are_required():
    a = parse_article({"id": "x", "title": "Hello"})
    assert (a.lead, a.body, a.status, a.tags) == ("", "", "published", ())


@pytest.mark.parametrize("title", ["", "   ", "\x00\x00"])
def test_empty_title_is_rejected_naming_the_field(title):
    with pytest.raises(InvalidArticle) as err:
        parse_article({"id": "x", "title": title})
    assert "title" in str(err.value)


def test_missing_id_is_rejected():
    with pytest.raises(InvalidArticle, match="id"):
        parse_article({"title": "t"})


def test_naive_published_at_is_rejected_with_the_fix():
    with pytest.raises(InvalidArticle, match="timezone"):
        parse_article({"id": "x", "title": "t", "published_at": "2024-01-01T10:00:00"})


def test_unknown_status_is_rejected():
    with pytest.raises(InvalidArticle, match="status"):
        parse_article({"id": "x", "title": "t", "status": "draft"})


def test_nul_and_control_characters_are_removed_unicode_is_kept():
    a = parse_article({"id": "x", "title": "Київ\x00 🇺🇦 שלום\x07", "body": "a\x00b"})
    assert a.title == "Київ 🇺🇦 שלום" and a.body == "ab"


def test_tags_accept_a_list_or_a_separated_string():
    assert parse_article({"id": "x", "title": "t", "tags": "a| b ,c"}).tags == ("a", "b", "c")
    assert parse_article({"id": "x", "title": "t", "tags": ["a", " "]}).tags == ("a",)


def test_id_with_a_slash_is_rejected():
    with pytest.raises(InvalidArticle, match="id"):
        parse_article({"id": "a/b", "title": "t"})


def test_embedded_text_strips_html_and_cuts_the_body():
    a = parse_article({"id": "x", "title": "<b>Big</b> news", "lead": "Lead &amp; more", "body": "<p>" + "w " * 900})
    text = embedding_text(a, body_chars=100)
    assert text.startswith("Big news. Lead & more. w w")
    assert "<" not in text and len(text) < 130


def test_content_hash_changes_with_the_text_only():
    assert content_hash("a") == content_hash("a") != content_hash("b")


@pytest.mark.parametrize("bad_id", [" N9", "N9 ", "I\x00D", "a\tb", "a\nb", "a/b", "\ud800", "\u0085x"])
def test_an_id_is_never_cleaned_an_odd_one_is_rejected(bad_id):
    with pytest.raises(InvalidArticle, match="id"):
        parse_article({"id": bad_id, "title": "t"})


@pytest.mark.parametrize("field", ["title", "lead", "body", "section", "language", "url", "tags"])
def test_a_lone_surrogate_in_any_text_field_is_rejected_naming_it(field):
    value = ["ok", "\udc80"] if field == "tags" else "https://x.example/\ud800" if field == "url" else "a\ud800"
    with pytest.raises(InvalidArticle, match=field) as err:
        parse_article({"id": "x", "title": "t", field: value})
    json.dumps(err.value.errors, allow_nan=False)  # the 422's body is plain JSON


@pytest.mark.parametrize("title", ["\u200b", "\u200e\u200f", "\ufeff ", "\u2060"])
def test_invisible_characters_alone_are_a_blank_title(title):
    with pytest.raises(InvalidArticle, match="blank"):
        parse_article({"id": "x", "title": title})


@pytest.mark.parametrize("url, ok", [("https://news.example/a?b=1", True), ("HTTP://news.example", True),
                                     ("/news/1.html", True), ("javascript:alert(1)", False),
                                     ("java\tscript:alert(1)", False), ("data:text/html,x", False),
                                     ("//evil.example/x", False), ("/\\evil.example", False), ("http://", False),
                                     ("https://a.example/a b", False), ("news.example/a", False)])
def test_links_are_http_or_a_path_on_the_site(url, ok):
    for field in ("url", "image_url"):
        if ok:
            assert getattr(parse_article({"id": "x", "title": "t", field: url}), field) == url
        else:
            with pytest.raises(InvalidArticle, match=field):
                parse_article({"id": "x", "title": "t", field: url})


def test_a_hostile_body_is_cut_before_its_markup_is_stripped(monkeypatch):
    import recommender.article as article

    read: list[int] = []
    strip = article.plain_text
    def counted(text: str) -> str:
        read.append(len(text))
        return strip(text)

    monkeypatch.setattr(article, "plain_text", counted)
    a = parse_article({"id": "x", "title": "t", "body": "<" * 999_000})
    assert embedding_text(a, body_chars=1000) == "t. " + "<" * 1000
    assert max(read) <= 10_000  # the first few thousand characters, not the million


@hypothesis.settings(max_examples=300, deadline=None, database=None, derandomize=True)
@hypothesis.given(body=st.lists(st.sampled_from(["<p>", "</p>", "<a href='x'>", "<", ">", "&amp;", "&#1234;", "&lt;",
                                                 " ", "\n", "word", "x" * 40, "<script>", "</script>", "<STYLE a=1>",
                                                 "</style >"]), max_size=400).map("".join),
                  chars=st.integers(0, 300))
def test_the_cut_body_reads_as_the_whole_one_would(body, chars):
    assert leading_plain_text(body, chars) == plain_text(body)[:chars]


def test_the_excerpt_is_the_lead_as_plain_text_cut_at_a_word_boundary():
    lead = "<p>Rome has outlined the <b>limits</b> of its involvement &amp; stated that Italy will not deploy.</p>"
    article = parse_article({"id": "a", "title": "T", "lead": lead, "body": "The body is not read."})
    assert excerpt(article, 200) == "Rome has outlined the limits of its involvement & stated that Italy will not deploy."
    assert excerpt(article, 30) == "Rome has outlined the limits…"
    assert len(excerpt(article, 30)) <= 30


def test_scripts_and_style_sheets_never_show_in_the_excerpt():
    lead = ("<script>var leaked = 1;</script><STYLE type='text/css'>p { color: red }</style >Rome has outlined "
            "the <b>limits</b><script src='x.js'></script> of its involvement.<script>if (a < b) unclosed")
    article = parse_article({"id": "a", "title": "T", "lead": lead})
    assert excerpt(article, 200) == "Rome has outlined the limits of its involvement."
    assert plain_text("<p>a</p><style>b</style>c") == "a c"


def test_the_excerpt_falls_back_to_the_body_and_cuts_a_word_longer_than_the_room():
    assert excerpt(parse_article({"id": "a", "title": "T", "body": "Body only text."}), 200) == "Body only text."
    assert excerpt(parse_article({"id": "a", "title": "T", "body": "x" * 50}), 20) == "x" * 19 + "…"
    assert excerpt(parse_article({"id": "a", "title": "T"}), 200) == ""


@hypothesis.given(st.text(st.characters(codec="utf-8"), max_size=400), st.integers(20, 300))
def test_an_excerpt_is_never_longer_than_asked_and_starts_the_text(text, chars):
    article = parse_article({"id": "a", "title": "T", "lead": text})
    cut = excerpt(article, chars)
    assert len(cut) <= chars
    assert plain_text(article.lead).startswith(cut.removesuffix("…").rstrip(" ,;:-"))


def test_the_image_credit_is_an_optional_text_field():
    article = parse_article({"id": "a", "title": "T", "image_credit": " Getty Images\x00 "})
    assert article.image_credit == "Getty Images"
    assert parse_article({"id": "a", "title": "T", "image_credit": ""}).image_credit is None
