"""A PDF page drawn for the document view, with the quote's words boxed where the page shows them."""

from __future__ import annotations

import base64
import io

import pypdfium2
import pytest
from PIL import Image

from rag.loaders import load_document
from rag.web_pdf import page_image, quote_pages, source_place
from tests.conftest import write_pdf
from tests.documents import write_docx, write_pptx

QUOTE = "The barn owl hunts voles at night by sound alone, even in complete darkness."


@pytest.fixture
def survey(tmp_path):
    return write_pdf(tmp_path / "survey.pdf", [
        "Owl survey\n\nThe survey counted birds in the northern woods over three winters.",
        f"Night hunting. {QUOTE} Its facial disc funnels faint rustling to its ears.",
    ])


def test_the_quote_is_boxed_over_its_words_on_the_cited_page(survey):
    shown = page_image(survey, 2, QUOTE.replace(" ", "\n", 3))  # spacing differs between extractors
    assert (shown.page, shown.pages) == (2, 2)
    image = Image.open(io.BytesIO(base64.b64decode(shown.png_base64))).convert("L")
    assert shown.boxes, "the quote was not located on the page"
    # Every box holds ink (the quoted words) and the first starts where "The barn owl" starts.
    for left, top, width, height in shown.boxes:
        box = image.crop((int(left * image.width), int(top * image.height),
                          int((left + width) * image.width), int((top + height) * image.height)))
        assert box.getextrema()[0] < 100
    document = pypdfium2.PdfDocument(str(survey))
    text_page = document[1].get_textpage()
    start = text_page.get_text_range().index("The barn owl")
    char_left = text_page.get_charbox(start)[0] / document[1].get_size()[0]
    assert abs(shown.boxes[0][0] - char_left) < 0.01
    document.close()


def test_a_quote_not_on_the_page_gives_the_page_without_boxes(survey):
    assert page_image(survey, 1, QUOTE).boxes == ()
    with pytest.raises(ValueError, match="has no page 3"):
        page_image(survey, 3, QUOTE)


# ---------------------------------------------------------------- the source map at display


def test_a_repeated_phrase_is_boxed_where_it_was_quoted(tmp_path):
    path = write_pdf(tmp_path / "twice.pdf", [
        f"{QUOTE}\n\nThe wardens wrote a long note in between about the weather.\n\n{QUOTE}",
    ])
    document = load_document(path, "twice.pdf")
    second = document.text.rindex(QUOTE)
    (on_page,) = quote_pages(document, second, second + len(QUOTE))
    assert (on_page.page, on_page.text, on_page.occurrence) == (1, QUOTE, 1)
    first_box = page_image(path, 1, QUOTE).boxes[0]
    second_box = page_image(path, 1, on_page.text, on_page.occurrence).boxes[0]
    assert second_box[1] > first_box[1] + 0.05  # lower down the page


def test_a_quote_across_a_page_break_is_boxed_on_each_page(tmp_path):
    path = write_pdf(tmp_path / "split.pdf", [
        "Owl survey\n\nThe barn owl hunts voles at night by sound alone, even in",
        "complete darkness, and its facial disc funnels faint rustling to its ears.",
    ])
    document = load_document(path, "split.pdf")
    start = document.text.index("The barn owl")
    end = document.text.index("complete darkness") + len("complete darkness")
    first, second = quote_pages(document, start, end)
    assert (first.page, second.page) == (1, 2)
    assert first.text.endswith("even in") and second.text == "complete darkness"
    assert page_image(path, 1, first.text).boxes and page_image(path, 2, second.text).boxes
    assert source_place(document, start, end) == "page 1 to page 2"


def test_every_format_names_where_the_quote_is_in_the_file(tmp_path):
    notes = tmp_path / "notes.md"
    notes.write_text("# Owls\n\nThe barn owl hunts voles\nat night by sound alone.\n\nIt roosts in barns.\n",
                     encoding="utf-8")
    document = load_document(notes, "notes.md")
    start = document.text.index("The barn owl")
    assert source_place(document, start, start + 40, notes) == "lines 3–4"
    notes.write_text("# Owls\n\nChanged since it was indexed.\n", encoding="utf-8")
    assert source_place(document, start, start + 40, notes) is None  # no line numbers of another version
    word = write_docx(tmp_path / "owls.docx", "Owls", [("h", "Hunting"), ("p", QUOTE)])
    document = load_document(word, "owls.docx")
    start = document.text.index(QUOTE)
    assert source_place(document, start, start + len(QUOTE)) == "paragraph 3"  # title, heading, then it
    slides = write_pptx(tmp_path / "owls.pptx", "Owls", [("Hunting", ["Voles at dusk.", QUOTE])])
    document = load_document(slides, "owls.pptx")
    start = document.text.index(QUOTE)
    assert source_place(document, start, start + len(QUOTE)) == "slide 1"
