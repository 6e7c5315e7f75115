"""Documents → Chunks: runs of whole sentences that fit the embedding model's token budget.

Chunks are spans of the document text (``doc.text[start:end] == chunk.text``), so every quote
taken from a chunk can be verified against its source offsets. A chunk only cuts a sentence when
that sentence alone is over budget; then it is cut at word boundaries (at characters only for a
single over-long "word").
"""

from __future__ import annotations

import re
from collections.abc import Callable
from itertools import accumulate

from .config import Settings
from .types import Chunk, Document, LoadError

CHUNKER_VERSION = 2  # 2: documents read as rendered (rag.ingest); older indexes hold raw text


def chunking_parameters(settings: Settings) -> dict:
    """What an index records of how it was chunked; opening it with other parameters is refused."""
    return {
        "max_tokens": settings.chunk_tokens,
        "overlap_sentences": settings.chunk_overlap_sentences,
        "chunker_version": CHUNKER_VERSION,
    }


Span = tuple[int, int]
CountTokens = Callable[[str], int]


class DocumentTooLong(LoadError):
    """A document over the token limit: skipped with this reason, before it costs more."""


def too_long_reason(limit: int) -> str:
    return f"its text is too long to index (more than {limit:,} tokens; limit: RAG_MAX_DOCUMENT_TOKENS)"

