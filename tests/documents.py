"""Real documents of every supported kind, written with the tools people make them with.

Each builder takes a title and a list of blocks — ``("h", text)`` for a heading, ``("p", text)``
for a paragraph — so a test (or bench/extraction_bench.py) knows exactly which sentences the
file holds and can check what a loader recovers.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

Blocks = list[tuple[str, str]]


def write_docx(path: Path, title: str, blocks: Blocks, *, table: list[list[str]] | None = None) -> Path:
    import docx

    document = docx.Document()
    document.core_properties.title = title
    document.add_heading(title, level=0)
    for kind, text in blocks:
        if kind == "h":
            document.add_heading(text, level=1)
        else:
            document.add_paragraph(text)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for row, cells in zip(grid.rows, table):
            for cell, text in zip(row.cells, cells):
                cell.text = text
    document.sections[0].header.paragraphs[0].text = "CONFIDENTIAL RUNNING HEADER"
    document.save(str(path))
    return path


def write_epub(path: Path, title: str, blocks: Blocks, *, chapters: int = 2) -> Path:
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("test-book")
    book.set_title(title)
    book.set_language("en")
    parts: list[Blocks] = [[] for _ in range(chapters)]
    for number, block in enumerate(blocks):
        parts[min(chapters - 1, number * chapters // max(1, len(blocks)))].append(block)
    items = []
    for number, part in enumerate(parts, 1):
        chapter = epub.EpubHtml(title=f"Chapter {number}", file_name=f"chapter{number}.xhtml", lang="en")
        body = "".join(f"<h2>{_escape(text)}</h2>" if kind == "h" else f"<p>{_escape(text)}</p>"
                       for kind, text in part)
        chapter.content = f"<html><head><title>Chapter {number}</title></head><body>{body}</body></html>"
        book.add_item(chapter)
        items.append(chapter)
    book.toc = items
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", *items]
    epub.write_epub(str(path), book)
    return path


def write_odt(path: Path, title: str, blocks: Blocks) -> Path:
    from odf import dc
    from odf.opendocument import OpenDocumentText
    from odf.text import H, P

    document = OpenDocumentText()
    document.meta.addElement(dc.Title(text=title))
    for kind, text in blocks:
        document.text.addElement(H(outlinelevel=1, text=text) if kind == "h" else P(text=text))
    document.save(str(path))
    return path


def write_pptx(path: Path, title: str, slides: list[tuple[str, list[str]]]) -> Path:
    import pptx

    presentation = pptx.Presentation()
    presentation.core_properties.title = title
    for slide_title, lines in slides:
        slide = presentation.slides.add_slide(presentation.slide_layouts[1])
        slide.shapes.title.text = slide_title
        body = slide.placeholders[1].text_frame
        body.text = lines[0]
        for line in lines[1:]:
            body.add_paragraph().text = line
    presentation.save(str(path))
    return path


def write_typeset_pdf(path: Path, title: str, blocks: Blocks, *, columns: int = 1,
                      header: str = "Journal of Tests · Volume 7", hyphenate: bool = True) -> Path:
    """A PDF laid out like a printed article: justified-width lines broken by us (long words
    hyphenated at line ends), a running header, "Page N" footers, one or two columns."""
    from fpdf import FPDF

    class Article(FPDF):
        def header(self):
            self.set_font("helvetica", size=8)
            self.text(self.l_margin, 10, header)

        def footer(self):
            self.set_font("helvetica", size=8)
            self.text(self.w / 2 - 6, self.h - 8, f"Page {self.page_no()}")

    pdf = Article(format="A4")
    pdf.set_title(title)
    pdf.set_auto_page_break(False)
    gap, top, bottom, line_height = 8, 20, pdf.h - 18, 5
    width = (pdf.w - pdf.l_margin - pdf.r_margin - gap * (columns - 1)) / columns
    pdf.add_page()
    column, y = 0, top

    def place(line: str, size: float, style: str = "") -> None:
        nonlocal column, y
        if y > bottom:
            column += 1
            if column == columns:
                pdf.add_page()
                column = 0
            y = top
        pdf.set_font("helvetica", style=style, size=size)
        pdf.text(pdf.l_margin + column * (width + gap), y, line)
        y += line_height

    for kind, text in [("h", title), *blocks]:
        size, style = (13, "B") if kind == "h" else (10, "")
        pdf.set_font("helvetica", style=style, size=size)
        for line in _break_lines(pdf, text, width, hyphenate and kind == "p"):
            place(line, size, style)
        y += line_height * 0.6
    pdf.output(str(path))
    return path


def _break_lines(pdf, text: str, width: float, hyphenate: bool) -> list[str]:
    lines, current = [], ""
    for word in text.split():
        candidate = f"{current} {word}".strip()
        if pdf.get_string_width(candidate) <= width:
            current = candidate
            continue
        if hyphenate and word.isalpha() and len(word) >= 8:
            for cut in range(len(word) - 3, 2, -1):
                head = f"{current} {word[:cut]}-".strip()
                if pdf.get_string_width(head) <= width:
                    lines.append(head)
                    current = word[cut:]
                    break
            else:
                lines.append(current)
                current = word
            continue
        lines.append(current)
        current = word
    if current:
        lines.append(current)
    return [line for line in lines if line]


# ---------------------------------------------------------------- web pages

BOILERPLATE = {
    "nav": "Home World Business Sport Science Subscribe Log in",
    "cookie": "We use cookies to improve your experience. Accept all cookies or manage your preferences.",
    "aside": "Related stories Wind farm plans stalled Ten things to know about batteries",
    "share": "Share this article on Facebook Twitter LinkedIn Email",
    "newsletter": "Sign up for our daily newsletter and never miss a story",
    "footer": "© 2024 The River Times. All rights reserved. Privacy policy Terms of use Contact us",
}


def news_page(title: str, site: str, blocks: Blocks, *, layout: int = 0) -> str:
    """A web page around an article: navigation, cookie banner, share buttons, related links,
    newsletter box and footer, in one of three common layouts (semantic tags, class-named divs,
    a table-free blog template)."""
    article = "".join(f"<h2>{_escape(text)}</h2>" if kind == "h" else f"<p>{_escape(text)}</p>"
                      for kind, text in blocks)
    links = "".join(f'<li><a href="/{word.lower()}">{word}</a></li>' for word in BOILERPLATE["nav"].split())
    cookie = f'<div id="cookie-consent" class="banner"><p>{BOILERPLATE["cookie"]}</p><button>Accept</button></div>'
    share = f'<div class="share-buttons"><span>{BOILERPLATE["share"]}</span></div>'
    related = f'<h3>{BOILERPLATE["aside"].split(" Wind")[0]}</h3><ul><li><a href="/a">Wind farm plans stalled</a></li><li><a href="/b">Ten things to know about batteries</a></li></ul>'
    newsletter = f'<div class="newsletter-signup"><p>{BOILERPLATE["newsletter"]}</p><input type="email"></div>'
    footer = f'<p>{BOILERPLATE["footer"]}</p>'
    head = (f'<head><meta charset="utf-8"><title>{_escape(title)} | {site}</title>'
            f'<meta property="og:site_name" content="{site}"><script>var analytics = {{id: 42}};</script>'
            f'<style>.banner {{ position: fixed; }}</style></head>')
    if layout == 0:
        body = (f"{cookie}<header><nav><ul>{links}</ul></nav></header><main><article><h1>{_escape(title)}</h1>"
                f"{share}{article}</article><aside>{related}{newsletter}</aside></main><footer>{footer}</footer>")
    elif layout == 1:
        body = (f'<div class="menu"><ul>{links}</ul></div>{cookie}<div class="content"><div class="post">'
                f'<h1>{_escape(title)}</h1>{article}{share}</div><div class="sidebar">{related}{newsletter}</div></div>'
                f'<div class="site-footer">{footer}</div>')
    else:
        body = (f'<div id="page"><div id="top-nav"><ul>{links}</ul></div><div id="main"><h1>{_escape(title)}</h1>'
                f'<div class="entry">{article}</div><div class="related-posts">{related}</div>{newsletter}</div>'
                f'{cookie}<div id="footer">{footer}</div></div>')
    return f"<!DOCTYPE html><html lang=\"en\">{head}<body>{body}</body></html>"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# ---------------------------------------------------------------- hostile containers


def zip_bomb_like(path: Path, member: str, inflated_mb: int = 64) -> Path:
    """A zip container whose one part inflates to hundreds of megabytes (compressed: kilobytes)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open(member, "w", force_zip64=True) as part:
            block = b" " * (1 << 20)
            for _ in range(inflated_mb):
                part.write(block)
    path.write_bytes(buffer.getvalue())
    return path


