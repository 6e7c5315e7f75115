"""A PDF page drawn for the document view, with the quote's words boxed where the page shows them."""

from __future__ import annotations

import base64
import io

import pypdfium2
import pytest
from fpdf import FPDF
from PIL import Image

from rag.web_pdf import page_image

QUOTE = "The barn owl hunts voles at night by sound alone, even in complete darkness."


@pytest.fixture
def survey(tmp_path):
    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    pdf.add_page()
    pdf.multi_cell(0, 8, "Owl survey\n\nThe survey counted birds in the northern woods over three winters.")
    pdf.add_page()
    pdf.multi_cell(0, 8, f"Night hunting. {QUOTE} Its facial disc funnels faint rustling to its ears.")
    path = tmp_path / "survey.pdf"
    pdf.output(str(path))
    return path


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
