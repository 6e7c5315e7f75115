"""Writes corpus/brennock-ferry-review.docx (python-docx), the Word document of the second set.

    python bench/data/paraphrase/second/make_docx.py
"""

from pathlib import Path

from docx import Document

TITLE = "Brennock Island Ferry: Service Review 2025"
SECTIONS = [
    ("History", [
        "The ferry between Portmaddy and Brennock Island has run since 1962, when the county "
        "council bought its first vessel, the MV Saint Colm, from a Scottish operator.",
        "Today two boats share the route: the MV Aran Light, built in Gdańsk in 2011, and the "
        "smaller MV Corrib, which carries foot passengers only.",
        "In calm weather the crossing takes 25 minutes and covers 7.4 kilometres.",
    ]),
    ("The year in numbers", [
        "In 2025 the service carried 212,000 passengers and 31,500 cars, the busiest year on record.",
        "Sailings were cancelled on 46 days, almost all of them between November and February, "
        "when Atlantic storms close the harbour at Portmaddy.",
        "An adult return ticket costs 14 euro; island residents travel free under a scheme agreed in 2008.",
        "Fuel was the largest single cost of the year at 1.1 million euro.",
        "The service employs 38 people, 22 of whom live on the island.",
    ]),
    ("Contract and future", [
        "The operator, Brennock Marine Teoranta, holds a ten-year contract with the council that ends in 2029.",
        "Its managing director, Siobhán Ní Fhaoláin, told the review that a third vessel would be "
        "needed if visitor numbers keep growing.",
        "The council has asked the Department of Transport for 9 million euro towards a "
        "battery-electric ferry.",
        "Engineers estimate that the new boat would cut the service's diesel use by 80 percent.",
    ]),
]

if __name__ == "__main__":
    document = Document()
    document.core_properties.title = TITLE
    document.add_heading(TITLE, level=1)
    for heading, paragraphs in SECTIONS:
        document.add_heading(heading, level=2)
        for text in paragraphs:
            document.add_paragraph(text)
    document.save(str(Path(__file__).resolve().parent / "corpus" / "brennock-ferry-review.docx"))
