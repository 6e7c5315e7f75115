"""PDF → paragraphs as printed: lines joined, hyphenation at line ends undone, running headers,
footers and page numbers dropped, page boundaries kept for citations.

pypdf extracts each page's lines in reading order; everything after that works on those lines:
a line ends its paragraph where it is short and ends a sentence (the ragged last line), or where
the next one is a heading or list item; a line repeated at the top or bottom of most pages is a
running header or footer. Each line remembers where it starts in its page's
extracted text, which is what the source map points into (parts "page 1", "page 2", …).
"""

from __future__ import annotations

import io
import logging
import math
import re
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from ..types import LoadError
from .builder import BuiltText, TextBuilder

_SENTENCE_END = re.compile(r"[.!?…:;][\"'”’)\]]*$")
_PARAGRAPH_END = re.compile(r"[.!?…][\"'”’)\]]*$")
_HYPHENATED_END = re.compile(r"([^\W\d_]+)[-\u2010\u00ad]$")
_WORD_START = re.compile(r"^([^\W\d_]+)")
_LIST_ITEM = re.compile(r"^(?:[•◦▪‣●○■□–—*-]|\(?\d{1,3}[.)]|\(?[a-z][.)])\s")
_PAGE_NUMBER = re.compile(
    r"^(?:(?:page|p\.|seite|página|pagina)\s*)?[-–—(\[]?\s*\d{1,5}\s*[-–—)\]]?"
    r"(?:\s*(?:/|of|von|de|sur)\s*\d{1,5})?$", re.IGNORECASE)
_DIGITS = re.compile(r"\d+")
_HYPHENATED_WORD = re.compile(r"[^\W\d_]+-[^\W\d_]+")
_WORD = re.compile(r"[^\W\d_]+")
_RAW_LINE = re.compile(r"[^\r\n]+")
_EDGE_LINES = 2  # lines at the top and at the bottom of a page that may be a header or footer
_FULL_LINE = 0.85  # a line shorter than this share of a full line can end a paragraph
_SHORT_LINE = 0.6  # a line shorter than this without end punctuation may be a heading


def load_pdf(data: bytes) -> tuple[BuiltText, str | None]:
    if b"%PDF-" not in data[:1024]:
        raise LoadError("malformed PDF: no %PDF header")
    if b"%%EOF" not in data[-2048:]:
        raise LoadError("malformed PDF: truncated (no %%EOF marker at the end)")
    page_texts, title = _extract(data)
    pages = [_lines(text) for text in page_texts]
    if not any(line for page in pages for line in page):
        raise LoadError("no extractable text (scanned PDF?)")
    pages = _without_running_lines(pages)
    return _assemble(pages, page_texts), title


class _Line(str):
    """A line of a page, whitespace runs collapsed, with where it starts in the page's text."""

    start: int

    def __new__(cls, text: str, start: int) -> "_Line":
        line = super().__new__(cls, text)
        line.start = start
        return line


def _extract(data: bytes) -> tuple[list[str], str | None]:
    import pypdf  # deferred: only PDF corpora pay for the import

    with _quiet_pypdf():
        try:
            reader = pypdf.PdfReader(io.BytesIO(data))
            if reader.is_encrypted and not reader.decrypt(""):
                raise LoadError("PDF is encrypted")
            return [page.extract_text() or "" for page in reader.pages], _pdf_title(reader)
        except LoadError:
            raise
        except pypdf.errors.FileNotDecryptedError:
            raise LoadError("PDF is encrypted") from None
        except pypdf.errors.DependencyError as e:
            raise LoadError(f"PDF is encrypted and cannot be decrypted here: {_first_line(e)}") from None
        except Exception as e:  # pypdf raises many unrelated types on damaged files
            raise LoadError(f"malformed PDF: {_first_line(e)}") from None


