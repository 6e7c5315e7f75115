"""Answer or refuse: the probability that the best evidence answers the question.

A single threshold on one score fails both ways once a question is worded differently from its
answer. The decision here weighs several signals that survive paraphrase and typos, in a
logistic model fitted by ``bench/calibrate_refusal.py`` on several kinds of data (SciFact claims,
SQuAD questions and their adversarial unanswerable twins, questions written for the default
article, off-topic questions) and checked on a set it never saw:

- the best sentence's embedding cosine and term overlap, and the best passage's cosine;
- how far the best sentence stands above the other candidates;
- the question's words the corpus does not have at all, even allowing one typo, each weighted by
  its rarity in English (a question about "coal exports to China" names a word no document holds;
  a paraphrase's everyday words, which a small corpus lacks too, weigh little);
- whether the best sentence holds the kind of fact asked for, and how many question terms it holds;
- whether the numbers the question names ("in 2023") appear in the best passage at all.

``min_relevance`` in the settings is the operating point on that probability.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Sequence
from dataclasses import astuple, dataclass

from ..index.base import IndexReader
from ..text import Vocabulary, content_terms, english_frequency, is_content, word_spans, words
from ..types import Passage
from .evidence import Evidence

# log10 of an English word count at which a word is as common as words get ("now": 3 million).
_COMMON_LOG_COUNT = 6.0


@dataclass(frozen=True)
class Features:
    """What the answer / refuse decision looks at, for one question and its evidence."""

    sentence_cosine: float
    sentence_overlap: float
    passage_similarity: float
    margin: float  # best sentence score minus the median of the other candidates'
    # Share of the question's content words the corpus lacks (one typo allowed), each weighted by
    # its rarity in English. Unweighted, the share measured the corpus's size more than the
    # question: a 3 kB corpus lacks 40 % of a paraphrase's words, SQuAD's articles 2 %.
    unknown_rare_terms: float
    type_missing: float  # 1 when the question asks for a date / number / name the sentence lacks
    numbers_missing: float  # share of the question's numbers ("2023") absent from the best passage
    coverage: float  # share of the question's content terms in the best sentence itself

    def vector(self) -> list[float]:
        return list(astuple(self))


# Fitted by bench/calibrate_refusal.py (logistic regression on standardised features; the
# run and the data are in bench/README.md). Order: as the fields of Features.
FEATURE_MEANS = (0.4695, 0.3881, 0.4541, 0.3282, 0.0909, 0.029, 0.0945, 0.4297)
FEATURE_SCALES = (0.2119, 0.2812, 0.214, 0.2009, 0.1407, 0.1677, 0.2886, 0.2827)
COEFFICIENTS = (0.4428, 0.381, 0.3945, 0.4279, -0.2982, -0.1247, -0.1852, 0.31)
INTERCEPT = -0.0864


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
        unknown_rare_terms=unknown_share(question, vocabulary),
        type_missing=kind_missing,
        numbers_missing=_numbers_missing(question, passages[best.passage_rank].text),
        coverage=len(best.covered) / len(terms) if terms else 0.0,
    )


def _numbers_missing(question: str, passage: str) -> float:
    numbers = [w for w in words(question) if any(c.isdigit() for c in w)]
    if not numbers:
        return 0.0
    held = set(words(passage))
    return sum(n not in held for n in numbers) / len(numbers)


def unknown_share(question: str, vocabulary: Vocabulary) -> float:
    """Share of the question's content words that no document holds, even allowing one typo, each
    counted by its rarity in English, so "now" or "leads" (a paraphrase's everyday words) weigh
    little beside "blockchain" or "salary" (a subject the corpus lacks)."""
    content = [w for w in words(question) if is_content(w)]
    if not content:
        return 0.0
    return sum(rarity(w) for w in content if vocabulary.match(w) is None) / len(content)


def rarity(word: str) -> float:
    """0 for the commonest English words, 1 for words English text hardly ever uses."""
    return min(1.0, max(0.0, 1.0 - math.log10(english_frequency(word) + 1) / _COMMON_LOG_COUNT))


def unknown_words(question: str, vocabulary: Vocabulary) -> list[str]:
    return [w for w in words(question) if is_content(w) and vocabulary.match(w) is None]


def correct_spelling(question: str, vocabulary: Vocabulary) -> str:
    """``question`` with each misspelt word replaced by its likeliest corpus spelling
    ("embassador" → "ambassador", "Columbia" → "colombia").

    A word is taken for a misspelling when the corpus lacks it and it is no English word, or it
    is a name (capitalised inside the question) one letter off a corpus word: "decides" stays
    "decides" though the corpus only has "decades".
    """
    corrected, position = [], 0
    for start, end in word_spans(question):
        word = question[start:end]
        corrected.append(question[position:start])
        position = start
        if word in vocabulary or not is_content(word):
            continue
        is_name = word[:1].isupper() and question[:start].strip() != ""
        if english_frequency(word) and not is_name:
            continue
        match = vocabulary.match(word)
        if match:
            corrected.append(match)
            position = end
    corrected.append(question[position:])
    return "".join(corrected)


_vocabularies: "weakref.WeakKeyDictionary[IndexReader, Vocabulary]" = weakref.WeakKeyDictionary()
_vocabularies_lock = threading.Lock()


def vocabulary_of(snapshot: IndexReader) -> Vocabulary:
    """The words of every document of one index version, built once per version: from the
    reader's per-segment counts where it keeps them (the local index, where a new version costs
    only its new segments and deleted documents), else from every document's text. Built
    outside the lock, so questions on a version already counted never wait for another."""
    with _vocabularies_lock:
        vocabulary = _vocabularies.get(snapshot)
    if vocabulary is None:
        by_segment = getattr(snapshot, "vocabulary", None)
        if by_segment is not None:
            vocabulary = by_segment()
        else:
            infos = snapshot.documents()
            vocabulary = Vocabulary([snapshot.document(info.doc_id).text for info in infos]
                                    + [info.title for info in infos])
        with _vocabularies_lock:
            vocabulary = _vocabularies.setdefault(snapshot, vocabulary)
    return vocabulary
