"""Query → ranked passages: dense (FAISS), lexical (BM25) or both fused by reciprocal rank."""

from __future__ import annotations

import threading
from pathlib import Path

from .config import Settings, load_settings
from .embedding import Embedder, get_embedder
from .indexer import chunking_parameters
from .store import ChunkRecord, DocumentInfo, Snapshot, check_compatible, open_snapshot, read_current
from .types import Document, Passage

MODES = ("hybrid", "dense", "lexical")
_RRF_K = 60
_CANDIDATES = 100


def _reciprocal_rank_fusion(*rankings: list[tuple[int, float]]) -> list[tuple[int, float]]:
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, (chunk_id, _) in enumerate(ranking):
            fused[chunk_id] = fused.get(chunk_id, 0.0) + 1.0 / (_RRF_K + rank + 1)
    return sorted(fused.items(), key=lambda item: item[1], reverse=True)


def _overlaps(a: ChunkRecord, b: ChunkRecord) -> bool:
    """Same place in the same document: more than half of the shorter span is shared."""
    if a.doc_id != b.doc_id:
        return False
    shared = min(a.end, b.end) - max(a.start, b.start)
    return shared > 0.5 * min(a.end - a.start, b.end - b.start)


class Retriever:
    """Searches one index folder; follows the folder when another process rebuilds it."""

    def __init__(self, index_dir: str | Path, settings: Settings | None = None):
        self.index_dir = Path(index_dir)
        self.settings = settings or load_settings()
        self._lock = threading.Lock()
        self._version: str | None = None
        self._loaded: Snapshot | None = None

    @property
    def embedder(self) -> Embedder:
        s = self.settings
        return get_embedder(s.model, s.threads, s.batch_size)

    def snapshot(self) -> Snapshot:
        """The active index version, reopened when CURRENT has been swapped by a build."""
        with self._lock:
            version = read_current(self.index_dir)
            if self._loaded is None or version != self._version:
                snapshot = open_snapshot(self.index_dir)
                check_compatible(
                    snapshot.manifest, self.settings.model, chunking_parameters(self.settings),
                    self.index_dir,
                )
                self._loaded, self._version = snapshot, version
            return self._loaded

    def document(self, doc_id: str) -> Document:
        return self.snapshot().document(doc_id)

    def documents(self) -> list[DocumentInfo]:
        return self.snapshot().documents()

    def search(self, query: str, k: int = 5, *, mode: str | None = None) -> list[Passage]:
        if not isinstance(query, str) or not query.strip():
            raise ValueError("query must be a non-empty string")
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        mode = mode or self.settings.mode
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        snapshot = self.snapshot()
        if len(snapshot) == 0:
            return []
        vector = self.embedder.embed_query(query)
        candidates = max(_CANDIDATES, 4 * k)
        if mode == "dense":
            ranked = snapshot.search_dense(vector, candidates)
        elif mode == "lexical":
            ranked = snapshot.lexical.search(query, candidates)
        else:
            ranked = _reciprocal_rank_fusion(
                snapshot.search_dense(vector, candidates), snapshot.lexical.search(query, candidates)
            )
        return self._passages(snapshot, vector, ranked, k)

    def _passages(self, snapshot: Snapshot, vector, ranked: list[tuple[int, float]], k: int) -> list[Passage]:
        """The top k distinct places: a chunk overlapping a better one from the same spot is dropped."""
        records = snapshot.chunks([chunk_id for chunk_id, _ in ranked[: 4 * k]])
        chosen: list[tuple[ChunkRecord, float]] = []
        for chunk_id, score in ranked[: 4 * k]:
            record = records[chunk_id]
            if not any(_overlaps(record, kept) for kept, _ in chosen):
                chosen.append((record, score))
            if len(chosen) == k:
                break
        similarity = snapshot.similarities(vector, [r.chunk_id for r, _ in chosen])
        return [
            Passage(r.text, r.doc_id, r.title, score, r.start, r.end, r.page, r.chunk_id,
                    similarity[r.chunk_id])
            for r, score in chosen
        ]


_retrievers: dict[tuple[Path, Settings], Retriever] = {}
_retrievers_lock = threading.Lock()


def get_retriever(index_dir: str | Path = "index", settings: Settings | None = None) -> Retriever:
    """The process-wide retriever for an index folder and configuration."""
    settings = settings or load_settings()
    key = (Path(index_dir).resolve(), settings)
    with _retrievers_lock:
        if key not in _retrievers:
            _retrievers[key] = Retriever(index_dir, settings)
        return _retrievers[key]
