"""The one place that decides whether a quote may be shown: it must be the cited document's own text.

Every engine hands its draft answer here. A draft is Markdown in which each quote stands in double
quotation marks followed by a marker such as ``[2]`` that names a candidate :class:`Citation`.
:func:`reconcile` keeps only candidates whose quote is exactly ``document.text[start:end]``, removes
the claim around any quote that fails (a claim ends after its markers, its sentence or line), removes
markers that name no verified citation, and renumbers what is left 1..n in order of first use.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import replace

from .types import Citation, Document

log = logging.getLogger(__name__)

MARKER = re.compile(r"\[(\d+)\]")
# A claim ends after a run of markers (and the punctuation that closes its sentence), at the end
# of a sentence, or at a newline.
_CLAIM_END = re.compile(r"(?:\s*\[\d+\])+[.,;:!?)]*|[.!?](?=\s)|\n")
_QUOTE_CHARS = str.maketrans({"“": '"', "”": '"', "„": '"', "‟": '"', "‘": "'", "’": "'", "‚": "'", "‛": "'"})
# Anything a reader takes for a quotation: every style of quotation marks, and Markdown
# blockquotes. Apostrophes ("Colombia's", "it’s") are not quotation marks: a single quote opens
# only where no letter precedes it and closes only where none follows.
_QUOTED = re.compile(
    r"\"[^\"\n]+\"|[“„‟][^\n]+?[”“]|«[^»\n]+»|»[^«\n]+«|‹[^›\n]+›|›[^‹\n]+‹|「[^」\n]+」"
    r"|(?<!\w)‘(?=\S)[^\n]+?(?<=\S)[’‘](?!\w)|(?<![\w'])'(?=\S)[^\n]+?(?<=\S)'(?!\w)"
)
_BLOCKQUOTE = re.compile(r"^[ \t]*>+[ \t]*(\S[^\n]*)", re.M)


def is_verbatim(document: Document, quote: str, start: int, end: int) -> bool:
    """True when ``quote`` is exactly the document's text at ``start:end``."""
    return bool(quote) and 0 <= start < end <= len(document.text) and document.text[start:end] == quote


def locate_quote(quote: str, text: str) -> tuple[int, int] | None:
    """Where ``quote`` occurs in ``text``, or None.

    An exact match wins. Otherwise runs of whitespace and the style of quotation marks may differ
    (models rewrap lines and curl quotes); the span returned is then of ``text``, so the caller must
    take ``text[start:end]`` as the quote rather than the string it searched for.
    """
    quote = quote.strip()
    if not quote:
        return None
    position = text.find(quote)
    if position >= 0:
        return position, position + len(quote)
    normal_text, offsets = _normalise(text)
    normal_quote, _ = _normalise(quote)
    position = normal_text.find(normal_quote.strip())
    if position < 0:
        return None
    last = position + len(normal_quote.strip()) - 1
    return offsets[position], offsets[last] + 1


def _normalise(text: str) -> tuple[str, list[int]]:
    """``text`` with straight quotes and single spaces, and each kept character's original offset."""
    characters: list[str] = []
    offsets: list[int] = []
    for offset, character in enumerate(text.translate(_QUOTE_CHARS)):
        if character.isspace():
            if characters and characters[-1] == " ":
                continue
            character = " "
        characters.append(character)
        offsets.append(offset)
    return "".join(characters), offsets


def reconcile(
    text: str, candidates: Iterable[Citation], document_for: Callable[[str], Document],
    *, literal: Iterable[str] = (),
) -> tuple[str, list[Citation]]:
    """The draft ``text`` reduced to what can be shown, and its citations numbered 1..n.

    ``candidates`` are matched to markers by their ``number``. A candidate whose quote is not the
    document's exact text is dropped with the claim that quotes it, and so is any other quoted string
    that is no candidate's quote. Citations of the same span share one number; citations no marker
    uses are left out; pages are taken from the document. ``literal`` strings are the system's
    own labels (document titles), whose quotation marks quote nothing.
    """
    candidates = list(candidates)
    verified, failed = _verify(candidates, document_for)
    protected = _quote_spans(text, [c.quote for c in candidates])
    shown = _quote_spans(text, [c.quote for c in verified.values()])
    labels = _quote_spans(text, list(literal))
    kept_claims = []
    for claim_start, claim_end in _split_claims(text, protected):
        reason = _unshowable_quote(text, claim_start, claim_end, failed, shown, labels)
        if reason:
            log.warning("dropped a claim quoting %s: %r", reason, text[claim_start:claim_end].strip())
            continue
        kept_claims.append((claim_start, claim_end))

    numbers: dict[tuple[str, int, int], int] = {}
    citations: list[Citation] = []
    pieces: list[str] = []
    for claim_start, claim_end in kept_claims:
        position = claim_start
        for match in MARKER.finditer(text, claim_start, claim_end):
            if _inside(match.start(), protected):
                continue
            before = text[position : match.start()]
            position = match.end()
            citation = verified.get(int(match.group(1)))
            if citation is None:
                log.warning("dropped marker %s that names no verified citation", match.group(0))
                pieces.append(before.rstrip(" \t"))
                continue
            key = (citation.doc_id, citation.start, citation.end)
            if key not in numbers:
                numbers[key] = len(numbers) + 1
                citations.append(replace(citation, number=numbers[key]))
            pieces.append(f"{before}[{numbers[key]}]")
        pieces.append(text[position:claim_end])
    return _tidy("".join(pieces), [c.quote for c in citations]), citations