def _lines(page_text: str) -> list[_Line]:
    lines = []
    for match in _RAW_LINE.finditer(page_text):
        raw = match.group()
        if text := " ".join(raw.split()):
            lines.append(_Line(text, match.start() + len(raw) - len(raw.lstrip())))
    return lines


def _pdf_title(reader) -> str | None:
    try:
        metadata = reader.metadata
        return str(metadata.title) if metadata and metadata.title else None
    except Exception:  # a broken /Info dictionary should not cost us the text
        return None


# ---------------------------------------------------------------- headers, footers, page numbers


def _without_running_lines(pages: list[list[str]]) -> list[list[str]]:
    """Drop page numbers and lines repeated at the top or bottom of most pages."""
    pages = [[line for line in page if line] for page in pages]
    seen = Counter()
    for page in pages:
        seen.update({_shape(line) for line in _edges(page)})
    repeated = {shape for shape, count in seen.items() if count >= max(2, len(pages) // 2 + 1)}
    cleaned = []
    for page in pages:
        top, bottom = 0, len(page)
        while top < min(_EDGE_LINES, bottom) and _is_running(page[top], repeated):
            top += 1
        while bottom > max(top, len(page) - _EDGE_LINES) and _is_running(page[bottom - 1], repeated):
            bottom -= 1
        cleaned.append(page[top:bottom])
    return cleaned


def _edges(page: list[str]) -> list[str]:
    return page[:_EDGE_LINES] + page[max(_EDGE_LINES, len(page) - _EDGE_LINES):]


def _shape(line: str) -> str:
    return _DIGITS.sub("#", line).casefold()


def _is_running(line: str, repeated: set[str]) -> bool:
    return bool(_PAGE_NUMBER.match(line)) or _shape(line) in repeated


# ---------------------------------------------------------------- lines → paragraphs


def _assemble(pages: list[list[_Line]], page_texts: list[str]) -> BuiltText:
    words = _vocabulary(pages)
    full_line = _full_line_length(pages)
    per_page = [_paragraphs(page, full_line) for page in pages]
    pieces = [[_pieces(lines, words) for lines in page] for page in per_page]
    # How each page joins the text before it: None for a new paragraph, " " or "" (a hyphenated
    # word rejoined) where its first paragraph runs on from the previous page.
    joiners: list[str | None] = [None] * len(pages)
    last: tuple[int, int] | None = None
    for number, paragraphs in enumerate(per_page):
        if paragraphs and last and _continues(per_page[last[0]][last[1]], paragraphs[0], full_line):
            previous = pieces[last[0]][last[1]][-1]
            if _joiner(previous[0], paragraphs[0][0], words) is None:
                previous[0], joiners[number] = previous[0][:-1], ""
            else:
                joiners[number] = " "
        if paragraphs:
            last = (number, len(paragraphs) - 1)
    builder = TextBuilder()
    for number, paragraphs in enumerate(per_page):
        builder.new_page()
        builder.part(f"page {number + 1}", page_texts[number])
        if joiners[number] is not None:
            builder.continue_page(joiners[number])
        for index, lines in enumerate(paragraphs):
            runs_on = index == 0 and joiners[number] is not None
            if not runs_on and _is_heading(lines, full_line, paragraphs, index):
                builder.heading(lines[0], lines[0].start)
                continue
            if not runs_on:
                builder.paragraph_break()
            for text, line, joiner in pieces[number][index]:
                if joiner == " ":
                    builder.space()
                builder.add(text, line.start)
    return builder.build()


def _continues(lines: list[str], next_lines: list[str], full_line: int) -> bool:
    """Whether a page's last paragraph runs on into the next page's first one: it stops without
    end punctuation, and the next page goes on in lower case or its last line was a full one."""
    if _PARAGRAPH_END.search(lines[-1]):
        return False
    return next_lines[0][:1].islower() or (  # a wrapped paragraph whose last line is a full one
        len(lines) > 1 and not _SENTENCE_END.search(lines[-1]) and len(lines[-1]) >= _SHORT_LINE * full_line)


def _full_line_length(pages: list[list[str]]) -> int:
    """The length of a full line: the 90th percentile, rounded up so that a page of a few lines
    (a title and a short paragraph) measures against its longest line, not its title."""
    lengths = sorted(len(line) for page in pages for line in page)
    return lengths[math.ceil(0.9 * (len(lengths) - 1))] if lengths else 0


def _paragraphs(lines: list[str], full_line: int) -> list[list[str]]:
    paragraphs: list[list[str]] = []
    for line in lines:
        if paragraphs and not _breaks_between(paragraphs[-1][-1], line, full_line):
            paragraphs[-1].append(line)
        else:
            paragraphs.append([line])
    return paragraphs


def _breaks_between(previous: str, line: str, full_line: int) -> bool:
    if line[:1].islower() and not _PARAGRAPH_END.search(previous):
        return False  # a sentence going on
    ended = _SENTENCE_END.search(previous)
    short = len(previous) < _FULL_LINE * full_line
    if _LIST_ITEM.match(line):  # "- " or "12. " opening a wrapped line is no list item
        return bool(ended) or short
    if ended:
        return short
    starts_upper = line[:1].isupper() or line[:1].isdigit()
    return starts_upper and len(previous) < _SHORT_LINE * full_line


def _is_heading(lines: list[str], full_line: int, paragraphs: list[list[str]], index: int) -> bool:
    """A one-line paragraph, short, without end punctuation, followed by more text."""
    line = lines[0]
    return (len(lines) == 1 and index + 1 < len(paragraphs) and len(line) < _SHORT_LINE * full_line
            and not _SENTENCE_END.search(line) and not _LIST_ITEM.match(line)
            and (line[:1].isupper() or line[:1].isdigit()))


def _pieces(lines: list[_Line], words: "_Vocabulary") -> list[list]:
    """A paragraph's lines as [text, line, joiner]: the text to add (a line without the soft
    hyphen that ends it) and what goes before it (None first, " " or "")."""
    pieces = [[lines[0], lines[0], None]]
    for line in lines[1:]:
        joiner = _joiner(pieces[-1][0], line, words)
        if joiner is None:
            pieces[-1][0] = pieces[-1][0][:-1]
        pieces.append([line, line, "" if joiner is None else joiner])
    return pieces


class _Vocabulary:
    """The document's own words, which decide whether a hyphen at a line end was a soft one."""

    def __init__(self, words: set[str], compounds: set[str]):
        self.words, self.compounds = words, compounds


def _vocabulary(pages: list[list[str]]) -> _Vocabulary:
    words: set[str] = set()
    compounds: set[str] = set()
    for page in pages:
        for line in page:
            words.update(w.casefold() for w in _WORD.findall(line))
            compounds.update(c.casefold() for c in _HYPHENATED_WORD.findall(line))
    return _Vocabulary(words, compounds)


def _joiner(text: str, line: str, words: _Vocabulary) -> str | None:
    """How the next line joins ``text``: None where a word hyphenated across the break is
    rejoined (its hyphen dropped), "" where the document writes it with a hyphen elsewhere
    ("well-known") and never without, else " "."""
    end, start = _HYPHENATED_END.search(text), _WORD_START.match(line)
    if end and start and line[:1].islower():
        head, tail = end.group(1), start.group(1)
        joined = (head + tail).casefold()
        soft = text.endswith("\u00ad") or joined in words.words or (
            f"{head}-{tail}".casefold() not in words.compounds)
        return None if soft else ""
    return " "


# ---------------------------------------------------------------- quiet pypdf


@contextmanager
def _quiet_pypdf() -> Iterator[None]:
    """Silence pypdf's warnings and log records about damaged files; our LoadError says it all."""
    logger = logging.getLogger("pypdf")  # its modules log to child loggers, which inherit this level
    previous_level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(previous_level)


def _first_line(error: Exception) -> str:
    message = str(error).strip().split("\n", 1)[0]
    return message or type(error).__name__
