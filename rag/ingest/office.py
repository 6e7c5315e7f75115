"""Word (.docx), OpenDocument text (.odt) and PowerPoint (.pptx): paragraphs in reading order,
headings as sections, the title from the document's properties or its first heading; slides are
pages, so citations name the slide.
"""

from __future__ import annotations

import io
import re

from ..types import LoadError
from .archive import open_checked
from .builder import BuiltText, TextBuilder

_HEADING_STYLE = re.compile(r"^(?:heading|überschrift|titre|título|titolo|kop)\s*(\d)", re.IGNORECASE)


def _clean(text: str) -> str:
    return " ".join(text.split())


# ---------------------------------------------------------------- Word


def load_docx(data: bytes) -> tuple[BuiltText, str | None]:
    open_checked(data, "Word")
    import docx  # deferred: only corpora with Word files pay for the import
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
        properties_title = document.core_properties.title
        body = document.element.body
        builder, first_heading = TextBuilder(), None
        for element in body.iterchildren():
            tag = element.tag.rsplit("}", 1)[-1]
            if tag == "p":
                paragraph = Paragraph(element, document)
                heading = _docx_heading_level(paragraph)
                text = _clean(paragraph.text)
                if heading is not None:
                    builder.heading(text)
                    first_heading = first_heading or (text if heading <= 1 else None)
                elif text:
                    builder.paragraph_break()
                    builder.add(text)
            elif tag == "tbl":
                _add_rows(builder, ([cell.text for cell in row.cells] for row in Table(element, document).rows))
    except LoadError:
        raise
    except Exception as e:  # python-docx and lxml raise many types on damaged parts
        raise LoadError(f"malformed Word file: {type(e).__name__}: {str(e)[:200]}") from None
    return builder.build(), _clean(properties_title or "") or first_heading


def _docx_heading_level(paragraph) -> int | None:
    """0 for the Title style, 1–9 for Heading 1–9, None for body text."""
    name = (paragraph.style.name if paragraph.style is not None else "") or ""
    if name.casefold() == "title":
        return 0
    match = _HEADING_STYLE.match(name)
    return int(match.group(1)) if match else None


def _add_rows(builder: TextBuilder, rows) -> None:
    """A table: a line per row, cells separated by " | " (merged cells, repeated by Word, once)."""
    builder.paragraph_break()
    for cells in rows:
        unique = []
        for cell in (_clean(c) for c in cells):
            if cell and (not unique or unique[-1] != cell):
                unique.append(cell)
        if unique:
            builder.line_break()
            builder.add(" | ".join(unique))
    builder.paragraph_break()


# ---------------------------------------------------------------- OpenDocument


def load_odt(data: bytes) -> tuple[BuiltText, str | None]:
    open_checked(data, "OpenDocument")
    from odf import teletype  # deferred: only corpora with .odt pay for it
    from odf.namespaces import TEXTNS
    from odf.opendocument import load

    try:
        document = load(io.BytesIO(data))
        builder, first_heading = TextBuilder(), None
        pending = [document.text]
        while pending:  # depth-first, in document order, without recursion
            element = pending.pop()
            qname = getattr(element, "qname", None)
            if qname == (TEXTNS, "h"):
                text = _clean(teletype.extractText(element))
                builder.heading(text)
                first_heading = first_heading or text
            elif qname == (TEXTNS, "p"):
                if text := _clean(teletype.extractText(element)):
                    builder.paragraph_break()
                    builder.add(text)
            else:
                pending.extend(reversed(getattr(element, "childNodes", [])))
        title = _odt_title(document)
    except LoadError:
        raise
    except Exception as e:  # odfpy raises many types on damaged parts
        raise LoadError(f"malformed OpenDocument file: {type(e).__name__}: {str(e)[:200]}") from None
    return builder.build(), title or first_heading


def _odt_title(document) -> str | None:
    from odf import dc, teletype

    titles = document.meta.getElementsByType(dc.Title)
    return _clean(teletype.extractText(titles[0])) if titles else None


# ---------------------------------------------------------------- PowerPoint


def load_pptx(data: bytes) -> tuple[BuiltText, str | None]:
    open_checked(data, "PowerPoint")
    import pptx  # deferred: only corpora with slides pay for the import

    try:
        presentation = pptx.Presentation(io.BytesIO(data))
        builder, first_title = TextBuilder(), None
        for slide in presentation.slides:
            builder.new_page()
            title_shape = slide.shapes.title
            if title_shape is not None and (title := _clean(title_shape.text_frame.text)):
                builder.heading(title)
                first_title = first_title or title
            for shape in slide.shapes:
                if title_shape is not None and shape.shape_id == title_shape.shape_id:
                    continue
                if shape.has_text_frame:
                    for paragraph in shape.text_frame.paragraphs:
                        if text := _clean("".join(run.text for run in paragraph.runs)):
                            builder.paragraph_break()
                            builder.add(text)
                elif getattr(shape, "has_table", False) and shape.has_table:
                    _add_rows(builder, ([cell.text for cell in row.cells] for row in shape.table.rows))
            if slide.has_notes_slide and (notes := _clean(slide.notes_slide.notes_text_frame.text)):
                builder.paragraph_break()
                builder.add(notes)
        title = _clean(presentation.core_properties.title or "")
    except LoadError:
        raise
    except Exception as e:  # python-pptx raises many types on damaged parts
        raise LoadError(f"malformed PowerPoint file: {type(e).__name__}: {str(e)[:200]}") from None
    return builder.build(), title or first_title
