"""Broken and hostile files: each is skipped with its reason while the rest is indexed."""

from __future__ import annotations

import zlib
from pathlib import Path

from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from rag import build_index, load_settings, retrieve
from rag.guard import GuardedLoader
from rag.loaders import SUPPORTED_SUFFIXES, load_document
from rag.types import Document, LoadError
from tests.conftest import write_pdf
from tests.documents import write_raw_pdf

GOOD = "Lighthouses\nThe Pharos of Alexandria guided ships into the harbour for centuries."


def pdf_bomb(path: Path, inflated_mb: int = 400) -> None:
    """A one-page PDF whose content stream inflates to hundreds of megabytes."""
    stream = zlib.compress(b"BT /F1 12 Tf 72 712 Td (Hi) Tj ET\n" + b" " * (inflated_mb << 20), 9)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    write_raw_pdf(path, objects)


def hostile_corpus(folder: Path, outside: Path) -> None:
    folder.mkdir()
    (folder / "good.txt").write_text(GOOD)
    pdf_bomb(folder / "bomb.pdf")
    real = write_pdf(folder / "real.pdf", ["Page one text.", "Page two text."])
    (folder / "truncated.pdf").write_bytes(real.read_bytes()[: len(real.read_bytes()) // 2])
    write_pdf(folder / "locked.pdf", ["Secret."], owner_password="o", user_password="u")
    (folder / "garbage.pdf").write_bytes(b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\n%%EOF\n")
    (folder / "binary.txt").write_bytes(bytes(range(256)) * 64)
    (folder / "nulls.md").write_bytes(b"# Title\x00\x00\x00 with nulls\x00")
    (folder / "nested.html").write_text("<div>" * 50_000 + "Deep text." + "</div>" * 50_000)
    (folder / "mixed.txt").write_bytes("Café in UTF-8. ".encode() + "Crème in Latin-1.".encode("latin-1"))
    (folder / "huge.txt").write_bytes(b"a" * (3 << 20))
    (folder / "empty.md").write_bytes(b"")
    outside.write_text("A file outside the corpus that must never be indexed.")
    (folder / "escape.txt").symlink_to(outside)


def test_hostile_files_are_skipped_and_the_rest_indexed(tmp_path):
    corpus = tmp_path / "corpus"
    hostile_corpus(corpus, tmp_path / "outside.txt")
    settings = load_settings(max_file_mb=2)
    stats = build_index(corpus, tmp_path / "index", settings=settings)

    skipped = dict(stats.skipped)
    assert set(skipped) == {
        "bomb.pdf", "truncated.pdf", "locked.pdf", "garbage.pdf", "binary.txt", "nulls.md",
        "huge.txt", "empty.md", "escape.txt",
    }
    assert "encrypted" in skipped["locked.pdf"]
    assert "too large" in skipped["huge.txt"] and "outside" in skipped["escape.txt"]
    assert stats.added == 4  # good.txt, real.pdf, nested.html, mixed.txt
    hits = retrieve("Pharos of Alexandria", 1, index_dir=tmp_path / "index", settings=settings)
    assert hits[0].doc_id == "good.txt"
    never = retrieve("file outside the corpus", 5, index_dir=tmp_path / "index", settings=settings)
    assert all(p.doc_id != "escape.txt" for p in never)


def test_a_file_deleted_during_the_build_is_skipped(tmp_path, monkeypatch):
    import rag.indexer

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "good.txt").write_text(GOOD)
    listing = rag.indexer.find_files

    def listing_then_deletion(folder, **options):
        files, skipped = listing(folder, **options)
        (corpus / "gone.txt").unlink()
        return files, skipped

    (corpus / "gone.txt").write_text("Here a moment ago.")
    monkeypatch.setattr(rag.indexer, "find_files", listing_then_deletion)
    stats = build_index(corpus, tmp_path / "index")
    assert stats.added == 1 and dict(stats.skipped)["gone.txt"]


def test_a_reader_that_overruns_its_time_limit_is_stopped(tmp_path):
    pdf = write_pdf(tmp_path / "slow.pdf", ["Some text."])
    with GuardedLoader(timeout_s=0.001, memory_limit_mb=0) as reader:
        try:
            reader.load(pdf, "slow.pdf")
        except LoadError as e:
            assert "longer than 0.001 s" in str(e)
        else:  # the worker answered within a millisecond of starting: impossible for a new process
            raise AssertionError("time limit not applied")
    with GuardedLoader(timeout_s=30, memory_limit_mb=2048) as reader:
        assert reader.load(pdf, "slow.pdf").text == "Some text."


def test_a_reader_over_its_memory_limit_is_a_skip_not_a_crash(tmp_path):
    text = tmp_path / "big.txt"
    text.write_text("A sentence of text. " * 5_000_000)  # 100 MB of text decodes to more
    with GuardedLoader(timeout_s=60, memory_limit_mb=700) as reader:
        try:
            reader.load(text, "big.txt")
        except LoadError as e:
            assert "MB" in str(e)
        else:
            raise AssertionError("memory limit not applied")
        (tmp_path / "small.txt").write_text(GOOD)
        assert reader.load(tmp_path / "small.txt", "small.txt").title == "Lighthouses"


def _loads_or_says_why(path: Path) -> None:
    """Whatever the bytes, the loader gives a document with text and a title, or a LoadError
    with a reason: never another exception."""
    try:
        doc = load_document(path, path.name)
    except LoadError as e:
        assert str(e)
    else:
        assert isinstance(doc, Document) and doc.text.strip() and doc.title


@hypothesis_settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=4096), suffix=st.sampled_from(sorted(SUPPORTED_SUFFIXES)))
def test_fuzzed_bytes_never_crash_a_loader(tmp_path, data, suffix):
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(data)
    _loads_or_says_why(path)


