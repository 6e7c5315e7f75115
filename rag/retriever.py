"""Query → ranked passages: dense (FAISS), lexical (BM25) or both fused.

Hybrid fusion is a convex combination of the two scores, each min-max normalised per query over
its own top list: dense similarity finds paraphrases, BM25 finds exact names, numbers and rare
terms, and the normalisation puts a query's best match of each kind at 1. A candidate found by
one list only still gets its true score from the other (not a guess), so a chunk's fused score
does not depend on how many candidates were taken. On SciFact this beat reciprocal rank fusion;
see bench/README.md for the measurements behind the weight.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from .config import Settings, load_settings
from .embedding import Embedder, embedder_for
from .indexer import chunking_parameters
from .index.backends import current_version, open_reader
from .store import Snapshot, check_compatible
from .types import ChunkRecord, Document, DocumentInfo, Passage, Place

MODES = ("hybrid", "dense", "lexical")
#: Candidates taken from each list, and the depth whose scores set the normalisation range.
CANDIDATES = 100
#: Most chunks one returned passage is merged from (neighbouring chunks share a sentence).
MERGED_CHUNKS = 2

Ranking = list[tuple[int, float]]
ScoreLookup = Callable[[list[int]], list[float]]


def _normalised(scores: list[float], top: list[float], lowest: float | None) -> np.ndarray:
    """``scores`` mapped so a list's best is 1 and its floor 0.

    The floor is the score at rank :data:`CANDIDATES`, whatever the number of candidates taken,
    so a chunk's normalised score never depends on the depth asked for. A list shorter than that
    holds every chunk with a score, so its floor is the lowest possible (``lowest``: 0 for BM25,
    whose list leaves out chunks without a query term) or, for dense, its last.
    """
    if not top:
        return np.zeros(len(scores))
    if len(top) >= CANDIDATES:
        floor = top[CANDIDATES - 1]
    else:
        floor = top[-1] if lowest is None else lowest
    best = top[0]
    return (np.asarray(scores, dtype=np.float64) - floor) / ((best - floor) or 1.0)


def _scores_of(candidates: list[int], ranking: Ranking, look_up: ScoreLookup) -> list[float]:
    """Each candidate's score in one list: from the ranking, else looked up (true, not guessed)."""
    known = dict(ranking)
    missing = [c for c in candidates if c not in known]
    known.update(zip(missing, look_up(missing)))
    return [known[c] for c in candidates]


def _fuse(
    dense: Ranking, dense_of: ScoreLookup, lexical: Ranking, lexical_of: ScoreLookup, dense_weight: float
) -> Ranking:
    """Convex combination of normalised dense and BM25 scores over both lists' chunks."""
    candidates = list(dict.fromkeys([c for c, _ in dense] + [c for c, _ in lexical]))
    dense_part = _normalised(_scores_of(candidates, dense, dense_of), [s for _, s in dense], None)
    lexical_part = _normalised(_scores_of(candidates, lexical, lexical_of), [s for _, s in lexical], 0.0)
    fused = dense_weight * dense_part + (1.0 - dense_weight) * lexical_part
    order = np.argsort(-fused, kind="stable")
    return [(candidates[i], float(fused[i])) for i in order]


def _same_place(a: ChunkRecord, b: ChunkRecord) -> bool:
    """Overlapping spans of one document, or the same text in two documents (a copy)."""
    if a.doc_id == b.doc_id:
        return min(a.end, b.end) > max(a.start, b.start)
    return " ".join(a.text.split()).casefold() == " ".join(b.text.split()).casefold()


