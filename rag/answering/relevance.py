"""Answer or refuse: the probability that the best evidence answers the question.

A single threshold on one score fails both ways once a question is worded differently from its
answer. The decision here weighs several signals that survive paraphrase and typos, in a
logistic model fitted by ``bench/calibrate_refusal.py`` on several kinds of data (SciFact claims,
SQuAD questions and their adversarial unanswerable twins, questions written for the default
article, off-topic questions) and checked on a set it never saw:

- the best sentence's embedding cosine and term overlap, and the best passage's cosine;
- how far the best sentence stands above the other candidates;
- the share of the question's words the corpus does not have at all, even allowing one typo
  (a question about "coal exports to China" names a word no document holds);
- whether the best sentence holds the kind of fact asked for, and how many question terms it holds.

``min_relevance`` in the settings is the operating point on that probability.
"""

from __future__ import annotations

import math
import re
import threading
import weakref
from collections.abc import Sequence
from dataclasses import astuple, dataclass

from ..index.base import IndexReader
from ..text import Vocabulary, content_terms, is_content, words
from ..types import Passage
from .evidence import Evidence

_WORD_OR_OTHER = re.compile(r"([^\W_](?:[\w\-’']*[^\W_])?)")


@dataclass(frozen=True)
class Features:
    """What the answer / refuse decision looks at, for one question and its evidence."""

    sentence_cosine: float
    sentence_overlap: float
    passage_similarity: float
    margin: float  # best sentence score minus the median of the other candidates'
    unknown_terms: float  # share of the question's content words the corpus lacks (one typo allowed)
    type_missing: float  # 1 when the question asks for a date / number / name the sentence lacks
    coverage: float  # share of the question's content terms in the best sentence itself

    def vector(self) -> list[float]:
        return list(astuple(self))


# Fitted by bench/calibrate_refusal.py (logistic regression on standardised features; the
# run and the data are in bench/README.md). Order: as the fields of Features.
FEATURE_MEANS = (0.0,) * 7
FEATURE_SCALES = (1.0,) * 7
COEFFICIENTS = (6.0, 2.0, 2.0, 2.0, -6.0, -1.0, 1.0)
INTERCEPT = -5.0


def probability(features: Features) -> float:
    """The fitted model's probability that the evidence answers the question."""
    z = INTERCEPT + sum(
        w * (x - m) / s
        for w, x, m, s in zip(COEFFICIENTS, features.vector(), FEATURE_MEANS, FEATURE_SCALES)
    )
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


def features(question: str, evidence: Sequence[Evidence], passages: Sequence[Passage],
             vocabulary: Vocabulary) -> Features:
    """The decision's signals for ``question`` (already spelling-corrected) and its evidence."""
    best = evidence[0]
    others = sorted(e.score for e in evidence[1:])
    median = others[len(others) // 2] if others else best.score - 0.5
    terms = content_terms(question)
    kind_missing = 1.0 if best.has_asked_type is False else 0.0
    return Features(
        sentence_cosine=best.cosine,
        sentence_overlap=best.overlap,
        passage_similarity=max((p.similarity for p in passages), default=0.0),
        margin=best.score - median,
        unknown_terms=unknown_share(question, vocabulary),
        type_missing=kind_missing,
        coverage=len(best.covered) / len(terms) if terms else 0.0,
    )


def unknown_share(question: str, vocabulary: Vocabulary) -> float:
    """Share of the question's content words that no document holds, even allowing one typo."""
    content = [w for w in words(question) if is_content(w)]
    if not content:
        return 0.0
    return sum(vocabulary.match(w) is None for w in content) / len(content)


def unknown_words(question: str, vocabulary: Vocabulary) -> list[str]:
    return [w for w in words(question) if is_content(w) and vocabulary.match(w) is None]


def correct_spelling(question: str, vocabulary: Vocabulary) -> str:
    """``question`` with each word the corpus lacks replaced by its likeliest corpus spelling
    ("Columbia" → "colombia"); words with no close match stay as written."""
    pieces = _WORD_OR_OTHER.split(question)
    for i in range(1, len(pieces), 2):
        word = pieces[i]
        if word in vocabulary or not is_content(word):
            continue
        match = vocabulary.match(word)
        if match:
            pieces[i] = match
    return "".join(pieces)


_vocabularies: "weakref.WeakKeyDictionary[IndexReader, Vocabulary]" = weakref.WeakKeyDictionary()
_vocabularies_lock = threading.Lock()


def vocabulary_of(snapshot: IndexReader) -> Vocabulary:
    """The words of every document of one index version, built once per version."""
    with _vocabularies_lock:
        vocabulary = _vocabularies.get(snapshot)
        if vocabulary is None:
            texts = (snapshot.document(info.doc_id).text for info in snapshot.documents())
            titles = (info.title for info in snapshot.documents())
            vocabulary = Vocabulary(list(texts) + list(titles))
            _vocabularies[snapshot] = vocabulary
        return vocabulary