# Every character str.splitlines() breaks on.
_LINE = re.compile(r"[^\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]+")
_LINE_BREAK = re.compile(r"\r\n|[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
_WORD = re.compile(r"\S+")
_OPENING_MARKS = "\"'“‘([{"
_CLOSING_MARKS = "\"'”’)]"
# Sentence-final punctuation, any closing quotes/brackets, then whitespace.
_SENTENCE_END = re.compile(rf"[.!?…]+[{re.escape(_CLOSING_MARKS)}]*(?=\s)")
_LINE_END_PUNCTUATION = re.compile(rf"[.!?…:;][{re.escape(_CLOSING_MARKS)}]*$")
_DOTTED_ACRONYM = re.compile(r"(?:[A-Za-z]\.)+[A-Za-z]")  # U.S, e.g, a.m (final dot not included)
# Words that end in a period without ending the sentence (compared lower-cased, without the dot).
_ABBREVIATIONS = frozenset({
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "rev", "hon", "gen", "col", "lt",
    "sgt", "capt", "cmdr", "adm", "gov", "sen", "rep", "pres", "vs", "etc", "cf", "al", "ca",
    "approx", "inc", "ltd", "co", "corp", "dept", "no", "nos", "vol", "fig", "figs", "pp", "ed",
    "eds", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
    "ph.d",
})


# ---------------------------------------------------------------- sentences


def split_sentences(text: str) -> list[Span]:
    """Sentence spans (start, end) covering the text's non-whitespace content, in order; spans
    never include leading/trailing whitespace.

    Paragraph breaks, headings and line breaks end sentences, except a single line break inside
    a hard-wrapped sentence (a line without end punctuation followed by one starting lower-case),
    which is how PDF extraction and wrapped plain text break lines.
    """
    spans: list[Span] = []
    for block_start, block_end in _blocks(text):
        start = block_start
        for match in _SENTENCE_END.finditer(text, block_start, block_end):
            next_start = _skip_whitespace(text, match.end())
            if _ends_sentence(text, start, match, next_start):
                spans.append((start, match.end()))
                start = next_start
        spans.append((start, block_end))
    return spans


def _blocks(text: str) -> list[Span]:
    """Non-blank lines, with hard-wrapped continuation lines merged into the line before."""
    blocks: list[Span] = []
    previous_line: Span | None = None
    for match in _LINE.finditer(text):
        line = _strip(text, *match.span())
        if line[0] == line[1]:
            continue
        if previous_line and _is_wrapped(text, previous_line, line):
            blocks[-1] = (blocks[-1][0], line[1])
        else:
            blocks.append(line)
        previous_line = line
    return blocks


def _is_wrapped(text: str, previous_line: Span, line: Span) -> bool:
    """Whether ``line`` continues the sentence of the line just before it."""
    return (
        text[line[0]].islower()
        and len(_LINE_BREAK.findall(text, previous_line[1], line[0])) == 1
        and not text.startswith("#", previous_line[0])
        and not _LINE_END_PUNCTUATION.search(text, *previous_line)
    )


def _ends_sentence(text: str, sentence_start: int, match: re.Match, next_start: int) -> bool:
    """Whether punctuation ``match`` ends a sentence, rather than an abbreviation or initial."""
    if text[next_start].islower():
        return False
    if match.group().rstrip(_CLOSING_MARKS) != ".":
        return True
    word_start = match.start()
    while word_start > sentence_start and not text[word_start - 1].isspace():
        word_start -= 1
    word = text[word_start:match.start()].lstrip(_OPENING_MARKS)
    is_initial = len(word) == 1 and word.isupper()
    return not (is_initial or word.lower() in _ABBREVIATIONS or _DOTTED_ACRONYM.fullmatch(word))


def _skip_whitespace(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position


def _strip(text: str, start: int, end: int) -> Span:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


# ---------------------------------------------------------------- chunks


def chunk_document(
    doc: Document, *, max_tokens: int, overlap_sentences: int, count_tokens: CountTokens,
    max_document_tokens: int = 0,
) -> list[Chunk]:
    """Split ``doc`` into chunks of whole sentences of at most ``max_tokens`` tokens each.

    Each chunk after the first repeats up to ``overlap_sentences`` sentences from the end of the
    previous one, as many as still fit beside at least one new sentence. A document of more than
    ``max_document_tokens`` tokens (0: no limit) raises DocumentTooLong as soon as the count
    passes it, so its cost is bounded by the limit, not by the file.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
    text = doc.text
    units: list[Span] = []
    counts: list[int] = []
    total = 0
    for start, end in split_sentences(text):
        tokens = count_tokens(text[start:end])
        total += tokens
        if max_document_tokens and total > max_document_tokens:
            raise DocumentTooLong(too_long_reason(max_document_tokens))
        if tokens <= max_tokens:
            units.append((start, end))
            counts.append(tokens)
        else:
            for piece, piece_tokens in _split_long_sentence(text, start, end, max_tokens, count_tokens):
                units.append(piece)
                counts.append(piece_tokens)
    groups = _pack(text, units, counts, max_tokens, max(0, overlap_sentences), count_tokens)
    chunks = []
    for ordinal, (first, last) in enumerate(groups):
        start, end = units[first][0], units[last - 1][1]
        chunks.append(Chunk(doc_id=doc.doc_id, ordinal=ordinal, text=text[start:end],
                            start=start, end=end, pages=_pages(doc, start, end)))
    return chunks


def _pack(
    text: str, units: list[Span], counts: list[int], max_tokens: int, overlap: int,
    count_tokens: CountTokens,
) -> list[Span]:
    """Greedy runs ``[first, last)`` of units, budgeted by the cached per-unit counts.

    Every run is re-counted once as a whole, because tokenizers are not always additive across
    the whitespace between units; a run over budget sheds overlap first, then trailing units.
    Each run holds at least one unit the previous run did not, so this always terminates.
    """
    prefix = [0, *accumulate(counts)]
    runs: list[Span] = []
    first, covered = 0, 0  # covered: units[:covered] are in some run already
    while covered < len(units):
        last = first
        while last < len(units) and prefix[last + 1] - prefix[first] <= max_tokens:
            last += 1
        while last - first > 1 and count_tokens(_run_text(text, units, first, last)) > max_tokens:
            if first < covered:
                first += 1
            else:
                last -= 1
        runs.append((first, last))
        covered = last
        first = max(last - overlap, runs[-1][0] + 1)
        while first < last and last < len(units) and prefix[last + 1] - prefix[first] > max_tokens:
            first += 1
    return runs


def _run_text(text: str, units: list[Span], first: int, last: int) -> str:
    return text[units[first][0]:units[last - 1][1]]


def _split_long_sentence(
    text: str, start: int, end: int, max_tokens: int, count_tokens: CountTokens
) -> list[tuple[Span, int]]:
    """Pieces of an over-budget sentence, cut between words, each with its token count.

    Each piece is the longest run of words that fits, found by galloping from the length of the
    piece before: a few counts per piece, so 2 MB without a full stop costs about what 2 MB of
    ordinary sentences do (counting every word separately took minutes).
    """
    words = [match.span() for match in _WORD.finditer(text, start, end)]
    pieces: list[tuple[Span, int]] = []
    first, guess = 0, 1
    while first < len(words):
        last, tokens = _longest_fitting_run(text, words, first, guess, max_tokens, count_tokens)
        if last == first:  # one word alone is over budget: cut it between characters
            pieces.extend(_split_long_word(text, *words[first], max_tokens, count_tokens))
            first += 1
            continue
        pieces.append(((words[first][0], words[last - 1][1]), tokens))
        guess, first = last - first, last
    return pieces


def _longest_fitting_run(
    text: str, words: list[Span], first: int, guess: int, max_tokens: int, count_tokens: CountTokens
) -> tuple[int, int]:
    """``last`` and token count of the longest ``words[first:last]`` within budget (``last ==
    first`` if not even one word fits): try ``guess`` words, gallop up or down, then bisect."""
    def tokens_of(last: int) -> int:
        return count_tokens(text[words[first][0]:words[last - 1][1]])

    fits, fits_tokens = first, 0
    too_long = len(words) + 1  # words[first:too_long] is over budget; len + 1: none found yet
    probe, step = min(first + max(1, guess), len(words)), 1
    while True:
        tokens = tokens_of(probe)
        if tokens <= max_tokens:
            fits, fits_tokens = probe, tokens
        else:
            too_long = probe
        if fits + 1 >= too_long or fits == len(words):
            return fits, fits_tokens
        if too_long > len(words):  # nothing over budget yet: gallop up
            probe, step = min(fits + step, len(words)), step * 2
        else:
            probe = (fits + too_long) // 2


def _split_long_word(
    text: str, start: int, end: int, max_tokens: int, count_tokens: CountTokens
) -> list[tuple[Span, int]]:
    """Cut a word with no whitespace into the longest prefixes that fit."""
    pieces = []
    while start < end:
        cut, tokens = _longest_fitting_prefix(text, start, end, max_tokens, count_tokens)
        pieces.append(((start, cut), tokens))
        start = cut
    return pieces


def _longest_fitting_prefix(
    text: str, start: int, end: int, max_tokens: int, count_tokens: CountTokens
) -> tuple[int, int]:
    """End and token count of the longest ``text[start:cut]`` that fits, by galloping search
    (grow 1, 2, 4, ... characters, then bisect), so the text counted stays proportional to the
    piece however long the word is."""
    fits, fits_tokens = start + 1, count_tokens(text[start:start + 1])
    if fits_tokens > max_tokens:
        raise ValueError(f"max_tokens={max_tokens} is too small to hold {text[start]!r}")
    too_long, step = end + 1, 1  # text[start:too_long] does not fit; end + 1 means not found yet
    while fits < too_long - 1:
        candidate = min(fits + step, end) if too_long > end else (fits + too_long) // 2
        tokens = count_tokens(text[start:candidate])
        if tokens <= max_tokens:
            fits, fits_tokens, step = candidate, tokens, step * 2
        else:
            too_long = candidate
    return fits, fits_tokens


def _pages(doc: Document, start: int, end: int) -> tuple[int, ...]:
    first, last = doc.page_at(start), doc.page_at(end - 1)
    if first is None or last is None:
        return ()
    return tuple(range(first, last + 1))
