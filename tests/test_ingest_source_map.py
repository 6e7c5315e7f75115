"""Every quote leads back to its words in the original file, in every format, through the index.

The text of each place a source map names is read here again straight from the file, with the
library people would use (pypdf for a PDF page, python-docx for a Word paragraph, the zip member
for an EPUB chapter, the content XML for OpenDocument, python-pptx for a slide), never through
the loaders.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rag.guard import GuardedLoader
from rag.types import Document, SourceMap
from tests.documents import (
    file_places, news_page, write_docx, write_epub, write_odt, write_pptx, write_typeset_pdf,
)
from tests.test_ingest import BLOCKS, PARAGRAPHS, SENTENCES

SLIDES = [("Background", [SENTENCES[0], SENTENCES[1]]), ("Costs", [SENTENCES[3], SENTENCES[4]])]


def _markdown(path: Path) -> Path:
    wrapped = "\n".join(re.sub(r"(.{1,70})(?: |$)", r"\1\n", PARAGRAPHS[0]).splitlines())
    path.write_text(f"# Solar **mini-grids**\n\n{wrapped}\n\n## Costs\n\n*{PARAGRAPHS[1]}*\n", encoding="utf-8")
    return path


def _text(path: Path) -> Path:
    path.write_text("Solar mini-grids\n\n" + "\n\n".join(PARAGRAPHS) + "\n", encoding="utf-8")
    return path


def _html(path: Path) -> Path:
    path.write_text(news_page("Solar mini-grids reach 137 villages", "The River Times", BLOCKS), encoding="utf-8")
    return path


WRITERS = {
    "notes.txt": _text,
    "notes.md": _markdown,
    "page.html": _html,
    "article.pdf": lambda path: write_typeset_pdf(path, "Solar mini-grids", BLOCKS, columns=2),
    "report.docx": lambda path: write_docx(path, "Solar mini-grids", BLOCKS,
                                           table=[["Year", "Sites"], ["2023", "137 mini-grids in use"]]),
    "book.epub": lambda path: write_epub(path, "Solar mini-grids", BLOCKS),
    "report.odt": lambda path: write_odt(path, "Solar mini-grids", BLOCKS),
    "slides.pptx": lambda path: write_pptx(path, "Solar mini-grids", SLIDES),
}


def assert_quote_leads_to_the_file(document: Document, start: int, end: int, places: dict[str, str]) -> None:
    """Each stretch of the quote the map places is exactly those characters of the file, and
    together they cover every word character of the quote."""
    spans = document.source_map.spans(start, end)
    assert spans, f"{document.doc_id}: {document.text[start:end]!r} has no place in the file"
    for part, source_start, source_end, text_start, text_end in spans:
        assert places[part][source_start:source_end] == document.text[text_start:text_end]
    covered = set()
    for *_, text_start, text_end in spans:
        covered.update(range(text_start, text_end))
    missing = [document.text[i] for i in range(start, end) if document.text[i].isalnum() and i not in covered]
    assert missing == [], f"{document.doc_id}: {document.text[start:end]!r} not placed: {''.join(missing)!r}"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("source-map-corpus")
    for name, write in WRITERS.items():
        write(folder / name)
    return folder


@pytest.mark.parametrize("name", list(WRITERS))
def test_every_sentence_leads_back_to_its_words_in_the_file(corpus, name):
    path = corpus / name
    with GuardedLoader(60, 2048) as reader:  # the sandboxed child, its JSON reply included
        document = reader.load(path, name)
    places = file_places(path)
    quotes = [s for s in SENTENCES if s in document.text]
    assert len(quotes) >= 4
    for quote in quotes:
        start = document.text.index(quote)
        assert_quote_leads_to_the_file(document, start, start + len(quote), places)


def test_a_pdf_quote_across_a_page_break_names_both_pages(tmp_path):
    long_text = [("p", " ".join(PARAGRAPHS * 14))]
    path = write_typeset_pdf(tmp_path / "long.pdf", "Long", long_text, columns=1)
    with GuardedLoader(60, 2048) as reader:
        document = reader.load(path, "long.pdf")
    assert len(document.page_starts) >= 2
    boundary = document.page_starts[1]
    start, end = boundary - 40, boundary + 40
    pages = {part for part, *_ in document.source_map.spans(start, end)}
    assert pages == {"page 1", "page 2"}
    assert_quote_leads_to_the_file(document, start, end, file_places(path))


def test_the_source_map_round_trips_as_json():
    stored = SourceMap(("", "page 2"), ((0, 5, 0, 10), (6, 3, 1, 0)))
    assert SourceMap.from_json(stored.to_json()) == stored
    assert SourceMap.from_json(None) == SourceMap()
    assert stored.locate(7) == ("page 2", 1) and stored.locate(5) is None


@pytest.mark.timeout(600)
def test_the_index_keeps_the_map_and_answers_quotes_that_lead_to_the_file(corpus, tmp_path):
    from rag import api

    index = tmp_path / "index"
    api.build_index(corpus, index)
    for name in WRITERS:
        document = api.document(name, index_dir=index)
        with GuardedLoader(60, 2048) as reader:
            assert document.source_map == reader.load(corpus / name, name).source_map
    answer = api.answer("How much did installation costs fall?", index_dir=index)
    assert answer.found and answer.citations
    for citation in answer.citations:
        document = api.document(citation.doc_id, index_dir=index)
        assert_quote_leads_to_the_file(document, citation.start, citation.end, file_places(corpus / citation.doc_id))


@pytest.mark.timeout(600)
def test_source_maps_survive_a_segment_merge(corpus, tmp_path, monkeypatch):
    import shutil

    from rag import api
    from rag.index import writer
    from rag.store import open_snapshot

    folder = tmp_path / "corpus"
    folder.mkdir()
    index = tmp_path / "index"
    monkeypatch.setattr(writer, "MERGE_FANOUT", 2)  # the second segment of a size class merges them
    shutil.copy(corpus / "report.docx", folder)
    api.build_index(folder, index)
    shutil.copy(corpus / "notes.md", folder)
    api.build_index(folder, index)
    snapshot = open_snapshot(index)
    assert len(snapshot.manifest.segments) == 1  # merged into one
    snapshot.close()
    for name in ("report.docx", "notes.md"):
        document = api.document(name, index_dir=index)
        start = document.text.index(SENTENCES[3])
        assert_quote_leads_to_the_file(document, start, start + len(SENTENCES[3]), file_places(folder / name))


def test_words_written_with_entities_or_markup_inside_are_still_placed(tmp_path):
    path = tmp_path / "entities.html"
    path.write_text("<html><body><p>The ABC O&amp;O station and the V&amp;A museum share a "
                    "<b>bold</b>er plan for the city&#8217;s riverside.</p></body></html>", encoding="utf-8")
    with GuardedLoader(60, 2048) as reader:
        document = reader.load(path, "entities.html")
    quote = "The ABC O&O station and the V&A museum share a bolder plan for the city’s riverside."
    start = document.text.index(quote)
    assert_quote_leads_to_the_file(document, start, start + len(quote), file_places(path))
