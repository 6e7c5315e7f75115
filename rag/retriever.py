"""Query → ranked passages or documents: dense (FAISS), lexical (BM25) or both fused.

Hybrid fusion is a convex combination of the two scores, each normalised per query by theoretical
min-max: a list's lowest possible score (cosine −1, BM25 0) maps to 0 and the query's best match
of that kind to 1. Dense similarity finds paraphrases, BM25 finds exact names, numbers and rare
terms. The floor is a property of the scorer, not of a rank's score, so fused scores are bounded
in [0, 1], a chunk's score never depends on how many candidates were taken or how bunched a list's
top is, and a chunk missing from one list still gets its true score there (looked up, not
guessed). bench/fusion_sweep.py measured this against the alternatives (rank-floor min-max,
z-score, reciprocal rank fusion) on two data sets; see bench/README.md.

A document's score is its best passage's: documents as results (``search_documents``) rank
documents, carry that best passage, and count documents, not chunks.
"""

from __future__ import annotations

import threading
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .config import Settings, load_settings
from .embedding import Embedder, embedder_for
from .chunking import chunking_parameters
from .index.backends import current_version, open_reader
from .store import Snapshot, check_compatible
from .types import ChunkRecord, Document, DocumentInfo, Passage, Place

MODES = ("hybrid", "dense", "lexical")
UNITS = ("passage", "document")
#: Fewest chunks taken from each list; fusion ranks their union (depth measured, bench/README.md).
CANDIDATES = 100
#: The lowest score each list can give: the 0 of theoretical min-max normalisation.
DENSE_FLOOR = -1.0
LEXICAL_FLOOR = 0.0
#: Most chunks one returned passage is merged from (neighbouring chunks share a sentence).
MERGED_CHUNKS = 2
#: Fewest chunk texts read at a time while walking down a ranking.
_BATCH = 16

Ranking = list[tuple[int, float]]
ScoreLookup = Callable[[list[int]], list[float]]


def _normalised(scores: np.ndarray, best: float, floor: float) -> np.ndarray:
    """``scores`` mapped from [floor, the query's best] onto [0, 1], clipped: bounded, and the
    same whatever the number of candidates."""
    if best <= floor:
        return np.zeros(len(scores))
    return np.clip((scores - floor) / (best - floor), 0.0, 1.0)


def _fuse(
    dense: Ranking, dense_of: ScoreLookup, lexical: Ranking, lexical_of: ScoreLookup, dense_weight: float
) -> Ranking:
    """Convex combination of normalised dense and BM25 scores over both lists' chunks, best first.

    A chunk missing from one list gets its true score there (looked up, not guessed). Each list's
    best is its first entry: both lists are exact top lists of their scorer."""
    in_dense = {c for c, _ in dense}
    only_lexical = [c for c, _ in lexical if c not in in_dense]
    candidates = [c for c, _ in dense] + only_lexical
    if not candidates:
        return []
    dense_scores = np.array([s for _, s in dense] + dense_of(only_lexical), dtype=np.float64)
    lexical_scores = np.array(lexical_of(candidates), dtype=np.float64)
    dense_best = dense[0][1] if dense else DENSE_FLOOR
    lexical_best = lexical[0][1] if lexical else LEXICAL_FLOOR
    fused = (dense_weight * _normalised(dense_scores, dense_best, DENSE_FLOOR)
             + (1.0 - dense_weight) * _normalised(lexical_scores, lexical_best, LEXICAL_FLOOR))
    order = np.argsort(-fused, kind="stable")
    return list(zip(np.array(candidates, dtype=np.int64)[order].tolist(), fused[order].tolist()))


def _spaced(text: str) -> str:
    """Text as a copy of it elsewhere would compare: spacing and case ignored."""
    return " ".join(text.split()).casefold()


def _overlaps(a: ChunkRecord, b: ChunkRecord) -> bool:
    return min(a.end, b.end) > max(a.start, b.start)


def _merged(a: ChunkRecord, b: ChunkRecord) -> ChunkRecord:
    """The better chunk ``a`` widened to cover overlapping ``b`` of the same document."""
    text = a.text
    if b.start < a.start:
        text = b.text[: a.start - b.start] + text
    if b.end > a.end:
        text = text + b.text[len(b.text) - (b.end - a.end):]
    page = b.page if b.start < a.start else a.page
    return ChunkRecord(a.chunk_id, a.doc_id, a.title, text, min(a.start, b.start), max(a.end, b.end), page)


