"""EPUB → its chapters in reading (spine) order, headings as sections, the title from its
metadata. Each chapter is XHTML, read as a browser shows it (books have no boilerplate to drop)."""

from __future__ import annotations

import io
import warnings

from ..types import LoadError
from .archive import open_checked
from .builder import BuiltText, TextBuilder
from .encoding import decode_text
from .html import VisibleText


def load_epub(data: bytes) -> tuple[BuiltText, str | None]:
    open_checked(data, "EPUB")
    import ebooklib  # deferred: only corpora with e-books pay for the import
    from ebooklib import epub

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ebooklib's FutureWarnings about its own options
            book = epub.read_epub(io.BytesIO(data), options={"ignore_ncx": True})
        builder = TextBuilder()
        first_heading = None
        for item_id, _linear in book.spine:
            item = book.get_item_with_id(item_id)
            if item is None or item.get_type() != ebooklib.ITEM_DOCUMENT or isinstance(item, epub.EpubNav):
                continue
            try:
                chapter = decode_text(item.get_content())
            except LoadError:
                continue  # an undecodable chapter costs that chapter, not the book
            builder.paragraph_break()
            extractor = VisibleText(builder, chapter, skip_boilerplate=False, map_source=False)
            extractor.run()
            first_heading = first_heading or extractor.first_heading()
        titles = book.get_metadata("DC", "title")
    except LoadError:
        raise
    except Exception as e:  # ebooklib and lxml raise many types on damaged books
        raise LoadError(f"malformed EPUB: {type(e).__name__}: {str(e)[:200]}") from None
    title = " ".join(titles[0][0].split()) if titles and titles[0][0] else None
    return builder.build(), title or first_heading
