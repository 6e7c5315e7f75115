"""Text normalisation and tokenising, defined once for indexing, search and answering.

Everything that compares words (BM25 at build and query time, question-term overlap in answers)
goes through here, so a query and a document always meet in the same form: Unicode NFC, case
folded (so "Straße" meets "STRASSE", an NFD "é" meets an NFC one), English stop words dropped and
Snowball stems.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable
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


class NearWords:
    """Known words found by their one-character deletions: the one spelling matcher, built once
    per set of known words (a segment's index terms, or its documents' surface words) and
    asked across several such sets, so an index's versions share it segment by segment."""

    def __init__(self, known: Iterable[str], shortest: int):
        """Index every known word of at least ``shortest`` characters."""
        self._by_deletion: dict[str, list[str]] = {}
        for word in known:
            if len(word) >= shortest:
                for key in deletions(word) | {word}:
                    self._by_deletion.setdefault(key, []).append(word)

    def near(self, word: str) -> set[str]:
        """Known words sharing ``word`` or one of its deletions: every word one typo away, and
        some two (a letter changed at two places cannot be told apart from that here)."""
        return {known for key in deletions(word) | {word} for known in self._by_deletion.get(key, ())}


def respelling(word: str, matchers: Iterable[NearWords], frequency: Callable[[str], int], *,
               shortest: int, one_edit: bool) -> str | None:
    """The most frequent known word near ``word`` (ties: the alphabetically last), or None.

    ``frequency`` is 0 for a word no longer known (only in deleted documents); words shorter than
    ``shortest`` are left alone (one letter changes too much of them); ``one_edit`` keeps only
    words within one edit that are not numbers."""
    if len(word) < shortest:
        return None
    near = {known for matcher in matchers for known in matcher.near(word)}
    if one_edit:
        near = {known for known in near if within_one_edit(word, known) and not known.isdigit()}
    scored = [(count, known) for known in near if (count := frequency(known)) > 0]
    return max(scored)[1] if scored else None


def correction(term: str, matchers: Iterable[NearWords], frequency: Callable[[str], int]) -> str | None:
    """The most frequent live index term (as ``index_tokens`` makes them) one typo from
    ``term``, or None; terms shorter than five characters are left alone."""
    return respelling(term, matchers, frequency, shortest=5, one_edit=False)


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


class WordCounts:
    """How often each surface word of some texts occurs (folded; a hyphenated word also as its
    parts: "mini-grids" holds "grids"), and each word's stem: the part of a vocabulary that one
    segment's documents, or a version's deleted documents, contribute."""

    def __init__(self, texts: Iterable[str] = ()):
        self.words: Counter[str] = Counter()
        for text in texts:
            for word in words(fold(text)):
                self.words.update({word, *word.split("-")} - {""})
        self.stems: Counter[str] = Counter()
        for word, count in self.words.items():
            self.stems[stem(word)] += count
        self._near: NearWords | None = None

    def near_words(self) -> NearWords:
        """Built on first use: the matcher over these words."""
        if self._near is None:
            self._near = NearWords(self.words, Vocabulary.MIN_FUZZY_LENGTH - 1)
        return self._near


class Vocabulary:
    """The words of a corpus, folded, with how often each occurs, for spelling-tolerant matching.

    A question word the corpus lacks may be a typo of one it has ("Columbia", "embassador"):
    :meth:`match` finds the most frequent corpus word within one edit. Short words are matched
    exactly only, as one edit turns most of them into another real word. Made of parts (one per
    index segment) less the words of documents deleted since, so a new index version reads only
    its new segments' and deleted documents' texts.
    """

    #: Words shorter than this are never matched to a different word.
    MIN_FUZZY_LENGTH = 4

    def __init__(self, texts: Iterable[str] = (), *, parts: Iterable[WordCounts] = (),
                 removed: WordCounts | None = None):
        """The words of ``texts`` and of ``parts``, less those of ``removed``."""
        self._parts = [*parts, WordCounts(texts)]
        self._removed = removed or WordCounts()

    def count(self, word: str) -> int:
        """Occurrences of ``word`` (folded) in the corpus."""
        return sum(part.words.get(word, 0) for part in self._parts) - self._removed.words.get(word, 0)

    def __contains__(self, word: str) -> bool:
        folded = fold(word)
        if self.count(folded) > 0:
            return True
        stemmed = stem(folded)
        return sum(part.stems.get(stemmed, 0) for part in self._parts) > self._removed.stems.get(stemmed, 0)

    def match(self, word: str) -> str | None:
        """``word`` folded if the corpus has it (or its stem), else its likeliest spelling in the
        corpus, else None."""
        folded = fold(word)
        if folded in self:
            return folded
        if folded.isdigit():
            return None
        return respelling(folded, [part.near_words() for part in self._parts], self.count,
                          shortest=self.MIN_FUZZY_LENGTH, one_edit=True)
