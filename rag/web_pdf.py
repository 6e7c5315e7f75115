"""Where a quote is in its original file, for the web chat's document view: a PDF page as an
image with the quote's words boxed on it, and for every format the place named as the file has it.

The document's source map (stored in the index) says which page of a PDF holds which words of a
quote, and which paragraph, chapter or lines of any other file. The page image and character
boxes come from pdfium, the indexed text from pypdf, so offsets within a page do not carry over:
the quote's words are found again in the page's own characters, comparing letters and digits only
(spacing, hyphens and line breaks differ between the two extractors), at the same occurrence
as in the indexed page (a phrase that appears twice on a page is boxed where it was quoted).
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

from .text import fold
from .types import Document

_PAGE_PART = re.compile(r"page (\d+)$")
# Places in a file, as the source map names them, and how the document view says them.
_PLACE_KINDS = (
    (re.compile(r"paragraph (\d+)$"), "paragraph {0}"),
    (re.compile(r"slide (\d+), notes$"), "the notes of slide {0}"),
    (re.compile(r"slide (\d+), shape \d+.*$"), "slide {0}"),
)

# Pixels per PDF point of the rendered page: sharp on a laptop screen, ~100-300 KB as PNG.
RENDER_SCALE = 1.6


@dataclass(frozen=True)
class PageImage:
    page: int  # 1-based
    pages: int
    png_base64: str
    # The quote's highlight as rectangles in fractions of the page: (left, top, width, height).
    boxes: tuple[tuple[float, float, float, float], ...]


@dataclass(frozen=True)
class QuoteOnPage:
    """The words of a quote that one PDF page holds."""

    page: int  # 1-based
    text: str
    occurrence: int  # how many times these words come earlier on the same page (0: the first)


def quote_pages(document: Document, start: int, end: int) -> list[QuoteOnPage]:
    """The pages of a PDF that quote ``[start, end)`` of its text lies on, with its words on
    each, from the source map (a quote may run on across a page break); empty if it has none."""
    words: dict[int, tuple[int, int]] = {}
    for part, _, _, text_start, text_end in document.source_map.spans(start, end):
        if found := _PAGE_PART.match(part):
            page = int(found.group(1))
            low, high = words.get(page, (text_end, text_start))
            words[page] = (min(low, text_start), max(high, text_end))
    pages = []
    for page, (low, high) in sorted(words.items()):
        page_start = document.page_starts[page - 1] if page <= len(document.page_starts) else 0
        before, _ = _letters_and_digits(list(document.text[page_start:low]))
        wanted, _ = _letters_and_digits(list(document.text[low:high]))
        pages.append(QuoteOnPage(page, document.text[low:high], _count(before, wanted) if wanted else 0))
    return pages


def source_place(document: Document, start: int, end: int, file: Path | None = None) -> str | None:
    """Where ``[start, end)`` is in the original file, in a reader's words: "page 3", "paragraph
    12", "slide 2", "lines 40–42" of a text file (counted in ``file``, if it is still the
    indexed version) or the chapter of an e-book; None if the map does not place it."""
    reach: dict[str, tuple[int, int]] = {}  # part -> where the quote starts and ends in it
    for part, source_start, source_end, _, _ in document.source_map.spans(start, end):
        low, high = reach.get(part, (source_start, source_end))
        reach[part] = (min(low, source_start), max(high, source_end))
    places: list[str] = []
    for part, (source_start, source_end) in reach.items():
        place = _part_place(part, source_start, source_end, document, file)
        if place and place not in places:
            places.append(place)
    if not places:
        return None
    return places[0] if len(places) == 1 else f"{places[0]} to {places[-1]}"


def _part_place(part: str, source_start: int, source_end: int, document: Document,
                file: Path | None) -> str | None:
    if found := _PAGE_PART.match(part):
        return f"page {found.group(1)}"
    for pattern, wording in _PLACE_KINDS:
        if found := pattern.match(part):
            return wording.format(*found.groups())
    if part:
        return f"chapter file {part}"
    source = _indexed_source(document, file)
    if source is None:
        return None
    first, last = source.count("\n", 0, source_start) + 1, source.count("\n", 0, max(source_start, source_end - 1)) + 1
    return f"line {first}" if first == last else f"lines {first}–{last}"


def _indexed_source(document: Document, file: Path | None) -> str | None:
    """The file's decoded text, if the file is still the version that was indexed."""
    from .ingest.encoding import decode_text  # the same decoding the loader used
    from .types import LoadError

    if file is None:
        return None
    try:
        data = file.read_bytes()
    except OSError:
        return None
    if hashlib.sha256(data).hexdigest() != document.content_hash:
        return None
    try:
        return decode_text(data)
    except LoadError:
        return None


