"""Text normalisation and tokenising, defined once for indexing, search and answering.

Everything that compares words (BM25 at build and query time, question-term overlap in answers)
goes through here, so a query and a document always meet in the same form: Unicode NFC, case
folded (so "Straße" meets "STRASSE", an NFD "é" meets an NFC one), English stop words dropped and
Snowball stems.
"""

from __future__ import annotations

import re
import unicodedata

import bm25s
import Stemmer
from bm25s.stopwords import STOPWORDS_EN_PLUS

_STEMMER = Stemmer.Stemmer("english")
# Answers also drop words that only frame a question ("tell me", "would you know").
_QUESTION_STOPWORDS = frozenset(STOPWORDS_EN_PLUS) | {"also", "would", "could", "us", "tell", "know"}
# A word: a letter or digit in any script, then letters, digits, hyphens or apostrophes within it.
_WORD = re.compile(r"[^\W_](?:[\w\-’']*[^\W_])?")


def normalize(text: str) -> str:
    """Unicode NFC: the one form documents are stored in and queries are compared in."""
    return unicodedata.normalize("NFC", text)


def fold(text: str) -> str:
    """NFC and case folded: the form words are matched in."""
    return unicodedata.normalize("NFC", text).casefold()


def index_tokens(texts: list[str]) -> list[list[str]]:
    """BM25 terms of each text: folded, stop words dropped, stemmed."""
    return bm25s.tokenize(
        [fold(t) for t in texts], stopwords="en", stemmer=_STEMMER,
        return_ids=False, show_progress=False,
    )


def words(text: str) -> list[str]:
    """The words of ``text`` in any script, as written."""
    return _WORD.findall(text)


def stem(word: str) -> str:
    return _STEMMER.stemWord(fold(word))


def is_content(word: str) -> bool:
    """Not a stop word, and more than one character unless a digit."""
    return fold(word) not in _QUESTION_STOPWORDS and (len(word) > 1 or word.isdigit())


def content_terms(text: str) -> set[str]:
    """Stems of the content words of ``text``: what question-term overlap counts."""
    return {stem(word) for word in words(text) if is_content(word)}


def deletions(word: str) -> set[str]:
    """``word`` with any one character left out: two words one typo apart (a letter added,
    dropped, changed or two swapped) share one of these or one is the other (symmetric delete)."""
    return {word[:i] + word[i + 1:] for i in range(len(word))}


def correction(term: str, by_deletion: dict[str, list[str]], frequency: dict[str, int]) -> str | None:
    """The most frequent known term one typo from ``term`` (an index term, as ``index_tokens``
    makes them), or None. ``by_deletion`` maps each of :func:`deletions` of every known term, and
    each known term itself, to the known terms it comes from. Terms shorter than five characters
    are left alone: one letter changes too much of them."""
    if len(term) < 5:
        return None
    near = set(by_deletion.get(term, ()))
    for variant in deletions(term):
        near.update(by_deletion.get(variant, ()))
        if variant in frequency:
            near.add(variant)
    return max(near, key=lambda t: (frequency[t], t), default=None)
