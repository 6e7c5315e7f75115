"""A PDF page as an image with a quote's words boxed on it, for the web chat's document view.

The indexed text of a PDF comes from pypdf, the page image and character boxes from pdfium, so
offsets do not carry over: the quote is found again in the page's own characters, comparing
letters and digits only (spacing, hyphens and line breaks differ between the two extractors).
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import Path

from .text import fold

# Pixels per PDF point of the rendered page: sharp on a laptop screen, ~100-300 KB as PNG.
RENDER_SCALE = 1.6


@dataclass(frozen=True)
class PageImage:
    page: int  # 1-based
    pages: int
    png_base64: str
    # The quote's highlight as rectangles in fractions of the page: (left, top, width, height).
    boxes: tuple[tuple[float, float, float, float], ...]


def page_image(pdf: Path, page: int, quote: str) -> PageImage:
    """Page ``page`` of ``pdf`` rendered, with the boxes of ``quote`` on it (none if not found)."""
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
            for left, bottom, right, top in quote_boxes(pdf_page, quote)
            for pad in [(top - bottom) * 0.2]
        )
        image = pdf_page.render(scale=RENDER_SCALE).to_pil()
        png = io.BytesIO()
        image.save(png, format="PNG", optimize=True)
        return PageImage(page, pages, base64.b64encode(png.getvalue()).decode("ascii"), boxes)
    finally:
        document.close()


def quote_boxes(pdf_page, quote: str) -> list[tuple[float, float, float, float]]:
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
