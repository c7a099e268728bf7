"""When two articles are one story told twice: a cosine above a threshold or the same title, and, where those are
not enough (``copy_overlap``), the words they share.

A multilingual model puts reports of look-alike events above 0.99: "the dollar rose to 65.3" and "the dollar rose
to 66.1" from another day, one weather warning and the next. Their words tell them apart (the figures, the places)
where the cosine cannot, and a copy or a retelling of one report shares nearly all of its words. Word sets are read
only for the few pairs above the threshold, so the rule costs nothing where nothing is close.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from recommender.article import Article, plain_text

_WORD = re.compile(r"\w+")


def word_set(article: Article) -> frozenset[str]:
    """The distinct words of an article's title, lead and body, in lower case, numbers included."""
    return frozenset(_WORD.findall(plain_text(f"{article.title}\n{article.lead}\n{article.body}").lower()))


def word_overlap(a: frozenset[str], b: frozenset[str]) -> float:
    """Jaccard similarity of two word sets (1.0 for two empty ones)."""
    union = len(a | b)
    return len(a & b) / union if union else 1.0


class Copies:
    """Which of a list's candidates are one story with a given article: cosine above ``threshold`` or the same
    title, and, when ``overlap`` is set, words shared at Jaccard ``overlap`` or more. Word sets are kept per
    candidate."""

    def __init__(self, articles: Sequence[Article], threshold: float, overlap: float = 0.0,
                 _words: dict[int, frozenset[str]] | None = None):
        self.articles, self.threshold, self.overlap = articles, threshold, overlap
        self._words = {} if _words is None else _words

    def at(self, threshold: float) -> Copies:
        """The same rule at another cosine threshold, sharing the word sets read so far."""
        return Copies(self.articles, threshold, self.overlap, self._words)

    def _words_of(self, at: int) -> frozenset[str]:
        if at not in self._words:
            self._words[at] = word_set(self.articles[at])
        return self._words[at]

    def of(self, similarity: np.ndarray, words: frozenset[str] | int, same_title: np.ndarray | None = None
           ) -> np.ndarray:
        """A flag per candidate: one story with the article whose cosines to them are ``similarity`` and whose
        normalised title they share where ``same_title``; ``words``: its word set, or its own position among the
        candidates."""
        close = self._close(similarity, same_title)
        if self.overlap:
            self._check_words(close, words)
        return close

    def of_each(self, similarity: np.ndarray, positions: list[int], same_title: np.ndarray) -> np.ndarray:
        """``of`` for several of the candidates at once, a column each: ``similarity`` and ``same_title`` are
        (candidates, len(positions)), column i that of the candidate at ``positions[i]``."""
        close = self._close(similarity, same_title)
        if self.overlap:
            for i, at in enumerate(positions):
                self._check_words(close[:, i], at)
        return close

    def _close(self, similarity: np.ndarray, same_title: np.ndarray | None) -> np.ndarray:
        # float64, as the threshold is: in float32 (NumPy's rule for a float32 array and a Python float) 0.92
        # would be 0.9200000167.
        close = ~(similarity.astype(np.float64) <= self.threshold)
        if same_title is not None:
            close |= same_title  # a title is no proof either: "Live updates", "Koronawirus w Polsce" every day
        return close

    def _check_words(self, close: np.ndarray, words: frozenset[str] | int) -> None:
        """Keep, of the ``close`` flags (updated in place), those whose words overlap enough."""
        itself = isinstance(words, int) and bool(close[words])
        if np.count_nonzero(close) == itself:  # most often: a pick is close to itself alone
            return
        others = np.flatnonzero(close)
        if itself:
            others = others[others != words]  # one story with itself, whatever its words: none read
        mine = self._words_of(words) if isinstance(words, int) else words
        for at in others.tolist():
            close[at] = word_overlap(mine, self._words_of(at)) >= self.overlap