def _verify(
    candidates: list[Citation], document_for: Callable[[str], Document]
) -> tuple[dict[int, Citation], list[Citation]]:
    verified: dict[int, Citation] = {}
    failed: list[Citation] = []
    for candidate in candidates:
        try:
            document = document_for(candidate.doc_id)
        except (KeyError, LookupError, OSError) as e:
            log.warning("dropped citation %d: document %r unavailable (%s)",
                        candidate.number, candidate.doc_id, e)
            failed.append(candidate)
            continue
        if is_verbatim(document, candidate.quote, candidate.start, candidate.end):
            verified[candidate.number] = replace(candidate, page=document.page_at(candidate.start))
        else:
            log.warning(
                "dropped citation %d: %r is not the text of %s at %d:%d",
                candidate.number, candidate.quote, candidate.doc_id, candidate.start, candidate.end,
            )
            failed.append(candidate)
    return verified, failed


def _quote_spans(text: str, quotes: list[str]) -> list[tuple[int, int]]:
    """Every place a candidate quote appears in the draft: markers and quote marks there are text."""
    spans = []
    for quote in set(q for q in quotes if q):
        position = text.find(quote)
        while position >= 0:
            spans.append((position, position + len(quote)))
            position = text.find(quote, position + len(quote))
    return spans


def _inside(position: int, spans: list[tuple[int, int]]) -> bool:
    return any(start <= position < end for start, end in spans)


def _split_claims(text: str, protected: list[tuple[int, int]]) -> list[tuple[int, int]]:
    claims = []
    start = 0
    for match in _CLAIM_END.finditer(text):
        if _inside(match.start(), protected) or _inside(match.end() - 1, protected):
            continue
        claims.append((start, match.end()))
        start = match.end()
    if start < len(text):
        claims.append((start, len(text)))
    return claims


def _unshowable_quote(
    text: str, start: int, end: int, failed: list[Citation], shown: list[tuple[int, int]],
    labels: list[tuple[int, int]],
) -> str | None:
    """Why the claim at ``text[start:end]`` must not be shown, or None.

    It must not quote a failed candidate, nor put in quotation marks (of any style) or in a
    blockquote anything that is not part of a verified quote (``shown``) or a label.
    """
    for candidate in failed:
        for span in _quote_spans(text[start:end], [candidate.quote]):
            if not _within(start + span[0], start + span[1], shown):
                return f"citation {candidate.number} that failed verification"
    position = start
    while (match := _QUOTED.search(text, position, end)) is not None:
        if _within(match.start(), match.end(), labels):
            position = match.end()
            continue
        if _inside(match.start(), shown):  # an apostrophe or quote mark inside a verified quote
            position = match.start() + 1
            continue
        if not _within(match.start() + 1, match.end() - 1, shown):
            return f"unverified text {match.group(0)}"
        position = match.end()
    for match in _BLOCKQUOTE.finditer(text, start, end):
        if not _within(match.start(1), match.end(1), shown):
            return f"unverified blockquote {match.group(0).strip()}"
    return None


def _within(start: int, end: int, spans: list[tuple[int, int]]) -> bool:
    return any(s <= start and end <= e for s, e in spans)


def _tidy(text: str, quotes: list[str]) -> str:
    """Whitespace left behind by removals, tidied outside the quotes, which stay as they are."""
    pieces, position = [], 0
    for start, end in _quotes_in_order(text, quotes):
        pieces += [_tidy_plain(text[position:start]), text[start:end]]
        position = end
    return "".join(pieces + [_tidy_plain(text[position:])]).strip()


def _quotes_in_order(text: str, quotes: list[str]) -> Iterable[tuple[int, int]]:
    """Where the quotes stand in ``text``, left to right without overlap, the longest where two
    start together (str.find: a pattern made of each answer's quotes cost a compile, ~1 ms)."""
    quotes = [q for q in set(quotes) if q]
    position = 0
    while quotes:
        found = [(at, -len(q)) for q in quotes if (at := text.find(q, position)) >= 0]
        if not found:
            return
        start, negative_length = min(found)
        yield start, start - negative_length
        position = start - negative_length


def _tidy_plain(text: str) -> str:
    text = re.sub(r"[ \t]{2,}", " ", text)
    text = re.sub(r"[ \t]+([.,;:!?])(?=\s|$)", r"\1", text)
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text)
