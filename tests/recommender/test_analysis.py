"""Lexical terms in the site's languages: English as before, Russian and Ukrainian brought to one form per word."""

import subprocess
import sys

from recommender.analysis import cyrillic_language, english_stop_words, strip_accents, terms
from recommender.lexical import LexicalIndex


def test_english_terms_are_what_the_english_count_vectorizer_counted():
    from sklearn.feature_extraction.text import CountVectorizer

    text = "The Café in Zürich: Mayor's 2 elections were held, and a B-52 flew over!"
    before = CountVectorizer(stop_words="english", lowercase=True, strip_accents="unicode",
                             token_pattern=r"(?u)\b\w\w+\b").build_analyzer()
    assert terms(text) == before(text)


def test_the_stop_words_and_accents_are_scikit_learns_without_importing_it():
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, strip_accents_unicode

    assert english_stop_words() == ENGLISH_STOP_WORDS
    every_character = "".join(chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF)
    for text in ("plain ascii", "Café Zürich naïve", "Ångström – ﬁne ½", "Крым й ё", "Ελληνικά ά", "",
                 "“Quoted” — it’s…", "cafe\u0301 already decomposed", every_character):
        assert strip_accents(text) == strip_accents_unicode(text)
    # A read worker analyses texts without scikit-learn's import (1.3 s of a core, 5 s at a busy start).
    code = "import sys; from recommender.analysis import terms; terms('The Café'); print('sklearn' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


def test_russian_inflections_share_one_term():
    assert terms("Сенат поддержал повышение налогов")[-1] == terms("Налоги повысят")[0]
    assert terms("Сенату США")[0] == terms("сенат")[0] == "сенат"


def test_ukrainian_inflections_share_one_term():
    forms = [terms(f"Останні {word} дня")[1] for word in ("новини", "новина", "новині", "новинами")]
    assert forms == ["новина"] * 4
    assert terms("У Києві відкрили станцію") == ["київ", "відкрити", "станція"]


def test_the_language_of_cyrillic_text_is_told_by_the_letters_only_it_has():
    assert cyrillic_language("Київ відкриває нові станції") == "uk"
    assert cyrillic_language("Киев открывает новые станции, объявлено") == "ru"
    assert cyrillic_language("Новини") == "ru"  # nothing tells: taken as Russian


def test_latin_words_in_cyrillic_text_keep_the_english_rules():
    assert terms("Компания Apple и the iPhone") == ["компан", "apple", "iphone"]  # "the" is a stop word


def test_a_russian_headline_finds_its_paraphrase_by_lexical_search():
    index = LexicalIndex()
    index.build([1, 2, 3], ["Сенат США поддержал повышение налогов",
                            "Американские сенаторы проголосовали за повышение налога",
                            "В Москве открылась новая станция метро"])
    scores, keys = index.search("Сенаторы США повысили налоги", 2, "bm25")
    assert keys[0] in (1, 2) and 3 not in keys[:2].tolist()