_TEXT_NS = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"


def file_places(path: Path) -> dict[str, str]:
    """Every place of ``path`` a source map may name, with its text as read from the file."""
    suffix = path.suffix
    if suffix in (".txt", ".md", ".html"):
        return {"": path.read_text(encoding="utf-8")}
    if suffix == ".pdf":
        import pypdf

        return {f"page {n}": page.extract_text() for n, page in enumerate(pypdf.PdfReader(path).pages, 1)}
    if suffix == ".docx":
        import docx
        from docx.oxml.ns import qn
        from docx.text.paragraph import Paragraph

        document = docx.Document(str(path))
        return {f"paragraph {n}": Paragraph(p, document).text
                for n, p in enumerate(document.element.body.iter(qn("w:p")), 1)}
    if suffix == ".epub":
        with zipfile.ZipFile(path) as book:
            return {name: book.read(name).decode("utf-8") for name in book.namelist()
                    if name.endswith(".xhtml")}
    if suffix == ".odt":
        from lxml import etree

        with zipfile.ZipFile(path) as document:
            tree = etree.fromstring(document.read("content.xml"))
        return {f"paragraph {n}": "".join(element.itertext()) for n, element in enumerate(
            tree.iter(f"{{{_TEXT_NS}}}p", f"{{{_TEXT_NS}}}h"), 1)}
    if suffix == ".pptx":
        import pptx

        texts = {}
        for s, slide in enumerate(pptx.Presentation(str(path)).slides, 1):
            for k, shape in enumerate(slide.shapes, 1):
                if shape.has_text_frame:
                    texts[f"slide {s}, shape {k}"] = shape.text_frame.text
                    for p, paragraph in enumerate(shape.text_frame.paragraphs, 1):
                        texts[f"slide {s}, shape {k}, paragraph {p}"] = "".join(r.text for r in paragraph.runs)
        return texts
    raise AssertionError(suffix)


def write_raw_pdf(path: Path, objects: list[bytes]) -> Path:
    """A PDF of exactly these objects (numbered from 1, the first the catalog) with a correct
    cross-reference table: for hostile files no PDF library would write."""
    out, offsets = bytearray(b"%PDF-1.7\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    path.write_bytes(bytes(out))
    return path