class _DocumentPlaces:
    """One document's places: spans that never overlap, in text order, so the places a chunk
    overlaps are found by two binary searches however many the document has."""

    __slots__ = ("starts", "ends", "entries")

    def __init__(self):
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.entries: list[list] = []

    def overlapping(self, record: ChunkRecord) -> list[list]:
        """The places ``record`` overlaps, in text order."""
        near = self.entries[bisect_right(self.ends, record.start):bisect_left(self.starts, record.end)]
        return [entry for entry in near if _overlaps(entry[0], record)]

    def add(self, entry: list) -> None:
        at = bisect_left(self.starts, entry[0].start)
        self.starts.insert(at, entry[0].start)
        self.ends.insert(at, entry[0].end)
        self.entries.insert(at, entry)

    def widen(self, entry: list, widened: ChunkRecord) -> None:
        at = bisect_left(self.starts, entry[0].start)
        self.starts[at], self.ends[at] = widened.start, widened.end
        entry[0] = widened


class _Places:
    """The passages chosen so far, found by document and by text, so each chunk is placed in
    about constant time: merged into the passage it overlaps, dropped as a copy, or a new place."""

    #: Texts are compared first by their first few words, in full only when those agree.
    _LEAD_WORDS = 8

    def __init__(self, k: int):
        self.k = k
        self.chosen: list[list] = []  # [record, score, chunks merged into it, rank of the place]
        self._by_doc: dict[str, _DocumentPlaces] = {}
        self._texts: dict[str, list[str]] = {}  # first words → placed chunks' texts

    def add(self, record: ChunkRecord, score: float) -> bool:
        """Place ``record``; False once it would need a (k + 1)th place: the walk is over."""
        same_doc = self._by_doc.get(record.doc_id)
        if same_doc is not None:
            overlapping = same_doc.overlapping(record)
            if overlapping:  # merged into the first place chosen of those it overlaps, or dropped
                self._widen(min(overlapping, key=lambda entry: entry[3]), record, same_doc)
                return True
        lead = self._lead(record.text)
        if self._is_copy(lead, record.text):
            return True
        if len(self.chosen) == self.k:
            return False
        entry = [record, score, 1, len(self.chosen)]
        self.chosen.append(entry)
        if same_doc is None:
            same_doc = self._by_doc[record.doc_id] = _DocumentPlaces()
        same_doc.add(entry)
        self._texts.setdefault(lead, []).append(record.text)
        return True

    def _widen(self, place: list, record: ChunkRecord, same_doc: _DocumentPlaces) -> None:
        """Merge ``record`` into the place it overlaps, unless the place holds enough chunks or
        would then overlap another place of the document."""
        if place[2] < MERGED_CHUNKS:
            widened = _merged(place[0], record)
            if all(entry is place for entry in same_doc.overlapping(widened)):
                same_doc.widen(place, widened)
                place[2] += 1
                self._texts.setdefault(self._lead(record.text), []).append(record.text)

    def _is_copy(self, lead: str, text: str) -> bool:
        """The same text as a placed chunk (of another document: overlaps were checked first)."""
        shown = self._texts.get(lead)
        return bool(shown) and _spaced(text) in {_spaced(t) for t in shown}

    def _lead(self, text: str) -> str:
        return " ".join(text.split(None, self._LEAD_WORDS)[: self._LEAD_WORDS]).casefold()


