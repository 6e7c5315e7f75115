"""The sentences of the retrieved passages, scored as evidence for a question, best first.

A sentence's score is its embedding cosine with the question, plus ``LEXICAL_WEIGHT`` times the
share of the question's content terms it holds (rarer ones weighing more), plus a bonus when it
holds the kind of fact the question asks for (a date for "when", a number for "how many", a name
for "who"). Everything is read from one pinned index version.
"""

from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..chunking import split_sentences
from ..embedding import Embedder
from ..index.base import IndexReader
from ..text import content_terms, stem
from ..types import Passage

# Weight of question-term overlap beside embedding cosine in a sentence's score.
LEXICAL_WEIGHT = 0.5
# A question term found only in the sentence before counts this much (coreference: "the party").
CONTEXT_TERM_WEIGHT = 0.5
# Added for a sentence holding the kind of fact the question asks for (a date for "when"…).
ANSWER_TYPE_BONUS = 0.1
# Sentences the index holds no vector for (an index built before rag stored them) are embedded
# at question time, ~15 ms each on one core: only this many, best by a cheap first ranking.
EMBEDDED_SENTENCES = 4
# Spans without end punctuation and shorter than this are headings, not statements to quote.
_HEADING_MAX_WORDS = 12
_MIN_WORDS = 4

_ENDS_STATEMENT = re.compile(r"[.!?…][\"'”’)\]]*$")
_MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
_DATE = re.compile(rf"\b(?:1\d{{3}}|20\d{{2}})s?\b|\b(?:{_MONTHS})\b"
                   r"|\b(?:year|decade|century|day|week|month)s?\b"
                   r"|\b(?:yesterday|today|ago|later|earlier|since|until)\b", re.I)
_NUMBER = re.compile(r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
                     r"twenty|thirty|forty|fifty|hundred|thousand|million|billion|dozen|several|"
                     r"few|half|once|twice|fortnight|daily|weekly|monthly|yearly)\b", re.I)
_CAPITALISED = re.compile(r"(?<=[\w,;:] )[A-Z][\w'’\-]+")
# What a question asks for, by its opening words.
_ASKS = (
    ("date", re.compile(r"^\W*(?:and\s+)?(?:when|what year|which year|since when|in what year|"
                        r"what date)\b", re.I)),
    ("number", re.compile(r"^\W*(?:and\s+)?(?:how (?:many|much|long|old|far|big|large|high|tall|wide|"
                          r"deep|heavy|hot|cold|often|fast|small|low)|by how much|"
                          r"what (?:share|percentage|proportion|number|amount|price|size|distance|"
                          r"temperature|age))\b", re.I)),
    ("name", re.compile(r"^\W*(?:and\s+)?(?:who|whom|whose|where|which|what (?:company|firm|country|"
                        r"city|town|group|party|organi[sz]ation|institution|university|person|man|"
                        r"woman|place))\b", re.I)),
)


class _Sentence(NamedTuple):
    doc_id: str
    title: str
    start: int
    end: int
    text: str
    passage_rank: int
    passage_similarity: float
    previous: str  # the sentence before it in the passage, which its pronouns may refer to


@dataclass(frozen=True)
class Evidence:
    """A sentence of a retrieved passage, placed in its document and scored against the question."""

    doc_id: str
    title: str
    start: int
    end: int
    text: str
    score: float
    cosine: float  # embedding cosine with the question
    overlap: float  # rarity-weighted share of the question's content terms it (or its context) holds
    covered: frozenset[str]  # the question's content terms found in the sentence itself
    has_asked_type: bool | None  # holds the kind of fact asked for; None when the question asks none
    passage_rank: int  # 0 for a sentence of the best passage


def asked_type(question: str) -> str | None:
    """"date", "number" or "name" when the question's wording asks for one, else None."""
    for kind, asks in _ASKS:
        if asks.search(question):
            return kind
    return None


def holds_type(kind: str, sentence: str, question_terms: set[str]) -> bool:
    """True when ``sentence`` holds a fact of ``kind``; a name must be one the question lacks."""
    if kind == "date":
        return bool(_DATE.search(sentence))
    if kind == "number":
        return bool(_NUMBER.search(sentence))
    return any(stem(m.group(0)) not in question_terms for m in _CAPITALISED.finditer(sentence))


