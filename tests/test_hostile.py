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
    out, offsets = bytearray(b"%PDF-1.7\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    path.write_bytes(bytes(out))


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


@hypothesis_settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=4096), suffix=st.sampled_from(sorted(SUPPORTED_SUFFIXES)))
def test_fuzzed_bytes_never_crash_a_loader(tmp_path, data, suffix):
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(data)
    try:
        doc = load_document(path, path.name)
    except LoadError as e:
        assert str(e)
    else:
        assert isinstance(doc, Document) and doc.text.strip() and doc.title


@hypothesis_settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(min_size=1, max_size=2048))
def test_fuzzed_pdf_bodies_never_crash_the_pdf_loader(tmp_path, data):
    path = tmp_path / "fuzz.pdf"
    path.write_bytes(b"%PDF-1.7\n" + data + b"\n%%EOF\n")
    try:
        load_document(path, "fuzz.pdf")
    except LoadError as e:
        assert str(e)
