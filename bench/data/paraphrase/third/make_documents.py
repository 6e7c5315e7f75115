"""Writes the EPUB (ebooklib) and the PDF (fpdf2) of the third paraphrase set into corpus/.

    python bench/data/paraphrase/third/make_documents.py
"""

from pathlib import Path

from ebooklib import epub
from fpdf import FPDF

CORPUS = Path(__file__).resolve().parent / "corpus"

BOOK_TITLE = "The Keepers of Skerrow Rock"
CHAPTERS = [
    ("The tower", [
        "The light on Skerrow Rock was first lit on 12 March 1851. It was designed by the engineer "
        "Alan Dunmore, whose father had built lights along the Clyde.",
        "The tower is 41 metres tall and was built from granite quarried on the island of Mull. "
        "Three keepers lived on the rock at any time, working four weeks on and two weeks ashore.",
    ]),
    ("The last keepers", [
        "The light was automated in 1988, and the last keeper, Hector MacRae, left the rock on 30 June "
        "of that year. Its beam can be seen from 23 nautical miles away.",
        "In 1899 a storm smashed the lantern glass, and the keepers kept the lamp burning with a ship's "
        "lantern for eleven nights. The rock's only supply boat came from Oban once a fortnight, "
        "weather allowing.",
        "Today the tower is owned by a trust that runs boat trips from Oban in summer.",
    ]),
]

REPORT_TITLE = "Street lights and moths: study summary"
REPORT_PAGES = [
    "Street lights and moths: study summary\n\nResearchers at the University of Leiden studied moths at "
    "24 sites in the Dutch province of Drenthe between 2019 and 2023. Half the sites were lit by LED "
    "street lamps; the other half were kept dark.\n\nCaterpillar numbers were 47 percent lower under "
    "the lamps than at the dark sites. The effect was strongest under white light; amber lamps reduced "
    "it by about half. The team counted 18,400 caterpillars in total.\n\nThe study was led by the "
    "ecologist Marit de Boer and funded by the Dutch Research Council.",
    "Recommendations\n\nThe authors recommend dimming street lights after midnight, which the town of "
    "Emmen began doing in 2022. Moths pollinate many wild flowers at night, so their decline may hurt "
    "plants as well.\n\nThe results were published in the journal Insect Conservation in May 2024.",
]


def write_book() -> None:
    book = epub.EpubBook()
    book.set_identifier("skerrow-rock-keepers")
    book.set_title(BOOK_TITLE)
    book.set_language("en")
    chapters = []
    for number, (heading, paragraphs) in enumerate(CHAPTERS, 1):
        chapter = epub.EpubHtml(title=heading, file_name=f"chapter{number}.xhtml", lang="en")
        chapter.content = f"<h1>{heading}</h1>" + "".join(f"<p>{p}</p>" for p in paragraphs)
        book.add_item(chapter)
        chapters.append(chapter)
    book.toc = chapters
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", *chapters]
    epub.write_epub(str(CORPUS / "skerrow-rock-keepers.epub"), book)


def write_report() -> None:
    pdf = FPDF()
    pdf.set_title(REPORT_TITLE)
    pdf.set_font("helvetica", size=11)
    for text in REPORT_PAGES:
        pdf.add_page()
        pdf.multi_cell(0, 7, text)
    pdf.output(str(CORPUS / "street-lights-moths.pdf"))


if __name__ == "__main__":
    write_book()
    write_report()