@hypothesis_settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(min_size=1, max_size=2048))
def test_fuzzed_pdf_bodies_never_crash_the_pdf_loader(tmp_path, data):
    path = tmp_path / "fuzz.pdf"
    path.write_bytes(b"%PDF-1.7\n" + data + b"\n%%EOF\n")
    try:
        load_document(path, "fuzz.pdf")
    except LoadError as e:
        assert str(e)


# ---------------------------------------------------------------- the sandbox around parsing


def test_the_reader_child_gets_no_secrets(monkeypatch):
    import subprocess
    import sys

    from rag.guard import child_environment

    monkeypatch.setenv("RAG_LLM_API_KEY", "sk-secret")
    monkeypatch.setenv("RAG_AUTH", "admin:hunter2")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "also-secret")
    environment = child_environment()
    assert not {"RAG_LLM_API_KEY", "RAG_AUTH", "AWS_SECRET_ACCESS_KEY"} & set(environment)
    seen = subprocess.run([sys.executable, "-E", "-c", "import os; print(sorted(os.environ))"],
                          env=environment, capture_output=True, text=True, check=True).stdout
    assert "secret" not in seen.lower() and "RAG_" not in seen


def test_the_reader_child_has_no_network_where_the_machine_allows():
    import socket
    import subprocess
    import sys

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    probe = (
        "import socket, sys\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})\n"
        "from rag.guard import isolate_network\n"
        "if not isolate_network(): print('not isolated'); sys.exit()\n"
        "try:\n"
        f"    socket.create_connection(('127.0.0.1', {port}), timeout=2); print('connected')\n"
        "except OSError as e: print('refused')\n"
    )
    try:
        result = subprocess.run([sys.executable, "-E", "-c", probe], capture_output=True, text=True, timeout=60)
    finally:
        server.close()
    if result.stdout.strip() == "not isolated":
        import pytest

        pytest.skip("this machine allows no network namespace")
    assert result.stdout.strip() == "refused", result.stderr


