"""Approximate dense search for a large segment: a FAISS HNSW graph over 8-bit scalar-quantised
vectors, whose candidates are re-scored with the segment's exact vectors.

An exact scan costs time linear in a segment's rows (7–8 ms of CPU per 100k rows on one core);
the graph visits a few thousand rows whatever the size. The quantised scores only choose
candidates: the similarities returned are the exact ones, so only recall is approximate
(measured on real MiniLM vectors and on synthetic ones shaped like them: bench/README.md,
bench/ann_bench.py; an inverted file (IVF) needed a quarter of its lists scanned for the same
recall on real questions). Deleted rows are filtered inside the search (a FAISS
``IDSelectorBitmap`` over the live rows), so deleting never touches the file.
"""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

ANN_FILE = "ann.faiss"
#: Segments with at least this many rows get an approximate index; below it an exact scan costs
#: a few milliseconds (bench/README.md, "Approximate search").
MIN_ROWS = 50_000
#: Graph degree and the breadth of its construction: recall 0.996 of exact on SciFact.
NEIGHBOURS = 32
CONSTRUCTION_BREADTH = 40
#: Candidates re-scored exactly: this many per result asked for, at least RERANK_MIN; the graph
#: search keeps at least SEARCH_BREADTH candidates open.
RERANK_PER_RESULT = 4
RERANK_MIN = 100
SEARCH_BREADTH = 128
_TRAINING_ROWS = 50_000
_ADD_BLOCK = 65_536


def build(vectors: np.ndarray, path: Path) -> None:
    """Build the index over ``vectors`` (normalised rows, possibly memory-mapped; read block by
    block, on FAISS's threads) and write it to ``path``."""
    rows, dimension = vectors.shape
    index = faiss.IndexHNSWSQ(dimension, faiss.ScalarQuantizer.QT_8bit, NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = CONSTRUCTION_BREADTH
    sample = np.random.default_rng(0).choice(rows, size=min(rows, _TRAINING_ROWS), replace=False)
    index.train(np.ascontiguousarray(vectors[np.sort(sample)], dtype=np.float32))
    for start in range(0, rows, _ADD_BLOCK):
        index.add(np.ascontiguousarray(vectors[start:start + _ADD_BLOCK], dtype=np.float32))
    faiss.write_index(index, str(path))


class LiveFilter:
    """The live rows of a segment as a FAISS selector (kept with the bitmap it points into)."""

    def __init__(self, live: np.ndarray):
        self.bitmap = np.packbits(live, bitorder="little")
        self.selector = faiss.IDSelectorBitmap(len(live), faiss.swig_ptr(self.bitmap))


class ApproximateIndex:
    """A segment's graph, read-only and safe to share between threads (its quantised vectors
    memory-mapped where FAISS allows)."""

    def __init__(self, path: Path):
        self.index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP)

    def __len__(self) -> int:
        return self.index.ntotal

    def candidates(self, vector: np.ndarray, k: int, live: LiveFilter | None) -> np.ndarray:
        """Rows (ascending) worth scoring exactly for the k best live rows."""
        count = max(RERANK_MIN, RERANK_PER_RESULT * k)
        params = faiss.SearchParametersHNSW(efSearch=max(SEARCH_BREADTH, count))
        if live is not None:
            params.sel = live.selector
        _, rows = self.index.search(np.ascontiguousarray(vector, dtype=np.float32).reshape(1, -1), count,
                                    params=params)
        rows = rows[0]
        return np.sort(rows[rows >= 0])
