"""Question → verified Answer: resolve follow-ups, find evidence, decide, compose, verify.

One answer reads one index version: the snapshot taken when it starts serves the search, the
sentence vectors, the vocabulary, the documents quotes are verified against and the citations.

The default engine is extractive: it quotes whole sentences of the retrieved passages, so it needs
no language model and cannot misquote. When ``llm_base_url`` is set, a chat model writes the answer
from numbered sentences instead (:mod:`rag.answering.generative`), and the extractive answer is the
fallback whenever the model fails or cites nothing that verifies. Either way
:func:`rag.verify.reconcile` has the last word on every quote.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from .. import llm
from ..config import Settings
from ..index.base import IndexReader
from ..retriever import Retriever
from ..types import Answer, Document, Passage
from .compose import extractive_answer, refusal
from .evidence import Evidence, rank_evidence
from .follow_up import Query, resolve_follow_up
from .relevance import Features, correct_spelling, features, probability, unknown_words, vocabulary_of

__all__ = ["Judgement", "answer", "judge", "stream_answer", "resolve_follow_up"]


@dataclass(frozen=True)
class Judgement:
    """What was found for a question and whether it answers it."""

    query: Query
    search_text: str  # the query as searched: follow-up subject added, typos corrected
    passages: list[Passage]
    evidence: list[Evidence]
    features: Features | None
    probability: float  # that the best evidence answers the question (0 when there is none)
    answerable: bool
    related: bool  # close enough to offer the passages as possibly related on a refusal


def judge(
    question: str, retriever: Retriever, settings: Settings, snapshot: IndexReader, *,
    k: int | None = None, history: list[tuple[str, str]] | None = None,
) -> Judgement:
    """Search, rank the evidence and decide, all in ``snapshot``."""
    query = resolve_follow_up(question, history)
    vocabulary = vocabulary_of(snapshot)
    search_text = correct_spelling(query.text, vocabulary)
    passages = retriever.search(search_text, settings.top_k if k is None else k, snapshot=snapshot)
    evidence = rank_evidence(search_text, passages, snapshot, retriever.embedder)
    if not evidence:
        return Judgement(query, search_text, passages, evidence, None, 0.0, False, False)
    found = features(search_text, evidence, passages, vocabulary)
    chance = probability(found)
    answerable = chance >= settings.min_relevance
    if query.follow_up:
        # The rewritten question passed; the question as asked must not bring a subject of its
        # own that the corpus lacks ("What about penguins?" after otters).
        answerable = answerable and not unknown_words(query.question, vocabulary)
    related = chance >= settings.related_min_relevance
    return Judgement(query, search_text, passages, evidence, found, chance, answerable, related)


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
    come: they are a draft, unverified, and the final Answer replaces them (its text holds only
    model sentences with a verified citation; the rest is in ``Answer.unverified``).
    """
    if not isinstance(question, str) or not question.strip():
        raise ValueError("question must be a non-empty string")
    snapshot = retriever.snapshot()
    judgement = judge(question, retriever, settings, snapshot, k=k, history=history)
    documents = _Documents(snapshot)
    if not judgement.answerable:
        result = refusal(judgement.passages if judgement.related else [])
        yield result.text
        yield result
        return
    extractive = extractive_answer(judgement.evidence, settings.answer_sentences, documents)
    if not llm.is_configured(settings) or not extractive.found:
        yield extractive.text
        yield extractive
        return
    from .generative import generative_answer

    yield from generative_answer(question, judgement, history or [], settings, documents, extractive)


class _Documents:
    """Documents by id for one answer, from its snapshot: quotes often share a document."""

    def __init__(self, snapshot: IndexReader):
        self._snapshot = snapshot
        self._documents: dict[str, Document] = {}

    def __call__(self, doc_id: str) -> Document:
        if doc_id not in self._documents:
            self._documents[doc_id] = self._snapshot.document(doc_id)
        return self._documents[doc_id]
