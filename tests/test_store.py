"""A damaged index is reported with the file and the fix, never a crash deep in FAISS."""

from __future__ import annotations

import json
import shutil

import pytest

from rag import build_index, retrieve
from rag.store import (
    CURRENT_FILE,
    MANIFEST_FILE,
    META_FILE,
    VECTORS_FILE,
    open_snapshot,
    read_current,
)
from rag.types import IndexCorruptError, IndexNotFoundError


@pytest.fixture
def index_copy(default_index, tmp_path):
    """A private copy of the default-corpus index that a test may damage."""
    target = tmp_path / "index"
    shutil.copytree(default_index, target)
    return target


def _version(index_dir):
    return index_dir / read_current(index_dir)


def test_snapshot_reads_back_documents_and_chunks(default_index):
    snapshot = open_snapshot(default_index)
    [info] = snapshot.documents()
    doc = snapshot.document(info.doc_id)
    records = snapshot.chunks(list(range(len(snapshot))))
    assert info.chunks == len(snapshot) == len(records)
    assert all(doc.text[r.start:r.end] == r.text for r in records.values())
    assert info.pages is None and all(r.page is None for r in records.values())


def test_no_index_says_how_to_build_one(tmp_path):
    with pytest.raises(IndexNotFoundError, match="rag index"):
        retrieve("anything", index_dir=tmp_path / "empty")


@pytest.mark.parametrize("name", [VECTORS_FILE, META_FILE])
def test_truncated_file_names_the_file_and_the_fix(index_copy, name):
    path = _version(index_copy) / name
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(IndexCorruptError, match=rf"{name}.*rag index --full"):
        open_snapshot(index_copy)


def test_edited_metadata_is_detected(index_copy):
    path = _version(index_copy) / META_FILE
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IndexCorruptError, match=META_FILE):
        open_snapshot(index_copy)


@pytest.mark.parametrize("name", [VECTORS_FILE, META_FILE, MANIFEST_FILE])
def test_missing_file_names_it(index_copy, name):
    (_version(index_copy) / name).unlink()
    with pytest.raises(IndexCorruptError, match=rf"{name} is missing.*--full"):
        open_snapshot(index_copy)


def test_manifest_from_a_newer_version_is_refused(index_copy):
    path = _version(index_copy) / MANIFEST_FILE
    manifest = json.loads(path.read_text())
    manifest["format_version"] = 99
    path.write_text(json.dumps(manifest))
    with pytest.raises(IndexCorruptError, match="newer version"):
        open_snapshot(index_copy)


def test_current_pointing_nowhere_is_reported(index_copy):
    (index_copy / CURRENT_FILE).write_text("v-gone")
    with pytest.raises(IndexCorruptError, match="v-gone"):
        open_snapshot(index_copy)


def test_full_rebuild_repairs_a_damaged_index(index_copy):
    from tests.conftest import DEFAULT_CORPUS

    (_version(index_copy) / VECTORS_FILE).write_bytes(b"garbage")
    stats = build_index(DEFAULT_CORPUS, index_copy, full=True)
    assert stats.added == 1
    assert len(open_snapshot(index_copy)) == stats.chunks