def test_the_reader_replies_in_json_with_every_field(tmp_path):
    path = tmp_path / "notes.md"
    path.write_text("# Notes\n\nThe **first** point.\n\n## More\n\nA second point.\n", encoding="utf-8")
    with GuardedLoader(timeout_s=60, memory_limit_mb=2048) as reader:
        assert reader.load(path, "notes.md") == load_document(path, "notes.md")


def test_zip_bombs_in_word_and_epub_files_are_skipped_with_their_reason(tmp_path):
    from tests.documents import zip_bomb_like

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "good.txt").write_text(GOOD)
    zip_bomb_like(corpus / "bomb.docx", "word/document.xml")
    zip_bomb_like(corpus / "bomb.epub", "OEBPS/chapter.xhtml")
    (corpus / "fake.docx").write_bytes(b"PK\x03\x04 not really a zip")
    stats = build_index(corpus, tmp_path / "index")
    skipped = dict(stats.skipped)
    assert "zip bomb" in skipped["bomb.docx"] and "zip bomb" in skipped["bomb.epub"]
    assert "not a readable zip archive" in skipped["fake.docx"]
    assert stats.added == 1


def test_a_known_document_that_grows_too_large_keeps_its_last_good_version(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "good.txt").write_text(GOOD)
    (corpus / "notes.txt").write_text("Tide tables\nHigh tide at Brest comes at noon on Sundays.")
    build_index(corpus, tmp_path / "index")
    (corpus / "notes.txt").write_bytes(b"High tide. " * 200_000)  # 2.2 MB
    settings = load_settings(max_file_mb=1)
    stats = build_index(corpus, tmp_path / "index", settings=settings)
    reason = dict(stats.skipped)["notes.txt"]
    assert "too large" in reason and "previously indexed version is kept" in reason
    assert stats.removed == 0
    hits = retrieve("high tide at Brest", 1, index_dir=tmp_path / "index", settings=settings)
    assert hits[0].doc_id == "notes.txt"


_CONTAINERS: dict[str, bytes] = {}


def test_a_document_whose_text_unpacks_past_the_limit_is_refused(tmp_path):
    from tests.documents import write_docx

    path = write_docx(tmp_path / "long.docx", "Long", [("p", "Words and more words. " * 5000)] * 12)
    with GuardedLoader(timeout_s=60, memory_limit_mb=2048, max_text_mb=1) as reader:
        try:
            reader.load(path, "long.docx")
        except LoadError as e:
            assert "too long to index" in str(e) and "RAG_MAX_FILE_MB" in str(e)
        else:
            raise AssertionError("text limit not applied")


def _real_container(tmp_path: Path, suffix: str) -> bytes:
    from tests import documents

    if suffix in _CONTAINERS:
        return _CONTAINERS[suffix]
    blocks = [("h", "Heading"), ("p", "A paragraph of text. Another sentence here.")]
    writers = {
        ".docx": lambda p: documents.write_docx(p, "Title", blocks),
        ".epub": lambda p: documents.write_epub(p, "Title", blocks, chapters=1),
        ".odt": lambda p: documents.write_odt(p, "Title", blocks),
        ".pptx": lambda p: documents.write_pptx(p, "Title", [("Slide", ["Point."])]),
    }
    _CONTAINERS[suffix] = writers[suffix](tmp_path / f"seed{suffix}").read_bytes()
    return _CONTAINERS[suffix]


@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(suffix=st.sampled_from([".docx", ".epub", ".odt", ".pptx"]), cut=st.floats(0, 1),
       flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=8))
def test_damaged_office_files_and_books_never_crash_a_loader(tmp_path, suffix, cut, flips):
    data = bytearray(_real_container(tmp_path, suffix))
    for where, value in flips:
        data[int(where * (len(data) - 1))] = value
    data = data[: max(1, int(cut * len(data)))] if cut < 0.5 else data
    path = tmp_path / f"damaged{suffix}"
    path.write_bytes(bytes(data))
    _loads_or_says_why(path)
