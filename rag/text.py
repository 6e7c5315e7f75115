"""Text normalisation and tokenising, defined once for indexing, search and answering.

Everything that compares words (BM25 at build and query time, question-term overlap in answers)
goes through here, so a query and a document always meet in the same form: Unicode NFC, case
folded (so "Straße" meets "STRASSE", an NFD "é" meets an NFC one), English stop words dropped and
Snowball stems.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

import Stemmer

_STEMMER = Stemmer.Stemmer("english")
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
    import bm25s  # on first use: parsing files and the CLI's start need none of bm25s, numpy, scipy

    return bm25s.tokenize(
        [fold(t) for t in texts], stopwords="en", stemmer=_STEMMER,
        return_ids=False, show_progress=False,
    )


def words(text: str) -> list[str]:
    """The words of ``text`` in any script, as written."""
    return _WORD.findall(text)


def word_spans(text: str) -> list[tuple[int, int]]:
    """Where each word of ``words(text)`` stands in ``text``."""
    return [m.span() for m in _WORD.finditer(text)]


def stem(word: str) -> str:
    return _STEMMER.stemWord(fold(word))


@cache
def _question_stopwords() -> frozenset[str]:
    """Stop words, and words that only frame a question ("tell me", "would you know")."""
    from bm25s.stopwords import STOPWORDS_EN_PLUS

    return frozenset(STOPWORDS_EN_PLUS) | {"also", "would", "could", "us", "tell", "know"}


def is_content(word: str) -> bool:
    """Not a stop word, and more than one character unless a digit."""
    return fold(word) not in _question_stopwords() and (len(word) > 1 or word.isdigit())


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


_english_counts = None


def english_frequency(word: str) -> int:
    """How often ``word`` (folded) occurs in general English text (pyspellchecker's word counts;
    0 for a word it does not know): tells a common word from a rare name or a misspelling."""
    global _english_counts
    if _english_counts is None:
        from spellchecker import SpellChecker

        _english_counts = SpellChecker(distance=1).word_frequency.dictionary
    return _english_counts.get(fold(word), 0)


def within_one_edit(a: str, b: str) -> bool:
    """True when ``b`` is ``a`` with at most one letter added, dropped, changed or two swapped."""
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        differ = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
        return len(differ) == 1 or (
            len(differ) == 2 and differ[1] == differ[0] + 1
            and a[differ[0]] == b[differ[1]] and a[differ[1]] == b[differ[0]]
        )
    short, long = (a, b) if len(a) < len(b) else (b, a)
    i = next((i for i, (x, y) in enumerate(zip(short, long)) if x != y), len(short))
    return short[i:] == long[i + 1:]


class Vocabulary:
    """The words of a corpus, folded, with how often each occurs, for spelling-tolerant matching.

    A question word the corpus lacks may be a typo of one it has ("Columbia", "embassador"):
    :meth:`match` finds the most frequent corpus word within one edit. Short words are matched
    exactly only, as one edit turns most of them into another real word.
    """

    #: Words shorter than this are never matched to a different word.
    MIN_FUZZY_LENGTH = 4

    def __init__(self, texts):
        self.counts: dict[str, int] = {}
        for text in texts:
            for word in words(fold(text)):
                for part in {word, *word.split("-")} - {""}:  # "mini-grids" also holds "grids"
                    self.counts[part] = self.counts.get(part, 0) + 1
        self.stems = {stem(word) for word in self.counts}
        self._by_deletion: dict[str, list[str]] = {}
        for word in self.counts:
            if len(word) >= self.MIN_FUZZY_LENGTH - 1:
                for key in deletions(word) | {word}:
                    self._by_deletion.setdefault(key, []).append(word)

    def __contains__(self, word: str) -> bool:
        folded = fold(word)
        return folded in self.counts or stem(folded) in self.stems

    def match(self, word: str) -> str | None:
        """``word`` folded if the corpus has it (or its stem), else its likeliest spelling in the
        corpus, else None."""
        folded = fold(word)
        if folded in self:
            return folded
        if len(folded) < self.MIN_FUZZY_LENGTH or folded.isdigit():
            return None
        candidates = {c for key in deletions(folded) | {folded} for c in self._by_deletion.get(key, ())}
        close = [c for c in candidates if within_one_edit(folded, c) and not c.isdigit()]
        return max(close, key=lambda c: (self.counts[c], c)) if close else None
