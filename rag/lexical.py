"""BM25 over chunk texts (bm25s), kept on disk beside the vector index and rebuilt only at index time."""

from __future__ import annotations

import json
from pathlib import Path

import bm25s
import numpy as np
import Stemmer

_STEMMER = Stemmer.Stemmer("english")
_IDS_FILE = "chunk_ids.json"


def _tokenize(texts: list[str]) -> list[list[str]]:
    return bm25s.tokenize(
        texts, stopwords="en", stemmer=_STEMMER, return_ids=False, show_progress=False
    )


class LexicalIndex:
    """Keyword scores for chunks, addressed by the same stable ids as the vector index."""

    def __init__(self, model: bm25s.BM25 | None, chunk_ids: list[int]):
        self._model = model
        self._chunk_ids = np.asarray(chunk_ids, dtype=np.int64)

    @classmethod
    def build(cls, chunk_ids: list[int], texts: list[str]) -> "LexicalIndex":
        if not texts:
            return cls(None, [])
        model = bm25s.BM25()
        model.index(_tokenize(texts), show_progress=False)
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

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """(chunk_id, BM25 score) best first; only chunks sharing at least one term with the query."""
        if self._model is None or k < 1:
            return []
        vocab = self._model.vocab_dict
        terms = [t for t in _tokenize([query])[0] if t in vocab]
        if not terms:
            return []
        k = min(k, len(self._chunk_ids))
        rows, scores = self._model.retrieve([terms], k=k, show_progress=False, n_threads=1)
        return [
            (int(self._chunk_ids[row]), float(score))
            for row, score in zip(rows[0], scores[0])
            if score > 0
        ]
