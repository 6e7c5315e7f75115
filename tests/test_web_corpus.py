"""Corpus management behind the web app's Documents tab: add, refuse, rename, remove."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from rag import api
from rag.indexer import build_lock
from rag.store import read_current
from rag.types import IndexNotFoundError, RagError

FIXTURES = Path(__file__).parent / "web" / "fixtures"


@pytest.fixture
def library(tmp_path):
    """A two-document corpus with its index: (corpus_dir, index_dir)."""
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    corpus.mkdir()
    (corpus / "lighthouses.txt").write_text("Lighthouses\nThe Pharos of Alexandria was a lighthouse.\n")
    (corpus / "bridges.md").write_text("# Bridges\nThe Rialto bridge crosses the Grand Canal in Venice.\n")
    api.build_index(corpus, index)
    return corpus, index


def corpus_files(corpus: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in corpus.iterdir()}


@pytest.mark.parametrize(
    "uploaded, saved",
    [
        ("../../etc/passwd.txt", "passwd.txt"),
        ("C:\\Users\\me\\notes.MD", "notes.md"),
        (".hidden.txt", "hidden.txt"),
        ("a<b>|c?.html", "a_b_c_.html"),
        ("report (final).pdf", "report (final).pdf"),
        ("...", "document"),
    ],
)
def test_upload_names_are_plain_names_in_the_corpus_root(uploaded, saved):
    assert api.safe_file_name(uploaded) == saved


def test_status_and_documents_describe_the_active_index(library):
    corpus, index = library
    status = api.index_status(index)
    assert (status.documents, status.model) == (2, api.load_settings().model)
    assert status.chunks >= 2 and status.built_at.endswith("Z")
    assert [d.doc_id for d in api.documents(index)] == ["bridges.md", "lighthouses.txt"]
    assert "Rialto" in api.document("bridges.md", index_dir=index).text
    with pytest.raises(IndexNotFoundError):
        api.index_status(corpus.parent / "no-index")
    api.warm_up(corpus.parent / "no-index")  # best effort: the first real call reports it


def test_added_file_is_saved_and_answerable(library):
    corpus, index = library
    result = api.add_files([FIXTURES / "tarnvik-volcano.txt"], corpus, index)
    assert result.added == [("tarnvik-volcano.txt", "tarnvik-volcano.txt")] and not result.rejected
    assert result.stats.added == 1 and result.stats.unchanged == 2
    assert (corpus / "tarnvik-volcano.txt").read_bytes() == (FIXTURES / "tarnvik-volcano.txt").read_bytes()
    passages = api.retrieve("What colours the crater lake of Mount Tarnvik?", 1, index_dir=index)
    assert passages[0].doc_id == "tarnvik-volcano.txt"


def test_broken_file_is_refused_with_its_reason_and_nothing_changes(library):
    corpus, index = library
    before, version = corpus_files(corpus), read_current(index)
    result = api.add_files([FIXTURES / "broken.pdf"], corpus, index)
    assert result.added == [] and result.stats is None
    [(name, reason)] = result.rejected
    assert name == "broken.pdf" and "PDF" in reason
    assert corpus_files(corpus) == before and read_current(index) == version


def test_taken_name_gets_a_number_and_the_same_bytes_are_refused(library, tmp_path):
    corpus, index = library
    upload = tmp_path / "upload" / "bridges.md"
    upload.parent.mkdir()
    upload.write_text("# Other bridges\nThe Charles Bridge crosses the Vltava in Prague.\n")
    original = (corpus / "bridges.md").read_bytes()
    result = api.add_files([upload, upload], corpus, index)
    assert result.added == [("bridges.md", "bridges-2.md")]
    assert result.rejected == [("bridges.md", "already in the corpus as bridges-2.md")]
    assert (corpus / "bridges.md").read_bytes() == original
    assert {d.doc_id for d in api.documents(index)} == {"bridges.md", "bridges-2.md", "lighthouses.txt"}


@pytest.mark.parametrize(
    "name, content, reason",
    [("tool.exe", b"MZ", "unsupported file type '.exe'"), ("empty.txt", b"  \n", "empty file")],
)
def test_unsupported_or_empty_files_are_refused(library, tmp_path, name, content, reason):
    corpus, index = library
    (tmp_path / name).write_bytes(content)
    result = api.add_files([tmp_path / name], corpus, index)
    assert result.rejected[0][1].startswith(reason) and not (corpus / name).exists()


def test_files_over_the_size_limit_are_refused(library, tmp_path):
    corpus, index = library
    big = tmp_path / "big.txt"
    big.write_text("word " * 300_000)
    settings = api.load_settings(max_file_mb=1.0)
    [(_, reason)] = api.add_files([big], corpus, index, settings=settings).rejected
    assert reason == "file too large (1.4 MB > 1 MB limit)"


def test_when_the_index_is_busy_the_upload_is_undone(library):
    corpus, index = library
    before = corpus_files(corpus)
    with build_lock(index), pytest.raises(RagError, match="another build"):
        api.add_files([FIXTURES / "tarnvik-volcano.txt"], corpus, index)
    assert corpus_files(corpus) == before


def test_remove_moves_the_file_to_the_trash_and_restore_brings_it_back(library):
    corpus, index = library
    original = (corpus / "bridges.md").read_bytes()
    stats = api.remove_document("bridges.md", corpus, index)
    assert stats.removed == 1 and not (corpus / "bridges.md").exists()
    assert [d.doc_id for d in api.documents(index)] == ["lighthouses.txt"]
    [(doc_id, trashed)] = api.trashed_documents(corpus)
    assert doc_id == "bridges.md" and trashed.read_bytes() == original
    assert trashed.is_relative_to(corpus / api.TRASH_FOLDER)  # hidden: the indexer never reads it

    stats = api.restore_document("bridges.md", corpus, index)
    assert stats.added == 1 and (corpus / "bridges.md").read_bytes() == original
    assert [d.doc_id for d in api.documents(index)] == ["bridges.md", "lighthouses.txt"]
    assert api.trashed_documents(corpus) == []
    passages = api.retrieve("Which bridge crosses the Grand Canal?", 1, index_dir=index)
    assert passages[0].doc_id == "bridges.md"


def test_restore_never_overwrites_and_needs_a_trashed_copy(library):
    corpus, index = library
    api.remove_document("bridges.md", corpus, index)
    (corpus / "bridges.md").write_text("# New bridges\nA different file of the same name.\n")
    with pytest.raises(RagError, match="in the corpus already"):
        api.restore_document("bridges.md", corpus, index)
    assert "different file" in (corpus / "bridges.md").read_text()
    with pytest.raises(RagError, match="not in the trash"):
        api.restore_document("lighthouses.txt", corpus, index)


def test_restore_puts_the_file_back_in_the_trash_when_the_index_is_busy(library):
    corpus, index = library
    api.remove_document("bridges.md", corpus, index)
    with build_lock(index), pytest.raises(RagError, match="another build"):
        api.restore_document("bridges.md", corpus, index)
    assert not (corpus / "bridges.md").exists() and len(api.trashed_documents(corpus)) == 1


def test_document_pages_are_searchable_and_bounded(library):
    corpus, index = library
    for i in range(5):
        (corpus / f"note-{i}.txt").write_text(f"Note {i}\nThe tide table number {i} for the harbour.\n")
    api.build_index(corpus, index)
    page = api.document_page(index, offset=2, limit=3)
    assert (page.total, page.matching, page.offset) == (7, 7, 2)
    assert [d.doc_id for d in page.documents] == ["note-0.txt", "note-1.txt", "note-2.txt"]
    found = api.document_page(index, search="NOTE 3")
    assert [d.doc_id for d in found.documents] == ["note-3.txt"] and found.matching == 1
    assert api.document_page(index, offset=99, limit=3).offset == 6  # clamped to the last page


@pytest.mark.parametrize("doc_id", ["../outside.txt", "../index/CURRENT", "missing.txt", ".", ".rag-trash"])
def test_remove_refuses_anything_but_a_corpus_file(library, doc_id):
    corpus, index = library
    (corpus.parent / "outside.txt").write_text("not part of the corpus")
    with pytest.raises(RagError, match="is not a file in the corpus"):
        api.remove_document(doc_id, corpus, index)
    assert (corpus.parent / "outside.txt").exists() and read_current(index)


def test_remove_puts_the_file_back_when_the_index_is_busy(library):
    corpus, index = library
    before = corpus_files(corpus)
    with build_lock(index), pytest.raises(RagError, match="another build"):
        api.remove_document("bridges.md", corpus, index)
    assert corpus_files(corpus) == before


def test_questions_are_answered_from_the_last_complete_index_during_a_build(library):
    corpus, index = library
    api.add_files([FIXTURES / "tarnvik-volcano.txt"], corpus, index)
    rebuild = threading.Thread(target=api.build_index, args=(corpus, index), kwargs={"full": True})
    rebuild.start()
    while rebuild.is_alive():
        passages = api.retrieve("What colours the crater lake of Mount Tarnvik?", 1, index_dir=index)
        assert passages[0].doc_id == "tarnvik-volcano.txt"
    rebuild.join()
