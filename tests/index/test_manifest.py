"""The document table: a base shared by versions plus each version's changes, so a commit that
changes one document writes one entry, not the table; format-2 tables still read."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from rag.index import manifest as manifest_module
from rag.index.manifest import DOCUMENTS_FILE, TABLES_DIR, DocumentEntry, Manifest
from rag.index.writer import VersionWriter
from rag.store import MANIFEST_FILE, open_snapshot, read_current
from rag.types import Chunk, Document, IndexCorruptError
from tests.index.test_writer import CHUNKS_PER_DOC, DIMENSION, small_segments, write_documents  # noqa: F401


def _manifest(index_dir) -> Manifest:
    return Manifest.read(index_dir / read_current(index_dir) / MANIFEST_FILE)


def _update(index_dir, changed: list[int], removed: list[int], revision: int) -> None:
    """Re-write the documents ``changed`` (new text and hash) and remove ``removed``, as a build does."""
    base = open_snapshot(index_dir, verify=False)
    hashes = {d: e.content_hash for d, e in base.manifest.documents.items()}
    next_id = base.manifest.next_chunk_id
    writer = VersionWriter(index_dir, base, DIMENSION)
    for n in removed:
        writer.remove_document(f"doc-{n}")
        hashes.pop(f"doc-{n}")
    rng = np.random.default_rng(revision)
    for n in changed:
        text = f"revised{revision} text{n}."
        doc = Document(f"doc-{n}", f"Doc {n}", text, f"hash-{n}-r{revision}")
        vector = rng.standard_normal((1, DIMENSION)).astype(np.float32)
        writer.add_document(doc, [Chunk(doc.doc_id, 0, text, 0, len(text))], [next_id],
                            vector / np.linalg.norm(vector))
        hashes[doc.doc_id] = doc.content_hash
        next_id += 1
    writer.commit({"model": "m", "dimension": DIMENSION, "chunking": {}, "documents": hashes,
                   "file_stats": {"doc-0": (123, 456)}, "next_chunk_id": next_id, "built_at": "now"})
    base.close()


def _expected(documents: int, changed: dict[int, int], removed: set[int]) -> dict[str, str]:
    return {f"doc-{n}": f"hash-{n}-r{changed[n]}" if n in changed else f"hash-{n}"
            for n in range(documents) if n not in removed}


def test_a_commit_writes_its_changes_and_shares_the_base(tmp_path):
    index_dir = tmp_path / "index"
    write_documents(index_dir, 60)
    first = _manifest(index_dir).documents
    _update(index_dir, changed=[3, 60], removed=[7], revision=1)

    table = _manifest(index_dir).documents
    assert table.base_name == first.base_name
    assert [p.stem for p in (index_dir / TABLES_DIR).iterdir()] == [first.base_name]
    changes = json.loads((index_dir / read_current(index_dir) / DOCUMENTS_FILE).read_text())
    assert sorted(changes) == ["doc-0", "doc-3", "doc-60", "doc-7"]  # doc-0: its file's stats
    assert changes["doc-7"] is None
    assert {d: e.content_hash for d, e in table.items()} == _expected(61, {3: 1, 60: 1}, {7})
    assert len(table) == 60 and "doc-7" not in table and table["doc-0"].size == 123
    segments = {ref.name for ref in _manifest(index_dir).segments}
    assert {entry.segment for entry in table.values()} == segments


def test_changes_past_the_fraction_fold_into_a_new_base_and_unlisted_bases_go(tmp_path, monkeypatch):
    monkeypatch.setattr(manifest_module, "REBASE_AT_LEAST", 3)
    monkeypatch.setattr(manifest_module, "REBASE_FRACTION", 0.0)
    index_dir = tmp_path / "index"
    write_documents(index_dir, 20)
    bases = [_manifest(index_dir).documents.base_name]
    revisions: dict[int, int] = {}
    for revision in range(1, 5):  # each commit adds ~2 changes: the delta passes 3 every other one
        _update(index_dir, changed=[revision], removed=[], revision=revision)
        revisions[revision] = revision
        bases.append(_manifest(index_dir).documents.base_name)
    assert len(set(bases)) >= 2
    table = _manifest(index_dir).documents
    assert {d: e.content_hash for d, e in table.items()} == _expected(20, revisions, set())
    listed = {Manifest.read(v / MANIFEST_FILE).documents.base_name for v in index_dir.glob("v-*")}
    assert {p.stem for p in (index_dir / TABLES_DIR).iterdir()} == listed


def test_documents_moved_by_a_merge_point_at_the_merged_segment(tmp_path, small_segments):  # noqa: F811
    index_dir = tmp_path / "index"
    write_documents(index_dir, 30)  # 120 chunks: sealed 40 at a time, then merged
    _update(index_dir, changed=[2], removed=[5, 6], revision=1)
    manifest = _manifest(index_dir)
    snapshot = open_snapshot(index_dir)
    located = {ref.name: ref for ref in manifest.segments}
    for doc_id, entry in manifest.documents.items():
        assert entry.segment in located and doc_id not in located[entry.segment].deleted
        assert snapshot.document(doc_id).content_hash == entry.content_hash
    assert len(manifest.documents) == 28 == len(snapshot.documents())


def _as_format_2(version_dir) -> dict[str, DocumentEntry]:
    """Rewrite a version as format 2 wrote it: the whole table in the version's documents.json."""
    manifest = Manifest.read(version_dir / MANIFEST_FILE)
    entries = dict(manifest.documents.items())
    whole = json.dumps({d: list(e) for d, e in sorted(entries.items())}, sort_keys=True)
    (version_dir / DOCUMENTS_FILE).write_text(whole)
    raw = json.loads((version_dir / MANIFEST_FILE).read_text())
    raw["format_version"] = 2
    raw["documents"] = {"size": len(whole.encode()), "sha256": hashlib.sha256(whole.encode()).hexdigest()}
    (version_dir / MANIFEST_FILE).write_text(json.dumps(raw))
    return entries


def test_a_format_2_index_still_reads_and_its_next_commit_writes_a_shared_base(tmp_path):
    index_dir = tmp_path / "index"
    write_documents(index_dir, 12)
    entries = _as_format_2(index_dir / read_current(index_dir))
    for table in (index_dir / TABLES_DIR).iterdir():
        table.unlink()
    assert dict(_manifest(index_dir).documents.items()) == entries
    assert len(open_snapshot(index_dir)) == 12 * CHUNKS_PER_DOC

    _update(index_dir, changed=[1], removed=[], revision=1)
    table = _manifest(index_dir).documents
    assert table.base_name is not None and (index_dir / TABLES_DIR / f"{table.base_name}.json").exists()
    assert {d: e.content_hash for d, e in table.items()} == _expected(12, {1: 1}, set())


def test_a_damaged_base_table_is_reported_with_the_fix(tmp_path):
    index_dir = tmp_path / "index"
    write_documents(index_dir, 5)
    [base] = (index_dir / TABLES_DIR).iterdir()
    intact = base.read_bytes()
    base.write_bytes(intact.replace(b"hash-1", b"hash-9"))  # same size: found when the table is read
    with pytest.raises(IndexCorruptError, match=rf"{base.name}.*rag index --full"):
        dict(open_snapshot(index_dir).manifest.documents)
    base.write_bytes(intact[:-3])  # truncated: found when the version opens
    with pytest.raises(IndexCorruptError, match=rf"{base.name}.*rag index --full"):
        open_snapshot(index_dir)
