"""The sandbox's limits, each met by a real hostile input: a parser spinning on a tiny PDF is
killed for its CPU time, a text too long to chunk is skipped before it holds the build, zip bombs
in every container format are refused, and the child runs with its file-size and open-file
limits."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest

from rag import build_index, load_settings, retrieve
from rag.chunking import DocumentTooLong, chunk_document
from rag.guard import GuardedLoader
from rag.types import Document, LoadError
from tests.documents import write_raw_pdf, zip_bomb_like

GOOD = "Lighthouses\nThe Pharos of Alexandria guided ships into the harbour for centuries."


def spinning_pdf(path: Path, operators: int = 200_000) -> Path:
    """A 6 KB PDF whose one page is 200,000 tiny text operators: pypdf spends many minutes on it."""
    content = b"BT /F1 12 Tf 72 712 Td " + b"(a) Tj 0 -1 Td " * operators + b"ET\n"
    stream = zlib.compress(content, 9)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    return write_raw_pdf(path, objects)


@pytest.mark.timeout(180)
def test_a_parser_spinning_on_a_tiny_pdf_is_killed_for_its_cpu_time(tmp_path):
    pdf = spinning_pdf(tmp_path / "spin.pdf")
    (tmp_path / "good.txt").write_text(GOOD)
    with GuardedLoader(timeout_s=150, memory_limit_mb=2048, cpu_limit_s=2) as reader:
        with pytest.raises(LoadError, match=r"more than 2 s of CPU time \(limit: RAG_PARSE_TIMEOUT_S\)"):
            reader.load(pdf, "spin.pdf")
        assert reader.load(tmp_path / "good.txt", "good.txt").title == "Lighthouses"  # a new child


@pytest.mark.timeout(240)
def test_a_build_skips_the_spinning_pdf_with_its_reason_and_indexes_the_rest(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    spinning_pdf(corpus / "spin.pdf")
    (corpus / "good.txt").write_text(GOOD)
    stats = build_index(corpus, tmp_path / "index", settings=load_settings(parse_timeout_s=3))
    reason = dict(stats.skipped)["spin.pdf"]
    assert "3 s" in reason and "RAG_PARSE_TIMEOUT_S" in reason  # CPU or wall clock: whichever came first
    assert stats.added == 1


def test_the_child_runs_with_file_size_open_file_and_cpu_limits(tmp_path):
    (tmp_path / "good.txt").write_text(GOOD)
    with GuardedLoader(timeout_s=30, memory_limit_mb=1024) as reader:
        reader.load(tmp_path / "good.txt", "good.txt")
        limits = Path(f"/proc/{reader._worker.pid}/limits").read_text()
    rows = {line[:26].strip(): line[26:].split() for line in limits.splitlines()[1:]}
    assert rows["Max open files"][:2] == ["64", "64"]
    assert rows["Max file size"][:2] == [str(16 << 20)] * 2
    assert rows["Max address space"][0] == str(1024 << 20)
    assert rows["Max cpu time"][0] != "unlimited"


@pytest.mark.parametrize("name, member", [
    ("bomb.docx", "word/document.xml"), ("bomb.epub", "OEBPS/chapter.xhtml"),
    ("bomb.odt", "content.xml"), ("bomb.pptx", "ppt/slides/slide1.xml"),
])
def test_a_zip_bomb_in_every_container_format_is_refused_with_its_reason(tmp_path, name, member):
    path = zip_bomb_like(tmp_path / name, member)
    with GuardedLoader(timeout_s=60, memory_limit_mb=2048) as reader:
        with pytest.raises(LoadError, match="zip bomb"):
            reader.load(path, name)


def test_chunking_stops_at_the_token_limit_having_counted_no_further():
    counted = []

    def count_tokens(text: str) -> int:
        counted.append(len(text))
        return len(text.split())

    document = Document("long.txt", "Long", "A short sentence of words here. " * 10_000, "hash")
    with pytest.raises(DocumentTooLong, match=r"more than 1,000 tokens.*RAG_MAX_DOCUMENT_TOKENS"):
        chunk_document(document, max_tokens=64, overlap_sentences=1, count_tokens=count_tokens,
                       max_document_tokens=1_000)
    assert sum(counted) < 10_000  # about the limit's worth of text, not the document's 320,000 characters
    chunks = chunk_document(document, max_tokens=64, overlap_sentences=1, count_tokens=count_tokens,
                            max_document_tokens=100_000)
    assert chunks[-1].end == len(document.text.rstrip())


@pytest.mark.timeout(600)
def test_texts_over_the_token_limit_are_skipped_and_a_known_one_keeps_its_last_version(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "good.txt").write_text(GOOD)
    (corpus / "tides.txt").write_text("Tide tables\nHigh tide at Brest comes at noon on Sundays.")
    index = tmp_path / "index"
    build_index(corpus, index)
    settings = load_settings(max_document_tokens=20_000)
    (corpus / "tides.txt").write_text("tide " * 400_000)  # 2 MB, no full stop: refused by words in the child
    # Without spaces the child's word count passes it; the chunker's token count stops it.
    (corpus / "unspaced.txt").write_text("潮汐表布雷斯特的高潮在星期日中午到来" * 4_000)
    stats = build_index(corpus, index, settings=settings)
    skipped = dict(stats.skipped)
    assert "too long to index" in skipped["tides.txt"] and "previously indexed version is kept" in skipped["tides.txt"]
    assert "RAG_MAX_DOCUMENT_TOKENS" in skipped["unspaced.txt"]
    assert (stats.added, stats.updated, stats.removed) == (0, 0, 0)
    hits = retrieve("high tide at Brest", 1, index_dir=index, settings=settings)
    assert hits[0].doc_id == "tides.txt" and "noon on Sundays" in hits[0].text
