"""Article validation and the embedded text: defined behaviour for every odd input."""

import pytest

from recommender.article import InvalidArticle, content_hash, embedding_text, parse_article


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
