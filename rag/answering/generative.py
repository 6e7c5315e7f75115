"""The language-model engine: the model cites numbered sentences, the system quotes them.

Each sentence of the model's reply must cite at least one sentence number from the prompt, and
what it says must be borne out by the sentences it cites (its numbers appear in them and most of
its content words appear in them or in the question). Such a sentence is shown with the exact
text of the sentences it cites inserted as quotes, which :func:`rag.verify.reconcile` checks
against the documents. Every other sentence of the reply (no citation, a number that names no
sentence, unsupported content, quotation marks or a blockquote of the model's own) is left out of
the answer text and kept in ``Answer.unverified``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from .. import llm
from ..chunking import split_sentences
from ..config import Settings
from ..text import content_terms
from ..types import Answer, Citation, Document, Passage
from ..verify import reconcile

if TYPE_CHECKING:
    from . import Judgement

log = logging.getLogger(__name__)

#: A model sentence is supported when at least this share of its content terms appear in the
#: sentences it cites or in the question.
SUPPORTED_TERMS = 0.5
_QUOTE_MARKS = re.compile(r"[\"“”„‟«»‹›「」]|(?<!\w)['‘]|['’](?!\w)|^\s*>", re.M)
_NUMBERS = re.compile(r"\d[\d,.]*\d|\d")


def number_sentences(passages: Sequence[Passage]) -> list[llm.NumberedSentence]:
    """Every sentence of the passages, numbered 1..n in prompt order, each place once."""
    numbered: list[llm.NumberedSentence] = []
    seen: set[tuple[str, int, int]] = set()
    for position, passage in enumerate(passages, 1):
        for start, end in split_sentences(passage.text):
            place = (passage.doc_id, passage.start + start, passage.start + end)
            if place in seen:
                continue
            seen.add(place)
            numbered.append(llm.NumberedSentence(len(numbered) + 1, passage.doc_id, passage.title,
                                                 *place[1:], passage.text[start:end], position))
    return numbered


def compose(
    reply: str, question: str, sentences: Sequence[llm.NumberedSentence]
) -> tuple[str, list[Citation], list[str]]:
    """The reply as a draft for :func:`rag.verify.reconcile`: each supported sentence of the
    model followed by the exact text of the sentences it cites. Returns the draft, its candidate
    citations and the model's sentences left out."""
    by_number = {s.number: s for s in sentences}
    question_terms = content_terms(question)
    claims, candidates, left_out = [], [], []
    for start, end in split_sentences(reply):
        said = reply[start:end]
        cited = [by_number[n] for n in llm.cited_numbers(said) if n in by_number]
        prose = llm.without_citations(said)
        if not prose or not cited or _QUOTE_MARKS.search(prose) or not _supported(prose, cited, question_terms):
            if prose:
                left_out.append(prose)
            continue
        quotes = []
        for source in cited:
            number = len(candidates) + 1
            candidates.append(Citation(number, source.text, source.doc_id, source.title,
                                       source.start, source.end, None, 0.0))
            quotes.append(f'"{source.text}" [{number}]')
        claims.append(f"{prose.rstrip('.!?;:, ')}: {' '.join(quotes)}")
    return "\n\n".join(claims), candidates, left_out


def _supported(prose: str, cited: Sequence[llm.NumberedSentence], question_terms: set[str]) -> bool:
    evidence = " ".join(s.text for s in cited)
    if any(number not in evidence for number in _NUMBERS.findall(prose)):
        return False
    terms = content_terms(prose)
    if not terms:
        return False
    known = content_terms(evidence) | question_terms
    return len(terms & known) / len(terms) >= SUPPORTED_TERMS


def generative_answer(
    question: str,
    judgement: "Judgement",
    history: list[tuple[str, str]],
    settings: Settings,
    documents: Callable[[str], Document],
    extractive: Answer,
) -> Iterator[str | Answer]:
    """The model's draft as it streams (unverified), then the verified Answer."""
    sentences = number_sentences(judgement.passages)
    reply: list[str] = []
    try:
        for delta in llm.stream_reply(llm.build_messages(question, sentences, history), settings):
            reply.append(delta)
            yield delta
    except llm.LLMUnavailable as e:
        log.info("language model unavailable, answering extractively: %s", e)  # the note says so
        yield replace(extractive, note=f"The language model could not answer ({e}); "
                                       "this is the extractive answer.")
        return
    draft, candidates, left_out = compose("".join(reply), question, sentences)
    text, citations = reconcile(draft, candidates, documents)
    unverified = " ".join(left_out)
    if not citations:
        log.info("no sentence of the language model's reply cited verified evidence")  # the note says so
        yield replace(extractive, unverified=unverified,
                      note="The language model's answer cited no sentence that supports it; "
                           "this is the extractive answer.")
        return
    yield Answer(text=text, found=True, citations=citations, unverified=unverified)