def _count(text: str, wanted: str) -> int:
    count, at = 0, text.find(wanted)
    while at >= 0:
        count, at = count + 1, text.find(wanted, at + len(wanted))
    return count


def page_image(pdf: Path, page: int, quote: str, occurrence: int = 0) -> PageImage:
    """Page ``page`` of ``pdf`` rendered, with the boxes of ``quote`` on it (its ``occurrence``-th
    appearance on the page, or the first if the page shows fewer; none if not found)."""
    import pypdfium2  # deferred: only a PDF citation opened in the browser pays for it

    document = pypdfium2.PdfDocument(str(pdf))
    try:
        pages = len(document)
        if not 1 <= page <= pages:
            raise ValueError(f"{pdf.name} has no page {page} (it has {pages})")
        pdf_page = document[page - 1]
        width, height = pdf_page.get_size()
        boxes = tuple(  # a little taller than the glyphs, like a highlighter stroke
            (left / width, (height - top - pad) / height, (right - left) / width, (top - bottom + 2 * pad) / height)
            for left, bottom, right, top in quote_boxes(pdf_page, quote, occurrence)
            for pad in [(top - bottom) * 0.2]
        )
        image = pdf_page.render(scale=RENDER_SCALE).to_pil()
        png = io.BytesIO()
        image.save(png, format="PNG", optimize=True)
        return PageImage(page, pages, base64.b64encode(png.getvalue()).decode("ascii"), boxes)
    finally:
        document.close()


def quote_boxes(pdf_page, quote: str, occurrence: int = 0) -> list[tuple[float, float, float, float]]:
    """One (left, bottom, right, top) box in PDF points per line the quote covers on the page."""
    import pypdfium2.raw as pdfium_c

    text_page = pdf_page.get_textpage()
    try:
        count = text_page.count_chars()
        characters = [chr(pdfium_c.FPDFText_GetUnicode(text_page.raw, i)) for i in range(count)]
        compact, owners = _letters_and_digits(characters)
        wanted = "".join(_letters_and_digits(list(quote))[0])
        found = compact.find(wanted) if wanted else -1
        if found < 0:
            return []
        for _ in range(occurrence):
            later = compact.find(wanted, found + len(wanted))
            if later < 0:
                break
            found = later
        first, last = owners[found], owners[found + len(wanted) - 1]
        lines: list[list[float]] = []
        for i in range(first, last + 1):
            left, bottom, right, top = text_page.get_charbox(i)
            if right <= left or top <= bottom:
                continue  # a generated space or line break has no box
            line = lines[-1] if lines else None
            if line and bottom < line[3] and top > line[1] and left >= line[0] - 1:
                line[:] = [min(line[0], left), min(line[1], bottom), max(line[2], right), max(line[3], top)]
            else:
                lines.append([left, bottom, right, top])
        return [tuple(line) for line in lines]
    finally:
        text_page.close()


def _letters_and_digits(characters: list[str]) -> tuple[str, list[int]]:
    """The folded letters and digits of ``characters``, and the index each one came from."""
    kept, owners = [], []
    for i, character in enumerate(characters):
        for folded in fold(character):
            if folded.isalnum():
                kept.append(folded)
                owners.append(i)
    return "".join(kept), owners