def _merged(a: ChunkRecord, b: ChunkRecord) -> ChunkRecord:
    """The better chunk ``a`` widened to cover overlapping ``b`` (a copy elsewhere is dropped)."""
    if a.doc_id != b.doc_id:
        return a
    text = a.text
    if b.start < a.start:
        text = b.text[: a.start - b.start] + text
    if b.end > a.end:
        text = text + b.text[len(b.text) - (b.end - a.end):]
    start = min(a.start, b.start)
    page = b.page if b.start < a.start else a.page
    return replace(a, text=text, start=start, end=max(a.end, b.end), page=page)


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
        return embedder_for(s)

    def snapshot(self) -> Snapshot:
        """The active index version, pinned: a request that holds it reads that version to the
        end, and a build cannot remove it meanwhile. When a build has swapped CURRENT, the new
        version is opened outside the lock (questions keep using the old one until then) and
        swapped in; the old one is released when its last request drops it."""
        version = current_version(self.settings, self.index_dir)
        with self._lock:
            if self._loaded is not None and version == self._version:
                return self._loaded
        snapshot = open_reader(self.settings, self.index_dir)
        check_compatible(
            snapshot.manifest, self.settings.model, chunking_parameters(self.settings), self.index_dir,
        )
        with self._lock:
            self._loaded, self._version = snapshot, version
            return snapshot

    def document(self, doc_id: str) -> Document:
        return self.snapshot().document(doc_id)

    def documents(self) -> list[DocumentInfo]:
        return self.snapshot().documents()

    def sentence_vectors(self, places: list[Place]) -> dict[Place, np.ndarray]:
        """Vectors the build stored for these sentences (doc_id, start, end), where it did."""
        return self.snapshot().sentence_vectors(places)

    def search(
        self, query: str, k: int = 5, *, mode: str | None = None, snapshot: Snapshot | None = None
    ) -> list[Passage]:
        """The k best passages, each a different place: overlapping chunks are merged.

        ``snapshot`` pins the index version (a request that reads several times passes the one it
        started with); by default the active version."""
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        snapshot, vector, ranked = self._rank(query, 4 * k, mode, snapshot)
        return self._passages(snapshot, vector, ranked, k)

    def ranked_chunks(
        self, query: str, depth: int, *, mode: str | None = None, snapshot: Snapshot | None = None
    ) -> list[tuple[ChunkRecord, float]]:
        """Candidate chunks with their scores, best first, as :meth:`search` sees them before
        merging; at least ``depth`` from each list. Evaluation ranks documents by this."""
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be a positive integer, got {depth!r}")
        snapshot, _, ranked = self._rank(query, depth, mode, snapshot)
        records = snapshot.chunks([chunk_id for chunk_id, _ in ranked])
        return [(records[chunk_id], score) for chunk_id, score in ranked]

    def _rank(
        self, query: str, depth: int, mode: str | None, snapshot: Snapshot | None
    ) -> tuple[Snapshot, np.ndarray, Ranking]:
        if not isinstance(query, str) or not query.strip():
            raise ValueError("query must be a non-empty string")
        mode = mode or self.settings.mode
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        snapshot = snapshot or self.snapshot()
        vector = self.embedder.embed_query(query)
        if len(snapshot) == 0:
            return snapshot, vector, []
        depth = max(CANDIDATES, depth)
        if mode == "dense":
            return snapshot, vector, snapshot.search_dense(vector, depth)
        lexical_scores = snapshot.lexical_scores(query)
        lexical = lexical_scores.top(depth)
        if mode == "lexical":
            return snapshot, vector, lexical
        dense = snapshot.search_dense(vector, depth)

        def similarities(ids: list[int]) -> list[float]:
            found = snapshot.similarities(vector, ids)
            return [found[i] for i in ids]

        ranked = _fuse(dense, similarities, lexical, lexical_scores.of, self.settings.dense_weight)
        return snapshot, vector, ranked

    def _passages(self, snapshot: Snapshot, vector, ranked: Ranking, k: int) -> list[Passage]:
        """The top k different places: a chunk overlapping a better one is merged into it.

        A passage absorbs at most ``MERGED_CHUNKS`` chunks and never grows into another passage,
        so chains of overlapping neighbours do not swallow a whole document; a chunk that cannot
        merge is dropped, its place being shown already.
        """
        ranked = ranked[: 4 * k]
        records = snapshot.chunks([chunk_id for chunk_id, _ in ranked])
        chosen: list[list] = []  # [record, score, chunks merged into it]
        for chunk_id, score in ranked:
            record = records[chunk_id]
            place = next((entry for entry in chosen if _same_place(entry[0], record)), None)
            if place is None:
                if len(chosen) == k:
                    break
                chosen.append([record, score, 1])
            elif place[2] < MERGED_CHUNKS and place[0].doc_id == record.doc_id:
                widened = _merged(place[0], record)
                if not any(_same_place(other[0], widened) for other in chosen if other is not place):
                    place[0], place[2] = widened, place[2] + 1
        similarity = snapshot.similarities(vector, [r.chunk_id for r, _, _ in chosen])
        return [
            Passage(r.text, r.doc_id, r.title, score, r.start, r.end, r.page, r.chunk_id,
                    similarity[r.chunk_id])
            for r, score, _ in chosen
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
