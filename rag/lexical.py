"""BM25 over chunk texts (bm25s), kept on disk beside the vector index and rebuilt only at index time."""

from __future__ import annotations

import json
from pathlib import Path

import bm25s
import numpy as np

from .text import correction, deletions, index_tokens

_IDS_FILE = "chunk_ids.json"


class LexicalScores:
    """One query's BM25 score for every chunk: the best ones, or any chunk's by id."""

    def __init__(self, chunk_ids: np.ndarray, scores: np.ndarray):
        self._chunk_ids = chunk_ids  # ascending, as the index stores them
        self._scores = scores

    def top(self, k: int) -> list[tuple[int, float]]:
        """(chunk_id, score) best first; only chunks sharing at least one term with the query."""
        k = min(k, len(self._scores))
        if k < 1:
            return []
        rows = np.argpartition(-self._scores, k - 1)[:k]
        rows = rows[np.argsort(-self._scores[rows], kind="stable")]
        return [(int(self._chunk_ids[r]), float(self._scores[r])) for r in rows if self._scores[r] > 0]

    def of(self, chunk_ids: list[int]) -> list[float]:
        """Scores of the given chunks (0 for ids the index does not hold)."""
        if not len(self._chunk_ids):
            return [0.0] * len(chunk_ids)
        rows = np.searchsorted(self._chunk_ids, chunk_ids)
        rows = np.minimum(rows, len(self._chunk_ids) - 1)
        found = self._chunk_ids[rows] == np.asarray(chunk_ids)
        return np.where(found, self._scores[rows], 0.0).tolist()


def _ascending(chunk_ids: list[int]) -> np.ndarray:
    """Ids as an array; ascending order is what lets scores be looked up by id in O(log n)."""
    ids = np.asarray(chunk_ids, dtype=np.int64)
    if np.any(np.diff(ids) <= 0):
        raise ValueError("chunk ids must be unique and ascending")
    return ids


_NO_SCORES = LexicalScores(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))


class LexicalIndex:
    """Keyword scores for chunks, addressed by the same stable ids as the vector index."""

    def __init__(self, model: bm25s.BM25 | None, chunk_ids: list[int]):
        self._model = model
        self._chunk_ids = _ascending(chunk_ids)
        self._by_deletion: dict[str, list[str]] | None = None
        self._frequency: dict[str, int] = {}

    @classmethod
    def build(cls, chunk_ids: list[int], texts: list[str]) -> "LexicalIndex":
        _ascending(chunk_ids)
        if not texts:
            return cls(None, [])
        model = bm25s.BM25()
        model.index(index_tokens(texts), show_progress=False)
        return cls(model, chunk_ids)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        if self._model is not None:
            self._model.save(str(directory), show_progress=False)
        (directory / _IDS_FILE).write_text(json.dumps(self._chunk_ids.tolist()))

    @classmethod
    def load(cls, directory: Path) -> "LexicalIndex":
        chunk_ids = json.loads((directory / _IDS_FILE).read_text())
        if not chunk_ids:
            return cls(None, [])
        model = bm25s.BM25.load(str(directory), show_progress=False, verbosity=0)
        return cls(model, chunk_ids)

    def __len__(self) -> int:
        return len(self._chunk_ids)

    def scores(self, query: str, spelling: bool = True) -> LexicalScores:
        """Score every chunk once; hybrid search needs both the top list and other chunks' scores.

        ``spelling``: a query term the chunks never use is read as the most frequent one they do
        use one typo away, if any (measured: bench/README.md, fusion sweep)."""
        if self._model is None:
            return _NO_SCORES
        vocab = self._model.vocab_dict
        terms = index_tokens([query])[0]
        if spelling:
            terms = [t if t in vocab else self._correction(t) or t for t in terms]
        terms = [t for t in terms if t in vocab]
        if not terms:
            return LexicalScores(self._chunk_ids, np.zeros(len(self._chunk_ids), dtype=np.float32))
        return LexicalScores(self._chunk_ids, self._model.get_scores(terms))

    def vocabulary(self) -> dict[str, int]:
        """Every index term with its document frequency (number of chunks using it)."""
        if self._model is None:
            return {}
        indptr = self._model.scores["indptr"]
        columns = len(indptr) - 1
        return {t: int(indptr[i + 1] - indptr[i]) for t, i in self._model.vocab_dict.items() if i < columns}

    def _correction(self, term: str) -> str | None:
        if self._by_deletion is None:
            frequency = self.vocabulary()
            by_deletion: dict[str, list[str]] = {}
            for known in frequency:
                if len(known) >= 4:
                    for variant in deletions(known) | {known}:
                        by_deletion.setdefault(variant, []).append(known)
            self._frequency, self._by_deletion = frequency, by_deletion
        return correction(term, self._by_deletion, self._frequency)

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """(chunk_id, BM25 score) best first; only chunks sharing at least one term with the query."""
        return self.scores(query).top(k)
