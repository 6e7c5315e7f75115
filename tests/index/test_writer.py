"""The local writer's merge policy: size classes merge, but no merge writes a segment above
MAX_SEGMENT_CHUNKS, so neither a full build's commit nor a later update rebuilds a graph or the
postings of the whole index."""

from __future__ import annotations

import re

import numpy as np
import pytest

from rag.index import writer as writer_module
from rag.index.writer import MAX_SEGMENT_CHUNKS, MERGE_FANOUT, VersionWriter, merge_plan
from rag.store import open_snapshot
from rag.types import Chunk, Document

DIMENSION = 16
CHUNKS_PER_DOC = 4


def merged_sizes(sizes: list[int]) -> tuple[list[int], list[int]]:
    """The segment sizes once the policy asks for nothing more, and the size of each merge."""
    merges = []
    while (plan := merge_plan(sizes, sizes)) is not None:
        start, end = plan
        merges.append(sum(sizes[start:end]))
        sizes = sizes[:start] + [sum(sizes[start:end])] + sizes[end:]
    return sizes, merges


def test_a_full_build_of_many_segments_merges_into_bounded_ones():
    sealed = [20_000] * 50  # a million chunks, sealed 20k at a time
    sizes, merges = merged_sizes(sealed)
    assert sum(sizes) == sum(sealed)
    assert max(merges) <= MAX_SEGMENT_CHUNKS and max(sizes) <= MAX_SEGMENT_CHUNKS
    assert len(sizes) == -(-sum(sealed) // MAX_SEGMENT_CHUNKS)


def test_a_size_class_below_the_bound_still_merges_whole():
    sizes, merges = merged_sizes([1_000] * (MERGE_FANOUT + 1) + [20_000])
    assert sizes == [(MERGE_FANOUT + 1) * 1_000, 20_000] and merges == [(MERGE_FANOUT + 1) * 1_000]


def test_segments_that_cannot_merge_within_the_bound_are_left_alone():
    large = MAX_SEGMENT_CHUNKS // 2 + 1
    assert merge_plan([large] * (2 * MERGE_FANOUT), [large] * (2 * MERGE_FANOUT)) is None


def test_a_mostly_deleted_segment_is_still_compacted():
    assert merge_plan([MAX_SEGMENT_CHUNKS // 4], [MAX_SEGMENT_CHUNKS]) == (0, 1)


@pytest.fixture
def small_segments(monkeypatch):
    """Segments of 40 chunks, merged two at a time up to 100 chunks."""
    monkeypatch.setattr(writer_module, "SEGMENT_CHUNKS", 40)
    monkeypatch.setattr(writer_module, "MAX_SEGMENT_CHUNKS", 100)
    monkeypatch.setattr(writer_module, "MERGE_FANOUT", 2)
    monkeypatch.setattr(writer_module, "SMALLEST_CLASS", 1)


def write_documents(index_dir, documents: int, resumable: dict | None = None) -> np.ndarray:
    """A full build of ``documents`` (4 chunks each) through the writer; their vectors."""
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((documents * CHUNKS_PER_DOC, DIMENSION)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    writer = VersionWriter(index_dir, None, DIMENSION, resumable=resumable)
    hashes = {}
    for n in range(documents):
        text = " ".join(f"word{n} part{c}." for c in range(CHUNKS_PER_DOC))
        doc = Document(f"doc-{n}", f"Doc {n}", text, f"hash-{n}")
        spans = [(m.start(), m.end()) for m in re.finditer(r"\S+ \S+\.", text)]
        chunks = [Chunk(doc.doc_id, c, text[s:e], s, e) for c, (s, e) in enumerate(spans)]
        ids = list(range(n * CHUNKS_PER_DOC, (n + 1) * CHUNKS_PER_DOC))
        writer.add_document(doc, chunks, ids, vectors[ids])
        hashes[doc.doc_id] = doc.content_hash
    writer.commit({"model": "m", "dimension": DIMENSION, "chunking": {}, "documents": hashes,
                   "next_chunk_id": len(vectors), "built_at": "now"})
    return vectors


def test_a_commit_merges_into_segments_within_the_bound_and_finds_every_chunk(tmp_path, small_segments):
    vectors = write_documents(tmp_path, 100)

    snapshot = open_snapshot(tmp_path)
    sizes = [len(segment) for segment in snapshot._segments]
    assert sum(sizes) == len(vectors) and max(sizes) <= 100 and len(sizes) < 10, sizes
    for chunk in (0, 133, len(vectors) - 1):
        assert snapshot.search_dense(vectors[chunk], 1)[0][0] == chunk
    assert snapshot.lexical_scores("word77").top(10)[0][0] in range(77 * CHUNKS_PER_DOC, 78 * CHUNKS_PER_DOC)


@pytest.mark.parametrize("resumable", [None, {"model": "m", "chunking": {}, "full": True, "base": None}])
def test_segments_merged_away_by_a_full_build_leave_the_disk_at_once(tmp_path, small_segments, monkeypatch,
                                                                    resumable):
    """Each merge of a full build removes its sources (a resumable build records the merged
    segment first), so the build never holds its rows twice on disk."""
    folders_at_merge = []
    merge = writer_module._merge

    def counting(path, sources, dimension):
        folders_at_merge.append(sum(1 for _ in path.parent.iterdir()))
        return merge(path, sources, dimension)

    monkeypatch.setattr(writer_module, "_merge", counting)
    vectors = write_documents(tmp_path, 100, resumable)
    sealed = len(vectors) // 40
    assert len(folders_at_merge) > 2 and folders_at_merge[-1] < sealed, folders_at_merge
    snapshot = open_snapshot(tmp_path)
    assert len(snapshot) == len(vectors)
    assert snapshot.search_dense(vectors[-1], 1)[0][0] == len(vectors) - 1
    assert not (tmp_path / writer_module.PENDING_DIR).exists()