class _Cosines:
    """The query vector's cosine with chunks: known from the dense list, else looked up once."""

    def __init__(self, snapshot: Snapshot, vector: np.ndarray):
        self.snapshot, self.vector = snapshot, vector
        self.known: dict[int, float] = {}

    def of(self, chunk_ids: list[int]) -> list[float]:
        missing = [i for i in chunk_ids if i not in self.known]
        if missing:
            self.known.update(self.snapshot.similarities(self.vector, missing))
        return [self.known[i] for i in chunk_ids]


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
        _check_k(k)
        snapshot, cosines, ranked = self._rank(query, 2 * k, mode, snapshot)
        places = _Places(k)
        start = 0
        while start < len(ranked):  # texts read in batches, only as deep as needed
            batch = ranked[start : start + _next_batch(k, len(places.chosen), start)]
            start += len(batch)
            records = snapshot.chunks([chunk_id for chunk_id, _ in batch])
            if not all(places.add(records[chunk_id], score) for chunk_id, score in batch):
                break
        similarity = cosines.of([entry[0].chunk_id for entry in places.chosen])
        return [_passage(entry[0], entry[1], cosine) for entry, cosine in zip(places.chosen, similarity)]

    def search_documents(
        self, query: str, k: int = 5, *, mode: str | None = None, snapshot: Snapshot | None = None
    ) -> list[Passage]:
        """The k best documents, each as its best passage: a document scores what its best chunk
        scores, so ``k`` counts documents however many of their chunks match."""
        _check_k(k)
        depth = 2 * k
        while True:
            snapshot, cosines, ranked = self._rank(query, depth, mode, snapshot)
            best = self._best_per_document(snapshot, ranked, k)
            if len(best) == k or depth >= len(snapshot):  # enough, or every chunk was a candidate
                break
            depth *= 4  # the top chunks belong to fewer than k documents: look deeper
        similarity = cosines.of([r.chunk_id for r, _ in best])
        return [_passage(r, score, cosine) for (r, score), cosine in zip(best, similarity)]

    def ranked_chunks(
        self, query: str, depth: int, *, mode: str | None = None, snapshot: Snapshot | None = None
    ) -> list[tuple[ChunkRecord, float]]:
        """Candidate chunks with their scores, best first, as :meth:`search` sees them before
        merging; at least ``depth`` from each list."""
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be a positive integer, got {depth!r}")
        snapshot, _, ranked = self._rank(query, depth, mode, snapshot)
        records = snapshot.chunks([chunk_id for chunk_id, _ in ranked])
        return [(records[chunk_id], score) for chunk_id, score in ranked]

    def _rank(
        self, query: str, depth: int, mode: str | None, snapshot: Snapshot | None
    ) -> tuple[Snapshot, _Cosines, Ranking]:
        if not isinstance(query, str) or not query.strip():
            raise ValueError("query must be a non-empty string")
        mode = mode or self.settings.mode
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        snapshot = snapshot or self.snapshot()
        cosines = _Cosines(snapshot, self.embedder.embed_query(query))
        if len(snapshot) == 0:
            return snapshot, cosines, []
        depth = max(CANDIDATES, depth)
        if mode != "lexical":
            dense = snapshot.search_dense(cosines.vector, depth)
            cosines.known.update(dense)
            if mode == "dense":
                return snapshot, cosines, dense
        lexical_scores = snapshot.lexical_scores(query)
        lexical = lexical_scores.top(depth)
        if mode == "lexical":
            return snapshot, cosines, lexical
        ranked = _fuse(dense, cosines.of, lexical, lexical_scores.of, self.settings.dense_weight)
        return snapshot, cosines, ranked

    @staticmethod
    def _best_per_document(snapshot: Snapshot, ranked: Ranking, k: int) -> list[tuple[ChunkRecord, float]]:
        """Each document's first (best) chunk in ``ranked``, for the k best documents."""
        best: dict[str, tuple[ChunkRecord, float]] = {}
        start = 0
        while start < len(ranked):
            batch = ranked[start : start + _next_batch(k, len(best), start)]
            start += len(batch)
            records = snapshot.chunks([chunk_id for chunk_id, _ in batch])
            for chunk_id, score in batch:
                record = records[chunk_id]
                if record.doc_id not in best:
                    best[record.doc_id] = (record, score)
                    if len(best) == k:
                        return list(best.values())
        return list(best.values())


def _next_batch(k: int, found: int, read: int) -> int:
    """How many ranked chunks to read next: 2k at first (what 9 walks in 10 need, measured on
    both sets), then twice the places still missing."""
    return max(_BATCH, 2 * k if read == 0 else 2 * (k - found))


def _check_k(k) -> None:
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")


def _passage(record: ChunkRecord, score: float, similarity: float) -> Passage:
    return Passage(record.text, record.doc_id, record.title, score, record.start, record.end,
                   record.page, record.chunk_id, similarity)


_retrievers: dict[tuple[Path, Settings], Retriever] = {}
_retrievers_lock = threading.Lock()


def get_retriever(index_dir: str | Path | None = None, settings: Settings | None = None) -> Retriever:
    """The process-wide retriever for an index folder (default: the settings') and configuration."""
    settings = settings or load_settings()
    index_dir = index_dir if index_dir is not None else settings.index_dir
    key = (Path(index_dir).resolve(), settings)
    with _retrievers_lock:
        if key not in _retrievers:
            _retrievers[key] = Retriever(index_dir, settings)
        return _retrievers[key]
