"""Word (.docx), OpenDocument text (.odt) and PowerPoint (.pptx): paragraphs in reading order,
headings as sections, the title from the document's properties or its first heading; slides are
pages, so citations name the slide.

The source map points into the file's own paragraphs: "paragraph N" is the text of the Nth
paragraph of a Word file (python-docx ``Paragraph.text``, every ``w:p`` in document order, table
cells included) or of an OpenDocument file (odfpy ``teletype.extractText`` of every ``text:p``
and ``text:h``, in document order); "slide S, shape K, paragraph P" a slide's text (the runs of
the Pth paragraph of its Kth shape), "slide S, shape K, row R, cell C" a table cell's,
"slide S, notes" its speaker notes.
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
    from docx.oxml.ns import qn
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
        properties_title = document.core_properties.title
        body = document.element.body
        numbers = {element: n for n, element in enumerate(body.iter(qn("w:p")), 1)}
        builder, first_heading = TextBuilder(), None
        for element in body.iterchildren():
            tag = element.tag.rsplit("}", 1)[-1]
            if tag == "p":
                paragraph = Paragraph(element, document)
                heading = _docx_heading_level(paragraph)
                text = paragraph.text
                builder.part(f"paragraph {numbers[element]}", text)
                if heading is not None:
                    builder.heading(text, 0)
                    first_heading = first_heading or (_clean(text) if heading <= 1 else None)
                elif _clean(text):
                    builder.paragraph_break()
                    builder.add(_clean(text), 0)
            elif tag == "tbl":
                _add_rows(builder, ([[(f"paragraph {numbers[p._p]}", p.text) for p in cell.paragraphs]
                                     for cell in row.cells] for row in Table(element, document).rows))
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
    """A table: a line per row, cells separated by " | " (merged cells, repeated by Word, once).

    Each cell is a list of its paragraphs as (part of the file, text)."""
    builder.paragraph_break()
    for cells in rows:
        builder.line_break()
        previous = None
        for cell in cells:
            shown = _clean(" ".join(text for _, text in cell))
            if not shown or shown == previous:
                continue
            if previous is not None:
                builder.add(" | ")
            previous = shown
            for number, (part, text) in enumerate(cell):
                builder.part(part, text)
                if number:
                    builder.space()
                builder.add(_clean(text), 0)
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
        paragraphs = 0
        while pending:  # depth-first, in document order, without recursion
            element = pending.pop()
            qname = getattr(element, "qname", None)
            if qname in ((TEXTNS, "h"), (TEXTNS, "p")):
                paragraphs += 1
                source = teletype.extractText(element)
                builder.part(f"paragraph {paragraphs}", source)
            if qname == (TEXTNS, "h"):
                builder.heading(source, 0)
                first_heading = first_heading or _clean(source) or None
            elif qname == (TEXTNS, "p"):
                if text := _clean(source):
                    builder.paragraph_break()
                    builder.add(text, 0)
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
        for number, slide in enumerate(presentation.slides, 1):
            builder.new_page()
            title_shape = slide.shapes.title
            for index, shape in enumerate(slide.shapes, 1):
                if title_shape is not None and shape.shape_id == title_shape.shape_id:
                    builder.part(f"slide {number}, shape {index}", shape.text_frame.text)
                    builder.heading(shape.text_frame.text, 0)
                    first_title = first_title or _clean(shape.text_frame.text) or None
            for index, shape in enumerate(slide.shapes, 1):
                if title_shape is not None and shape.shape_id == title_shape.shape_id:
                    continue
                where = f"slide {number}, shape {index}"
                if shape.has_text_frame:
                    for line, paragraph in enumerate(shape.text_frame.paragraphs, 1):
                        source = "".join(run.text for run in paragraph.runs)
                        if text := _clean(source):
                            builder.part(f"{where}, paragraph {line}", source)
                            builder.paragraph_break()
                            builder.add(text, 0)
                elif getattr(shape, "has_table", False) and shape.has_table:
                    _add_rows(builder, ([[(f"{where}, row {r}, cell {c}", cell.text)]
                                         for c, cell in enumerate(row.cells, 1)]
                                        for r, row in enumerate(shape.table.rows, 1)))
            if slide.has_notes_slide and _clean(notes := slide.notes_slide.notes_text_frame.text):
                builder.part(f"slide {number}, notes", notes)
                builder.paragraph_break()
                builder.add(_clean(notes), 0)
        title = _clean(presentation.core_properties.title or "")
    except LoadError:
        raise
    except Exception as e:  # python-pptx raises many types on damaged parts
        raise LoadError(f"malformed PowerPoint file: {type(e).__name__}: {str(e)[:200]}") from None
    return builder.build(), title or first_title
