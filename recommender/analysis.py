"""Text analysis for lexical scoring: tokens, stop words and word forms in English, Russian and Ukrainian.

English is analysed as scikit-learn's ``CountVectorizer(stop_words="english", strip_accents="unicode")`` does
(lower case, accents dropped, words of two or more characters, its English stop words), unstemmed. Cyrillic
words are brought to one form per word so that "налогов" matches "налоги": Russian by the Snowball stemmer
(PyStemmer, C), Ukrainian by simplemma's dictionary lemmatiser (Snowball has no Ukrainian; simplemma ships its
dictionary, ~65 MB in memory once a Ukrainian text is analysed). Which of the two a text is written in is told by
the letters only one of them has (і ї є ґ against ы э ъ ё); a text with none of them is taken as Russian.
"""

from __future__ import annotations

import importlib.util
import re
import unicodedata
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

# Stored with the lexical index: an index analysed by another version is rebuilt from the store (3: the
# vocabulary grows with the texts; 2: Russian and Ukrainian word forms).
ANALYZER_VERSION = 3

_TOKEN = re.compile(r"(?u)\b\w\w+\b")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_UKRAINIAN_ONLY = re.compile(r"[іїєґІЇЄҐ]")
_RUSSIAN_ONLY = re.compile(r"[ыэъёЫЭЪЁ]")

Cyrillic = Literal["ru", "uk"]


def cyrillic_language(text: str) -> Cyrillic:
    """Ukrainian when the text has more letters only Ukrainian uses than letters only Russian uses, else Russian."""
    return "uk" if len(_UKRAINIAN_ONLY.findall(text)) > len(_RUSSIAN_ONLY.findall(text)) else "ru"


@lru_cache(maxsize=1)
def english_stop_words() -> frozenset[str]:
    """scikit-learn's English stop words, read from the module that holds them alone: importing scikit-learn
    (``sklearn.feature_extraction.text``) takes 1.3 s of a core, 5 s in each read worker while the server's
    processes start beside it on 2 cores, and nothing else of it is used here."""
    package = importlib.util.find_spec("sklearn")  # found, not imported
    assert package is not None and package.submodule_search_locations, "scikit-learn is a dependency"
    path = Path(package.submodule_search_locations[0]) / "feature_extraction" / "_stop_words.py"
    spec = importlib.util.spec_from_file_location("recommender._english_stop_words", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return frozenset(module.ENGLISH_STOP_WORDS)


def strip_accents(text: str) -> str:
    """The text without accents, as scikit-learn's ``strip_accents_unicode`` gives it (NFKD, combining marks
    dropped; an ASCII text as it is)."""
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    # An English text's only non-ASCII characters are mostly quotes and dashes, which have no accents: one scan in
    # C (half the time of the loop below) finds no mark there. The loop stays for the rest: a join of
    # ``itertools.compress`` was slower still.
    if not any(map(unicodedata.combining, decomposed)):
        return decomposed
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@lru_cache(maxsize=1)
def _russian_stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("russian")


@lru_cache(maxsize=131_072)  # news vocabularies repeat: a look-up is cheaper than the lemmatiser
def _cyrillic_form(word: str, language: Cyrillic) -> str:
    """One form for the word's inflections (``word`` as written: the Ukrainian dictionary knows names by case)."""
    if language == "uk":
        import simplemma

        form = simplemma.lemmatize(word, lang="uk").lower()
    else:
        form = _russian_stemmer().stemWord(word.lower())
    return form.replace("ё", "е")


def terms(text: str) -> list[str]:
    """The text's terms in order: stop words left out, each word in its indexed form."""
    stop = english_stop_words()
    if not _CYRILLIC.search(text):  # exactly what CountVectorizer(stop_words="english", ...) counted before
        return [w for w in _TOKEN.findall(strip_accents(text.lower())) if w not in stop]
    language = cyrillic_language(text)
    out = []
    for token in _TOKEN.findall(text):
        if _CYRILLIC.search(token):
            out.append(_cyrillic_form(token, language))
        elif (word := strip_accents(token.lower())) not in stop:
            out.append(word)
    return out
