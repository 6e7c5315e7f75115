"""The contract every index backend keeps: a pinned, read-only version and a version writer.

A request opens one :class:`IndexReader` and does everything through it (search, chunk texts,
sentence vectors, documents), so it sees one version from start to end however many builds commit
meanwhile. A build writes through one :class:`IndexWriter`, whose ``commit`` makes the new version
visible at once or not at all. The local backend (:mod:`rag.store` reads, :mod:`rag.index.writer`
writes: versions listing immutable segments, each with memory-mapped vectors, an approximate FAISS
index when large, SQLite metadata, float16 sentence vectors and BM25 postings) is one
implementation; a distributed one (Milvus, :mod:`rag.index.milvus`) is another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..types import Chunk, ChunkRecord, Document, DocumentInfo, Place
from .manifest import Manifest

Ranking = list[tuple[int, float]]  # (chunk_id, score) best first


@dataclass(frozen=True)
class DocumentListing:
    """One page of a version's documents, and how many match and exist."""

    documents: list[DocumentInfo]
    offset: int
    matching: int
    total: int


def clamped_offset(offset: int, limit: int, matching: int) -> int:
    """``offset`` moved back to the start of the last page when it lies past it."""
    return max(0, min(offset, (matching - 1) // limit * limit if matching else 0))


def listing_of(infos: list[DocumentInfo], search: str, offset: int, limit: int) -> DocumentListing:
    """A page of documents listed in full (for backends that cannot filter where they store them)."""
    needle = search.strip().casefold()
    matching = [d for d in infos if needle in d.doc_id.casefold() or needle in d.title.casefold()]
    limit = max(1, limit)
    offset = clamped_offset(offset, limit, len(matching))
    return DocumentListing(matching[offset:offset + limit], offset, len(matching), len(infos))


class LexicalScores(Protocol):
    """One query's keyword (BM25) scores: the best chunks, or any given chunk's."""

    def top(self, k: int) -> Ranking:
        """Best first; only chunks sharing at least one term with the query."""

    def of(self, chunk_ids: list[int]) -> list[float]:
        """Each given chunk's score, 0 where it shares no term (or is not in the version)."""


class IndexReader(Protocol):
    """One complete index version, read-only and safe to share between threads."""

    #: What built the version and what it holds; also readable by key like the format-1 dict
    #: (``manifest["documents"]`` maps doc_id to content hash), which a backend may return.
    manifest: Manifest | dict

    def __len__(self) -> int:
        """Number of chunks."""

    def search_dense(self, vector: np.ndarray, k: int) -> Ranking:
        """Chunks by cosine similarity to the (normalised) query vector."""

    def similarities(self, vector: np.ndarray, chunk_ids: list[int]) -> dict[int, float]:
        """Cosine similarity of the query vector to each given chunk."""

    def vectors(self, chunk_ids: list[int]) -> dict[int, np.ndarray]:
        """Stored chunk vectors by id (ids not in the version are left out)."""

    def lexical_scores(self, query: str) -> LexicalScores:
        """BM25 scores of the query against this version's chunks."""

    def chunks(self, chunk_ids: list[int]) -> dict[int, ChunkRecord]:
        """Stored chunks by id (ids not in the version are left out)."""

    def sentence_vectors(self, places: list[Place]) -> dict[Place, np.ndarray]:
        """Vectors the build stored for these sentence places, where it stored one."""

    def document(self, doc_id: str) -> Document:
        """One document with its full text (KeyError if it is not in the version)."""

    def documents(self) -> list[DocumentInfo]:
        """Every document of the version, by doc_id."""

    def document_page(self, search: str, offset: int, limit: int) -> "DocumentListing":
        """Documents ``offset`` … ``offset + limit`` (by doc_id) whose doc_id or title contains
        ``search`` (case-folded); the offset is clamped to the last page."""

    def close(self) -> None:
        """Release files or connections; the reader is not used afterwards."""


class IndexWriter(Protocol):
    """Writes the next version from the current one; nothing is visible before ``commit``."""

    def remove_document(self, doc_id: str) -> None:
        """Drop a document with its chunks, vectors and sentence vectors."""

    def add_document(
        self, doc: Document, chunks: list[Chunk], chunk_ids: list[int], vectors: np.ndarray,
        sentences: dict[tuple[int, int], np.ndarray] | None = None,
    ) -> None:
        """Add a document, its chunks under the given ids with their vectors, and its sentences'
        vectors by (start, end) in the document."""

    def __len__(self) -> int:
        """Number of chunks the written version holds so far."""

    def commit(self, manifest: dict) -> None:
        """Make the written version the current one, atomically."""

    def abort(self) -> None:
        """Discard everything written; the current version stays as it was."""
