"""Evidence → the extractive answer text with numbered quotes, or a refusal that helps.

The best-supported sentence leads. A further sentence joins only when it scores nearly as well
and adds support the ones before lack: a question term they do not hold, the kind of fact asked
for when they hold none, or a closer match in meaning (a higher embedding cosine than each of
them: a paraphrase's answer may share no word with the question). Sentences that merely score
nearby are left out, and so is one that asks a question itself ("How did it come to this?"):
it shares the question's words but answers nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from ..text import content_terms
from ..types import Answer, Citation, Document, Passage
from ..verify import reconcile
from .evidence import Evidence

# Further sentences join the best one only when they score at least this close to it…
SECOND_SENTENCE_MARGIN = 0.15
# …and do not repeat this share of the content terms of one already chosen.
NEAR_DUPLICATE_OVERLAP = 0.8
# A sentence ending so asks rather than tells.
_QUESTION_END = re.compile(r"\?[\"'”’)\]]*\s*$")
# Passages offered as "possibly related" with a refusal.
RELATED_PASSAGES = 3

REFUSAL = "The corpus does not contain the answer to this question."


def choose(evidence: Sequence[Evidence], limit: int) -> list[Evidence]:
    """The best sentence, then up to ``limit - 1`` more that each add support for the answer."""
    best = evidence[0]
    chosen = [best]
    covered = set(best.covered)
    typed = bool(best.has_asked_type)
    for candidate in evidence[1:]:
        if len(chosen) >= limit or candidate.score < best.score - SECOND_SENTENCE_MARGIN:
            break
        if _QUESTION_END.search(candidate.text) or any(_near_duplicate(candidate.text, kept.text)
                                                        for kept in chosen):
            continue
        adds_terms = bool(candidate.covered - covered)
        adds_type = not typed and bool(candidate.has_asked_type)
        adds_meaning = candidate.cosine > max(kept.cosine for kept in chosen)
        if adds_terms or adds_type or adds_meaning:
            chosen.append(candidate)
            covered |= candidate.covered
            typed = typed or bool(candidate.has_asked_type)
    return chosen


def _near_duplicate(a: str, b: str) -> bool:
    terms_a, terms_b = content_terms(a), content_terms(b)
    if not terms_a or not terms_b:
        return a == b
    return len(terms_a & terms_b) / min(len(terms_a), len(terms_b)) >= NEAR_DUPLICATE_OVERLAP


def extractive_answer(
    evidence: Sequence[Evidence], limit: int, document_for: Callable[[str], Document]
) -> Answer:
    """The chosen sentences quoted, best first, each verified against its document."""
    chosen = choose(evidence, max(1, limit))
    pieces, candidates, titles = [], [], []
    previous_doc = None
    for number, item in enumerate(chosen, 1):
        title = markdown_escape(item.title)
        titles.append(f"*{title}*")
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
    text, citations = reconcile(" ".join(pieces), candidates, document_for, literal=titles)
    if not citations:
        return refusal([])
    return Answer(text=text, found=True, citations=citations)


def markdown_escape(text: str) -> str:
    return re.sub(r"([\\`*_\[\]<>])", r"\\\1", text)


def refusal(related: Sequence[Passage]) -> Answer:
    """A plain "not in the corpus"; ``related`` passages are offered as such, never as an answer."""
    related = list(related)[:RELATED_PASSAGES]
    text = REFUSAL
    if related:
        titles = ", ".join(f"*{markdown_escape(t)}*" for t in dict.fromkeys(p.title for p in related))
        text += f" Possibly related, though not an answer: passages of {titles}."
    return Answer(text=text, found=False, citations=[], related=related)
