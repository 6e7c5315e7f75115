"""EPUB → its chapters in reading (spine) order, headings as sections, the title from its
metadata. Each chapter is XHTML, read as a browser shows it (books have no boilerplate to drop);
the source map points into each chapter's file as the archive holds it (part: its path there)."""

from __future__ import annotations

import io
import warnings

from ..types import LoadError
from .archive import open_checked
from .builder import BuiltText, TextBuilder
from .encoding import decode_text
from .html import VisibleText


def load_epub(data: bytes) -> tuple[BuiltText, str | None]:
    archive = open_checked(data, "EPUB")
    members = archive.namelist()
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
            member = _member(members, item.file_name)
            try:  # the file as stored (ebooklib's get_content() rewrites it)
                chapter = decode_text(archive.read(member) if member else item.get_content())
            except LoadError:
                continue  # an undecodable chapter costs that chapter, not the book
            builder.paragraph_break()
            builder.part(member or item.file_name, chapter)
            extractor = VisibleText(builder, chapter, skip_boilerplate=False)
            extractor.run()
            first_heading = first_heading or extractor.first_heading()
        titles = book.get_metadata("DC", "title")
    except LoadError:
        raise
    except Exception as e:  # ebooklib and lxml raise many types on damaged books
        raise LoadError(f"malformed EPUB: {type(e).__name__}: {str(e)[:200]}") from None
    title = " ".join(titles[0][0].split()) if titles and titles[0][0] else None
    return builder.build(), title or first_heading


def _member(members: list[str], file_name: str) -> str | None:
    """The archive path of a chapter, which the book names relative to its package file."""
    return next((m for m in members if m == file_name or m.endswith("/" + file_name)), None)