def rank_evidence(
    query: str, passages: Sequence[Passage], snapshot: IndexReader, embedder: Embedder
) -> list[Evidence]:
    """The passages' sentences that best answer ``query``, best first."""
    sentences = _candidate_sentences(passages)
    if not sentences:
        return []
    query_terms = content_terms(query)
    overlaps = _term_overlaps(query_terms, sentences)
    scored, vectors = _sentence_vectors(snapshot, embedder, sentences, overlaps)
    cosines = vectors @ embedder.embed_query(query)
    kind = asked_type(query)
    evidence = []
    for i, cosine in zip(scored, cosines):
        s = sentences[i]
        has_type = holds_type(kind, s.text, query_terms) if kind else None
        score = float(cosine) + LEXICAL_WEIGHT * overlaps[i] + (ANSWER_TYPE_BONUS if has_type else 0.0)
        evidence.append(Evidence(
            s.doc_id, s.title, s.start, s.end, s.text, score, float(cosine), overlaps[i],
            frozenset(query_terms & _terms_of(s.text)), has_type, s.passage_rank,
        ))
    return sorted(evidence, key=lambda e: e.score, reverse=True)


def _candidate_sentences(passages: Sequence[Passage]) -> list[_Sentence]:
    """Each statement in the passages, once per place in its document."""
    seen: set[tuple[str, int, int]] = set()
    sentences = []
    for rank, passage in enumerate(passages):
        previous = ""
        for start, end in split_sentences(passage.text):
            text = passage.text[start:end]
            place = (passage.doc_id, passage.start + start, passage.start + end)
            if place not in seen and _is_statement(text):
                seen.add(place)
                sentences.append(_Sentence(passage.doc_id, passage.title, *place[1:], text, rank,
                                           passage.similarity, previous))
            previous = text
    return sentences


def _is_statement(text: str) -> bool:
    count = len(text.split())
    if count < _MIN_WORDS:
        return False
    return count >= _HEADING_MAX_WORDS or bool(_ENDS_STATEMENT.search(text))


@lru_cache(maxsize=50_000)
def _terms_of(text: str) -> frozenset[str]:
    """Content terms of a sentence, tokenised once: a sentence is also the next one's context,
    and the same sentences come back across questions (tokenising was a third of answer()'s own
    CPU time)."""
    return frozenset(content_terms(text))


def _term_overlaps(query_terms: set[str], sentences: list[_Sentence]) -> list[float]:
    """Share of the query's content terms in each sentence, rarer terms (among the candidates)
    weighing more; a term found only in the sentence before counts half, as "it" may name it."""
    if not query_terms:
        return [0.0] * len(sentences)
    own_terms = [_terms_of(s.text) for s in sentences]
    context_terms = [_terms_of(s.previous) for s in sentences]
    weights = {
        term: math.log(1 + len(sentences) / (1 + sum(term in terms for terms in own_terms)))
        for term in query_terms
    }
    total = sum(weights.values())
    return [
        sum(weights[t] * (1.0 if t in own else CONTEXT_TERM_WEIGHT if t in context else 0.0)
            for t in query_terms) / total
        for own, context in zip(own_terms, context_terms)
    ]


class _VectorCache:
    """Sentence embeddings by model and text: the same sentences come back across questions."""

    def __init__(self, capacity: int = 50_000):
        self._vectors: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def vectors(self, embedder: Embedder, texts: list[str]) -> np.ndarray:
        with self._lock:
            missing = [t for t in dict.fromkeys(texts) if (embedder.name, t) not in self._vectors]
            if missing:
                for text, vector in zip(missing, embedder.embed_documents(missing)):
                    self._vectors[(embedder.name, text)] = vector
            rows = []
            for text in texts:
                self._vectors.move_to_end((embedder.name, text))
                rows.append(self._vectors[(embedder.name, text)])
            while len(self._vectors) > self._capacity:
                self._vectors.popitem(last=False)
        return np.vstack(rows) if rows else np.zeros((0, embedder.dimension), dtype=np.float32)


_sentence_cache = _VectorCache()


def _sentence_vectors(
    snapshot: IndexReader, embedder: Embedder, sentences: list[_Sentence], overlaps: list[float]
) -> tuple[list[int], np.ndarray]:
    """Which sentences get an embedding score, and their vectors: every sentence whose vector the
    build stored, and the ``EMBEDDED_SENTENCES`` best of the others, embedded now."""
    places = [(s.doc_id, s.start, s.end) for s in sentences]
    stored = snapshot.sentence_vectors(places)
    scored = [i for i, place in enumerate(places) if place in stored]
    missing = sorted(
        (i for i, place in enumerate(places) if place not in stored),
        key=lambda i: overlaps[i] + sentences[i].passage_similarity, reverse=True,
    )[:EMBEDDED_SENTENCES]
    rows = [stored[places[i]] for i in scored]
    if missing:
        embedded = _sentence_cache.vectors(embedder, [sentences[i].text for i in missing])
        scored += missing
        rows += list(embedded)
    return scored, np.vstack(rows)
