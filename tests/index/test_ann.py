"""Approximate search in large segments: written by the writer, checksummed with the segment,
finding what an exact scan finds on clustered vectors, never returning a deleted chunk."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rag.index import ann
from rag.index.manifest import Manifest
from rag.index.segments import SEGMENT_FILE, SEGMENTS_DIR
from rag.index.writer import VersionWriter
from rag.store import MANIFEST_FILE, open_snapshot, read_current
from rag.types import Chunk, Document, IndexCorruptError

DIMENSION = 32
CHUNKS_PER_DOC = 4


def clustered(rows: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((40, DIMENSION))
    vectors = centres[rng.integers(40, size=rows)] + 0.5 * rng.standard_normal((rows, DIMENSION))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def write_index(index_dir, documents: int) -> np.ndarray:
    vectors = clustered(documents * CHUNKS_PER_DOC, seed=1)
    writer = VersionWriter(index_dir, None, DIMENSION)
    hashes = {}
    for n in range(documents):
        text = " ".join(f"word{n} part{c}." for c in range(CHUNKS_PER_DOC))
        doc = Document(f"doc-{n}", f"Doc {n}", text, f"hash-{n}")
        spans = [(m.start(), m.end()) for m in __import__("re").finditer(r"\S+ \S+\.", text)]
        chunks = [Chunk(doc.doc_id, c, text[s:e], s, e) for c, (s, e) in enumerate(spans)]
        ids = list(range(n * CHUNKS_PER_DOC, (n + 1) * CHUNKS_PER_DOC))
        writer.add_document(doc, chunks, ids, vectors[ids])
        hashes[doc.doc_id] = doc.content_hash
    writer.commit({"model": "m", "dimension": DIMENSION, "chunking": {}, "documents": hashes,
                   "next_chunk_id": documents * CHUNKS_PER_DOC, "built_at": "now"})
    return vectors


def exact_top(vectors: np.ndarray, query: np.ndarray, k: int, excluded=()) -> list[int]:
    scores = vectors @ query
    scores[list(excluded)] = -np.inf
    return np.argsort(-scores, kind="stable")[:k].tolist()


@pytest.fixture
def small_threshold(monkeypatch):
    monkeypatch.setattr(ann, "MIN_ROWS", 2_000)


def test_large_segment_gets_a_checksummed_approximate_index(tmp_path, small_threshold):
    write_index(tmp_path, documents=600)
    [ref] = Manifest.read(tmp_path / read_current(tmp_path) / MANIFEST_FILE).segments
    segment_dir = tmp_path / SEGMENTS_DIR / ref.name
    assert ann.ANN_FILE in json.loads((segment_dir / SEGMENT_FILE).read_text())["files"]
    data = bytearray((segment_dir / ann.ANN_FILE).read_bytes())
    data[-5] ^= 0xFF
    (segment_dir / ann.ANN_FILE).write_bytes(bytes(data))
    with pytest.raises(IndexCorruptError, match=ann.ANN_FILE):
        open_snapshot(tmp_path)


def test_small_segment_is_searched_exactly(tmp_path):
    write_index(tmp_path, documents=100)
    [ref] = Manifest.read(tmp_path / read_current(tmp_path) / MANIFEST_FILE).segments
    assert not (tmp_path / SEGMENTS_DIR / ref.name / ann.ANN_FILE).exists()


def test_approximate_search_finds_the_exact_top_with_exact_scores(tmp_path, small_threshold):
    vectors = write_index(tmp_path, documents=600)
    snapshot = open_snapshot(tmp_path)
    assert snapshot._segments[0].ann is not None
    queries = clustered(50, seed=2)
    found = 0
    for query in queries:
        ranking = snapshot.search_dense(query, 10)
        found += len({c for c, _ in ranking} & set(exact_top(vectors, query, 10)))
        for chunk_id, score in ranking:
            assert score == pytest.approx(float(vectors[chunk_id] @ query), abs=1e-5)
    assert found / (10 * len(queries)) >= 0.98


def test_deleted_documents_never_come_back_from_the_approximate_index(tmp_path, small_threshold):
    vectors = write_index(tmp_path, documents=600)
    base = open_snapshot(tmp_path)
    query = clustered(1, seed=3)[0]
    # delete the documents of the current best 20 chunks
    gone = {f"doc-{c // CHUNKS_PER_DOC}" for c in exact_top(vectors, query, 20)}
    writer = VersionWriter(tmp_path, base, DIMENSION)
    for doc_id in gone:
        writer.remove_document(doc_id)
    hashes = {d: h for d, h in base.manifest["documents"].items() if d not in gone}
    writer.commit({"model": "m", "dimension": DIMENSION, "chunking": {}, "documents": hashes,
                   "next_chunk_id": base.manifest["next_chunk_id"], "built_at": "now"})
    base.close()
    snapshot = open_snapshot(tmp_path)
    excluded = [c for c in range(len(vectors)) if f"doc-{c // CHUNKS_PER_DOC}" in gone]
    ranking = [c for c, _ in snapshot.search_dense(query, 10)]
    assert not set(ranking) & set(excluded)
    assert len(set(ranking) & set(exact_top(vectors, query, 10, excluded))) >= 9


def test_a_merge_copies_vectors_and_sentence_vectors_block_by_block(tmp_path, monkeypatch, small_threshold):
    """Segments merged (here with tiny copy blocks) hold every live vector and sentence vector
    as written, and the merged segment gets its approximate index."""
    from rag.index import writer as writer_module

    monkeypatch.setattr(writer_module, "SEGMENT_CHUNKS", 400)
    monkeypatch.setattr(writer_module, "MERGE_FANOUT", 2)
    monkeypatch.setattr(writer_module, "_COPY_BLOCK", 7)
    vectors = clustered(600 * CHUNKS_PER_DOC, seed=4)
    writer = VersionWriter(tmp_path, None, DIMENSION)
    hashes, sentences = {}, {}
    for n in range(600):
        text = " ".join(f"word{n} part{c}." for c in range(CHUNKS_PER_DOC))
        doc = Document(f"doc-{n}", f"Doc {n}", text, f"hash-{n}")
        spans = [(m.start(), m.end()) for m in __import__("re").finditer(r"\S+ \S+\.", text)]
        chunks = [Chunk(doc.doc_id, c, text[s:e], s, e) for c, (s, e) in enumerate(spans)]
        ids = list(range(n * CHUNKS_PER_DOC, (n + 1) * CHUNKS_PER_DOC))
        sentences[doc.doc_id] = {span: vectors[i] for span, i in zip(spans, ids)}
        writer.add_document(doc, chunks, ids, vectors[ids], sentences[doc.doc_id])
        hashes[doc.doc_id] = doc.content_hash
    writer.commit({"model": "m", "dimension": DIMENSION, "chunking": {}, "documents": hashes,
                   "next_chunk_id": 600 * CHUNKS_PER_DOC, "built_at": "now"})
    snapshot = open_snapshot(tmp_path)
    assert len(snapshot._segments) == 1 and snapshot._segments[0].ann is not None
    stored = snapshot.vectors(list(range(len(vectors))))
    assert all(np.array_equal(stored[i], vectors[i]) for i in range(len(vectors)))
    for doc_id in ("doc-0", "doc-333", "doc-599"):
        places = [(doc_id, s, e) for s, e in sentences[doc_id]]
        found = snapshot.sentence_vectors(places)
        for (_, s, e), vector in found.items():
            assert np.array_equal(vector, sentences[doc_id][(s, e)].astype(np.float16).astype(np.float32))
        assert len(found) == len(places)


def test_a_build_opens_its_base_without_reading_graphs_and_a_reader_reads_them_at_open(
        tmp_path, small_threshold, monkeypatch):
    """A build's base (opened unverified) never searches, so a graph is read only if a search
    asks for it; a reader's open reads it at once, so that no question waits for it."""
    from rag.index import segments as segments_module

    reads = []
    real = segments_module.ApproximateIndex
    monkeypatch.setattr(segments_module, "ApproximateIndex", lambda path: reads.append(path) or real(path))
    vectors = write_index(tmp_path / "built", documents=600)
    base = open_snapshot(tmp_path / "built", verify=False)
    assert reads == []
    assert base.search_dense(vectors[5], 1)[0][0] == 5
    assert len(reads) == 1
    base.close()

    write_index(tmp_path / "read", documents=600)
    open_snapshot(tmp_path / "read").close()
    assert len(reads) == 2
