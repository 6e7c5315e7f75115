"""Question → verified Answer: retrieve, pick the sentences that answer, quote them, verify.

The default engine is extractive: it quotes whole sentences of the retrieved passages, so it needs
no language model and cannot misquote. When ``llm_base_url`` is set, a chat model writes the answer
instead, and the extractive answer is the fallback whenever the model fails or quotes nothing that
verifies. Either way :func:`rag.verify.reconcile` has the last word on every quote.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np

from . import llm
from .chunking import split_sentences
from .config import Settings
from .embedding import Embedder
from .retriever import Retriever
from .text import content_terms, fold, is_content, stem, words
from .types import Answer, Citation, Document, Passage
from .verify import reconcile

log = logging.getLogger(__name__)

# Weight of question-term overlap beside embedding cosine in a sentence's score; calibrated
# together with min_relevance by bench/calibrate_refusal.py.
LEXICAL_WEIGHT = 0.5
# A question term found only in the sentence before counts this much (coreference: "the party").
CONTEXT_TERM_WEIGHT = 0.5
# Added for a sentence holding the kind of fact the question asks for (a date for "when"…).
ANSWER_TYPE_BONUS = 0.1
# Sentences the index holds no vector for (an index built before rag stored them) are embedded
# at question time, ~15 ms each on one core: only this many, best by a cheap first ranking.
EMBEDDED_SENTENCES = 4
# Further sentences join the best one only when they score nearly as well…
SECOND_SENTENCE_MARGIN = 0.15
# …and do not repeat this share of the content terms of one already chosen.
NEAR_DUPLICATE_OVERLAP = 0.8
# Spans without end punctuation and shorter than this are headings, not statements to quote.
_HEADING_MAX_WORDS = 12
_MIN_WORDS = 4

_ENDS_STATEMENT = re.compile(r"[.!?…][\"'”’)\]]*$")
# Words that point back at the conversation rather than name their subject.
_REFERRING_WORDS = frozenset(
    "it its it's that this those these they them their theirs he him his she her hers there then "
    "such same former latter".split()
)
_CONTINUATIONS = ("and ", "but ", "so ", "what about", "how about", "also ", "then ")
_MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
# What a question asks for, by its opening words, and how a sentence that gives it looks.
_ANSWER_TYPES = (
    (re.compile(r"^\W*(?:and\s+)?(?:when|what year|which year|since when)\b", re.I),
     re.compile(rf"\b(?:1\d{{3}}|20\d{{2}})s?\b|\b(?:{_MONTHS})\b"
                r"|\b(?:year|decade|century|day|week|month)s?\b"
                r"|\b(?:yesterday|today|ago|later|earlier|since|until)\b", re.I)),
    (re.compile(r"^\W*(?:and\s+)?how (?:many|much|long|old|far)\b", re.I),
     re.compile(r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|"
                r"thirty|forty|fifty|hundred|thousand|million|billion|dozen|several|few)\b", re.I)),
)


class _Sentence(NamedTuple):
    doc_id: str
    title: str
    start: int
    end: int
    text: str
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


def answer(
    question: str,
    retriever: Retriever,
    settings: Settings,
    *,
    k: int | None = None,
    history: list[tuple[str, str]] | None = None,
) -> Answer:
    """The verified answer to ``question``, or an honest refusal when the corpus lacks it."""
    final = None
    for final in stream_answer(question, retriever, settings, k=k, history=history):
        pass
    assert isinstance(final, Answer)
    return final


def stream_answer(
    question: str,
    retriever: Retriever,
    settings: Settings,
    *,
    k: int | None = None,
    history: list[tuple[str, str]] | None = None,
) -> Iterator[str | Answer]:
    """Text deltas as they are produced, then the verified :class:`Answer`.

    The extractive engine yields its text in one piece. A language model's tokens stream as they
    come, unverified; the final Answer's text is what may be shown, and it replaces them (quotes
    that failed verification are gone from it, or it is the extractive answer with a note).
    """
    if not question or not question.strip():
        raise ValueError("question must be a non-empty string")
    history = list(history or [])
    passages, evidence = find_evidence(resolve_follow_up(question, history), retriever, settings, k=k)
    documents = _Documents(retriever)
    if not evidence or evidence[0].score < settings.min_relevance:
        refusal = _refusal(passages)
        yield refusal.text
        yield refusal
        return
    extractive = _extractive_answer(evidence, settings.answer_sentences, documents)
    if not llm.is_configured(settings):
        yield extractive.text
        yield extractive
        return
    yield from _generative_answer(question, passages, history, settings, documents, extractive)


# ---------------------------------------------------------------- follow-ups


def resolve_follow_up(question: str, history: Sequence[tuple[str, str]]) -> str:
    """The question made self-contained: a follow-up gets the previous question's subject words.

    A follow-up is a question that points back ("when did that happen?", "and his group?") or is
    too short to name a subject. Earlier follow-ups are resolved first, so a chain keeps its subject.
    """
    if not history:
        return question
    previous = resolve_follow_up(history[-1][0], history[:-1])
    question_words = [fold(w) for w in words(question)]
    content = content_terms(question)
    points_back = any(w in _REFERRING_WORDS for w in question_words) or fold(question).lstrip().startswith(
        _CONTINUATIONS
    )
    if not (points_back and len(content) <= 4) and len(content) > 1:
        return question
    subject = [w for w in words(previous) if is_content(w) and stem(w) not in content]
    if not subject:
        return question
    return f"{question} ({' '.join(dict.fromkeys(subject))})"


# ---------------------------------------------------------------- evidence


def find_evidence(
    query: str, retriever: Retriever, settings: Settings, *, k: int | None = None
) -> tuple[list[Passage], list[Evidence]]:
    """The passages retrieved for ``query`` and their sentences ranked as evidence, best first.

    The best sentence's score is the relevance that ``min_relevance`` is compared with.
    """
    passages = retriever.search(query, k or settings.top_k)
    return passages, rank_evidence(query, passages, retriever)


def rank_evidence(query: str, passages: Sequence[Passage], retriever: Retriever) -> list[Evidence]:
    """The passages' sentences that best answer ``query``, best first.

    A sentence's score is its embedding cosine with the query plus ``LEXICAL_WEIGHT`` times the
    share of the query's content terms it contains (weighted by rarity among the candidates).
    """
    sentences = _candidate_sentences(passages)
    if not sentences:
        return []
    overlaps = _term_overlaps(query, sentences)
    scored, vectors = _sentence_vectors(retriever, sentences, overlaps)
    cosines = vectors @ retriever.embedder.embed_query(query)
    wanted = _answer_pattern(query)
    evidence = []
    for i, cosine in zip(scored, cosines):
        s = sentences[i]
        score = float(cosine) + LEXICAL_WEIGHT * overlaps[i]
        if wanted and wanted.search(s.text):
            score += ANSWER_TYPE_BONUS
        evidence.append(Evidence(s.doc_id, s.title, s.start, s.end, s.text, score))
    return sorted(evidence, key=lambda e: e.score, reverse=True)


def _answer_pattern(question: str) -> re.Pattern | None:
    """How a sentence holding what the question asks for looks, when its wording tells."""
    for asks, looks in _ANSWER_TYPES:
        if asks.search(question):
            return looks
    return None


def _candidate_sentences(passages: Sequence[Passage]) -> list[_Sentence]:
    """Each statement in the passages, once per place in its document."""
    seen: set[tuple[str, int, int]] = set()
    sentences = []
    for passage in passages:
        previous = ""
        for start, end in split_sentences(passage.text):
            text = passage.text[start:end]
            place = (passage.doc_id, passage.start + start, passage.start + end)
            if place not in seen and _is_statement(text):
                seen.add(place)
                sentences.append(_Sentence(passage.doc_id, passage.title, *place[1:], text,
                                           passage.similarity, previous))
            previous = text
    return sentences


def _is_statement(text: str) -> bool:
    count = len(text.split())
    if count < _MIN_WORDS:
        return False
    return count >= _HEADING_MAX_WORDS or bool(_ENDS_STATEMENT.search(text))


def _term_overlaps(query: str, sentences: list[_Sentence]) -> list[float]:
    """Share of the query's content terms in each sentence, rarer terms (among the candidates)
    weighing more; a term found only in the sentence before counts half, as "it" may name it."""
    query_terms = content_terms(query)
    if not query_terms:
        return [0.0] * len(sentences)
    own_terms = [content_terms(s.text) for s in sentences]
    context_terms = [content_terms(s.previous) for s in sentences]
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
    retriever: Retriever, sentences: list[_Sentence], overlaps: list[float]
) -> tuple[list[int], np.ndarray]:
    """Which sentences get an embedding score, and their vectors: every sentence whose vector the
    build stored, and the ``EMBEDDED_SENTENCES`` best of the others, embedded now."""
    places = [(s.doc_id, s.start, s.end) for s in sentences]
    stored = retriever.sentence_vectors(places)
    scored = [i for i, place in enumerate(places) if place in stored]
    missing = sorted(
        (i for i, place in enumerate(places) if place not in stored),
        key=lambda i: overlaps[i] + sentences[i].passage_similarity, reverse=True,
    )[:EMBEDDED_SENTENCES]
    rows = [stored[places[i]] for i in scored]
    if missing:
        embedded = _sentence_cache.vectors(retriever.embedder, [sentences[i].text for i in missing])
        scored += missing
        rows += list(embedded)
    return scored, np.vstack(rows)


# ---------------------------------------------------------------- composing


class _Documents:
    """Documents by id for one answer: several quotes usually come from the same document."""

    def __init__(self, retriever: Retriever):
        self._retriever = retriever
        self._documents: dict[str, Document] = {}

    def __call__(self, doc_id: str) -> Document:
        if doc_id not in self._documents:
            self._documents[doc_id] = self._retriever.document(doc_id)
        return self._documents[doc_id]


def _choose(evidence: list[Evidence], limit: int) -> list[Evidence]:
    """The best sentence, and up to ``limit - 1`` more that score nearly as well and say something new."""
    best = evidence[0]
    chosen = [best]
    for candidate in evidence[1:]:
        if len(chosen) >= limit or candidate.score < best.score - SECOND_SENTENCE_MARGIN:
            break
        if not any(_near_duplicate(candidate.text, kept.text) for kept in chosen):
            chosen.append(candidate)
    return chosen


def _near_duplicate(a: str, b: str) -> bool:
    terms_a, terms_b = content_terms(a), content_terms(b)
    if not terms_a or not terms_b:
        return a == b
    return len(terms_a & terms_b) / min(len(terms_a), len(terms_b)) >= NEAR_DUPLICATE_OVERLAP


def _extractive_answer(evidence: list[Evidence], limit: int, documents: _Documents) -> Answer:
    chosen = _choose(evidence, max(1, limit))
    # Documents in the order of their best sentence; within a document, the order it tells things.
    document_rank = {}
    for item in chosen:
        document_rank.setdefault(item.doc_id, len(document_rank))
    ordered = sorted(chosen, key=lambda e: (document_rank[e.doc_id], e.start))
    pieces, candidates = [], []
    previous_doc = None
    for number, item in enumerate(ordered, 1):
        title = _markdown_escape(item.title)
        if previous_doc is None:
            lead = f"According to *{title}*,"
        elif item.doc_id == previous_doc:
            lead = "It also says:" if number == 2 else "And:"
        else:
            lead = f"*{title}* says:"
        pieces.append(f'{lead} "{item.text}" [{number}]')
        candidates.append(Citation(number, item.text, item.doc_id, item.title, item.start, item.end,
                                   None, round(item.score, 4)))
        previous_doc = item.doc_id
    text, citations = reconcile(" ".join(pieces), candidates, documents)
    if not citations:
        return _refusal([])
    return Answer(text=text, found=True, citations=citations)


def _markdown_escape(text: str) -> str:
    return re.sub(r"([\\`*_\[\]<>])", r"\\\1", text)


def _refusal(passages: Sequence[Passage]) -> Answer:
    text = "The corpus does not contain the answer to this question."
    titles = list(dict.fromkeys(p.title for p in passages))[:3]
    if titles:
        named = ", ".join(f"*{_markdown_escape(t)}*" for t in titles)
        text += f" The closest documents it has are: {named}."
    return Answer(text=text, found=False, citations=[])


# ---------------------------------------------------------------- generative engine


def _generative_answer(
    question: str,
    passages: Sequence[Passage],
    history: list[tuple[str, str]],
    settings: Settings,
    documents: _Documents,
    extractive: Answer,
) -> Iterator[str | Answer]:
    reply: list[str] = []
    try:
        for delta in llm.stream_reply(llm.build_messages(question, passages, history), settings):
            reply.append(delta)
            yield delta
    except llm.LLMUnavailable as e:
        log.warning("language model unavailable, answering extractively: %s", e)
        yield replace(extractive, note=f"The language model could not answer ({e}); "
                                       "this is the extractive answer.")
        return
    draft, candidates = llm.draft_from_reply("".join(reply), passages, documents)
    text, citations = reconcile(draft, candidates, documents)
    if not citations:
        log.warning("no quote of the language model's reply verified; answering extractively")
        yield replace(extractive, note="The language model's answer had no quote that matches the "
                                       "corpus word for word; this is the extractive answer.")
        return
    yield Answer(text=text, found=True, citations=citations)
