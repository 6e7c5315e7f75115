"""Every format read as a person reads it: real files made with the tools people use."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from rag.chunking import split_sentences
from rag.loaders import load_document
from rag.types import LoadError
from tests.documents import (
    BOILERPLATE, news_page, write_docx, write_epub, write_odt, write_pptx, write_typeset_pdf,
    zip_bomb_like,
)

PARAGRAPHS = [
    "The national energy agency said on Monday that 137 mini-grids across fourteen under-served "
    "counties now supply electricity to schools and clinics. The programme began in 2019 with a "
    "loan from a development bank, and its administrators published quarterly reports.",
    "Installation costs fell by a third over five years, according to the agency's annual report. "
    "Officials expect another sixty installations by the end of next year, mostly in mountainous "
    "districts where transmission infrastructure is uneconomical.",
    "Critics say maintenance budgets remain too small and that several installations stood idle "
    "for months. Independent engineers recommended standardised replacement components and "
    "regional workshops staffed by trained technicians.",
]
BLOCKS = [("h", "Background"), ("p", PARAGRAPHS[0]), ("h", "Costs"), ("p", PARAGRAPHS[1]),
          ("h", "Criticism"), ("p", PARAGRAPHS[2])]
SENTENCES = [p[a:b] for p in PARAGRAPHS for a, b in split_sentences(p)]


def load(path: Path):
    return load_document(path, path.name)


def assert_every_sentence_intact(text: str) -> None:
    missing = [s for s in SENTENCES if s not in text]
    assert missing == []


# ---------------------------------------------------------------- office formats and e-books


def test_docx_has_its_paragraphs_headings_table_and_title_but_no_running_header(tmp_path):
    doc = load(write_docx(tmp_path / "report.docx", "Mini-grid report", BLOCKS,
                          table=[["County", "Sites"], ["North", "12"]]))
    assert doc.title == "Mini-grid report"
    assert_every_sentence_intact(doc.text)
    assert "County | Sites\nNorth | 12" in doc.text
    assert "CONFIDENTIAL" not in doc.text
    assert [heading for _, heading in doc.sections] == ["Mini-grid report", "Background", "Costs", "Criticism"]
    assert doc.section_at(doc.text.index("Installation costs")) == "Costs"


def test_odt_paragraphs_headings_and_title(tmp_path):
    doc = load(write_odt(tmp_path / "notes.odt", "Field notes", BLOCKS))
    assert doc.title == "Field notes"
    assert_every_sentence_intact(doc.text)
    assert doc.section_at(doc.text.index("Critics say")) == "Criticism"


def test_pptx_slides_are_pages_with_their_titles_as_sections(tmp_path):
    doc = load(write_pptx(tmp_path / "deck.pptx", "Quarterly review",
                          [("Results", ["Revenue grew by nine percent.", "Costs were flat."]),
                           ("Next steps", ["Open two more depots."])]))
    assert doc.title == "Quarterly review"
    assert doc.text == ("Results\n\nRevenue grew by nine percent.\n\nCosts were flat.\n\n"
                        "Next steps\n\nOpen two more depots.")
    assert doc.page_at(doc.text.index("Open two")) == 2
    assert doc.section_at(doc.text.index("Costs were")) == "Results"


def test_epub_chapters_in_reading_order_without_the_navigation(tmp_path):
    doc = load(write_epub(tmp_path / "book.epub", "The Grid Book", BLOCKS, chapters=3))
    assert doc.title == "The Grid Book"
    assert_every_sentence_intact(doc.text)
    assert doc.text.index("Background") < doc.text.index("Costs") < doc.text.index("Criticism")
    assert "Chapter 1" not in doc.text  # the table of contents is not content
    assert [heading for _, heading in doc.sections] == ["Background", "Costs", "Criticism"]


@pytest.mark.parametrize("suffix, member", [(".docx", "word/document.xml"), (".epub", "OEBPS/text.xhtml"),
                                            (".odt", "content.xml"), (".pptx", "ppt/slides/slide1.xml")])
def test_zip_bombs_are_refused_before_unpacking(tmp_path, suffix, member):
    with pytest.raises(LoadError, match="zip bomb"):
        load(zip_bomb_like(tmp_path / f"bomb{suffix}", member))


def test_password_protected_word_file_says_what_to_do(tmp_path):
    path = tmp_path / "locked.docx"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 2048)
    with pytest.raises(LoadError, match="password-protected or old-format Word file; remove the password"):
        load(path)


@pytest.mark.parametrize("name, advice", [("memo.doc", "save it as .docx or PDF"),
                                          ("scan.png", "run OCR"), ("novel.mobi", "convert the e-book to .epub")])
def test_unsupported_types_say_what_to_do(tmp_path, name, advice):
    path = tmp_path / name
    path.write_bytes(b"data")
    with pytest.raises(LoadError, match=advice):
        load(path)


# ---------------------------------------------------------------- PDF


@pytest.mark.parametrize("columns", [1, 2])
def test_typeset_pdf_reads_as_paragraphs_without_running_headers(tmp_path, columns):
    blocks = BLOCKS * 6  # several pages
    doc = load(write_typeset_pdf(tmp_path / "article.pdf", "Mini-grids", blocks, columns=columns))
    assert len(doc.page_starts) >= 2
    assert_every_sentence_intact(doc.text)
    assert "Journal of Tests" not in doc.text and "Page 1" not in doc.text and "Page 2" not in doc.text
    assert "uneconomical" in doc.text and "uneco-" not in doc.text  # hyphenation undone
    for start in doc.page_starts[1:]:  # page boundaries kept: each page starts where its text does
        assert doc.page_at(start) == doc.page_at(start - 1) + 1


def test_a_one_page_pdf_keeps_its_title_line_apart_from_the_paragraph(make_pdf):
    """With only a title and a paragraph, the title line is not mistaken for a full line."""
    body = "Hekla erupted in the year 1104 and covered half the island in ash. Monks called it hell."
    doc = load(make_pdf("volcano.pdf", [f"Volcanoes of Iceland\n{body}"]))
    assert doc.title == "Volcanoes of Iceland"
    assert doc.text == f"Volcanoes of Iceland\n\n{body}"


def test_pdf_keeps_a_hyphen_the_document_writes_elsewhere(tmp_path):
    from fpdf import FPDF

    path = tmp_path / "compound.pdf"
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=11)
    for y, line in enumerate(["A well-known result stays well-known when a line ends in well-",
                              "known and the next line goes on. Our state-of-the-art inter-",
                              "national report closes here."]):
        pdf.text(20, 20 + 6 * y, line)
    pdf.output(str(path))
    doc = load(path)
    assert "ends in well-known and the next line goes on." in doc.text
    assert "inter-national" not in doc.text and "international report closes here." in doc.text


# ---------------------------------------------------------------- Markdown


def test_markdown_is_rendered_and_quotes_lead_back_to_the_file(tmp_path):
    source = ("# Solar **mini-grids**\n\nThe agency said that 137 mini-grids across\n14 under-served "
              "counties now supply [power](https://example.org/power) to\nschools and clinics.\n\n"
              "## Costs\n\n- Installation costs fell by *a third*.\n- Officials expect `60` more.\n")
    path = tmp_path / "notes.md"
    path.write_text(source, encoding="utf-8")
    doc = load(path)
    assert doc.title == "Solar mini-grids"
    assert doc.text == (
        "Solar mini-grids\n\nThe agency said that 137 mini-grids across 14 under-served counties now "
        "supply power to schools and clinics.\n\nCosts\n\nInstallation costs fell by a third.\n"
        "Officials expect 60 more.")
    for quote in ("The agency said", "14 under-served counties", "schools and clinics.", "Officials expect"):
        start = doc.text.index(quote)
        at = doc.source_offset(start)
        assert source[at:at + len(quote)] == quote


def test_markdown_front_matter_gives_the_title_and_is_not_text(tmp_path):
    path = tmp_path / "post.md"
    path.write_text("---\ntitle: \"Front title\"\ndate: 2024-01-01\n---\n\nBody text here.\n", encoding="utf-8")
    doc = load(path)
    assert doc.title == "Front title" and doc.text == "Body text here."


# ---------------------------------------------------------------- HTML


@pytest.mark.parametrize("layout", [0, 1, 2])
def test_html_keeps_the_article_and_drops_the_boilerplate(tmp_path, layout):
    path = tmp_path / "page.html"
    path.write_text(news_page("Solar mini-grids reach 137 villages", "The River Times", BLOCKS, layout=layout),
                    encoding="utf-8")
    doc = load(path)
    assert doc.title == "Solar mini-grids reach 137 villages"
    assert_every_sentence_intact(doc.text)
    for block in BOILERPLATE.values():
        assert block not in doc.text
    assert "HomeWorld" not in doc.text and "analytics" not in doc.text
    source = path.read_text(encoding="utf-8")
    start = doc.text.index("Installation costs")
    at = doc.source_offset(start)
    assert source[at:at + 18] == "Installation costs"


@pytest.mark.parametrize("title, expected", [
    ("Solar mini-grids | The River Times", "Solar mini-grids"),
    ("The River Times - Solar mini-grids", "Solar mini-grids"),
    ("Solar mini-grids — Opinion — The River Times", "Solar mini-grids — Opinion"),
    ("Plain title", "Plain title"),
    ("Rivers - a history", "Rivers - a history"),  # no site name to drop: kept whole
])
def test_html_title_loses_the_site_name(tmp_path, title, expected):
    path = tmp_path / "t.html"
    path.write_text(f'<title>{title}</title><meta property="og:site_name" content="The River Times">'
                    f"<p>Some body text for the page.</p>", encoding="utf-8")
    assert load(path).title == expected


# ---------------------------------------------------------------- encodings and Unicode


@pytest.mark.parametrize("encoding, text", [
    ("cp1251", "Привет, мир! Это проверка кодировки текста, написанного в старой кодировке Windows."),
    ("gbk", "中文测试文本。这是一个用旧编码保存的简单句子，用来检查读取是否正确。"),
    ("shift_jis", "日本語のテキストです。これは古いエンコーディングで保存された簡単な文です。"),
    ("cp1253", "Η Αθήνα είναι η πρωτεύουσα της Ελλάδας και μία από τις αρχαιότερες πόλεις του κόσμου."),
])
def test_legacy_encodings_read_correctly(tmp_path, encoding, text):
    path = tmp_path / "legacy.txt"
    path.write_bytes(text.encode(encoding))
    assert load(path).text == text


def test_an_encoding_that_cannot_be_told_is_refused_with_a_reason(tmp_path):
    """Files pasted together from several legacy encodings: no one guess reads them."""
    words = [("cp1251", "Привет"), ("shift_jis", "日本語"), ("gbk", "中文"), ("iso8859_7", "Αθήνα"),
             ("cp1251", "проверка"), ("shift_jis", "テキスト"), ("gbk", "测试"), ("iso8859_7", "πόλη")] * 3
    path = tmp_path / "pasted.txt"
    path.write_bytes(b" ".join(word.encode(encoding) for encoding, word in words))
    with pytest.raises(LoadError, match=r"cannot tell which text encoding .*; save it as UTF-8"):
        load(path)


def test_text_is_nfc_at_load(tmp_path):
    path = tmp_path / "nfd.md"
    path.write_text(unicodedata.normalize("NFD", "# Café crème\n\nNaïve façade."), encoding="utf-8")
    doc = load(path)
    assert doc.text == "Café crème\n\nNaïve façade." and unicodedata.is_normalized("NFC", doc.text)
    assert doc.title == "Café crème" and unicodedata.is_normalized("NFC", doc.title)
