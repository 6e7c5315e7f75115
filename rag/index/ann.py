"""Approximate dense search for a large segment: an inverted-file index (FAISS IVF) of 8-bit
scalar-quantised vectors, whose candidates are re-scored with the segment's exact vectors.

An exact scan costs time linear in a segment's rows (about 16 ms per 100k rows on one core);
the inverted file scans only the ``probes`` lists nearest the query, about 1/30 of the rows, in
a quarter of the bytes. The quantised scores only choose candidates: the similarities returned
are the exact ones, so only recall (measured: bench/README.md, bench/ann_bench.py) is
approximate. Deleted rows are filtered inside the search (a FAISS ``IDSelectorBitmap`` over the
live rows), so deleting never touches the file. The file is memory-mapped: opening it reads
only its header.
"""

from __future__ import annotations

import math
from pathlib import Path

import faiss
import numpy as np

ANN_FILE = "ann.faiss"
#: Segments with at least this many rows get an approximate index; below it an exact scan costs
#: a few milliseconds (bench/README.md, "Approximate search").
MIN_ROWS = 50_000
#: Lists scanned per query, as a fraction of the lists (at least MIN_PROBES).
PROBE_FRACTION = 1 / 24
MIN_PROBES = 16
#: Candidates re-scored exactly: this many per result asked for, at least RERANK_MIN.
RERANK_PER_RESULT = 4
RERANK_MIN = 100
#: Training rows per list (FAISS's k-means asks for at least 39).
TRAINING_PER_LIST = 40
_ADD_BLOCK = 65_536


def list_count(rows: int) -> int:
    """Inverted lists for a segment of ``rows`` rows: about 2·√rows, a few hundred rows each
    (and no more than k-means can train from the rows it has)."""
    return max(16, min(int(2 * math.sqrt(rows)), rows // 39))


def build(vectors: np.ndarray, path: Path) -> None:
    """Train and fill the index over ``vectors`` (normalised rows, possibly memory-mapped; read
    block by block) and write it to ``path``. Deterministic for the same vectors."""
    rows, dimension = vectors.shape
    lists = list_count(rows)
    quantizer = faiss.IndexFlatIP(dimension)
    index = faiss.IndexIVFScalarQuantizer(
        quantizer, dimension, lists, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = 1234
    index.cp.niter = 10  # FAISS's default for IVF training; fixed so builds cost the same
    sample = np.random.default_rng(0).choice(rows, size=min(rows, lists * TRAINING_PER_LIST), replace=False)
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
    """A segment's inverted file, memory-mapped, read-only and safe to share between threads."""

    def __init__(self, path: Path):
        self.index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP)
        self.lists = faiss.extract_index_ivf(self.index).nlist

    def __len__(self) -> int:
        return self.index.ntotal

    def probes(self) -> int:
        return min(self.lists, max(MIN_PROBES, round(self.lists * PROBE_FRACTION)))

    def candidates(self, vector: np.ndarray, k: int, live: LiveFilter | None) -> np.ndarray:
        """Rows (ascending) worth scoring exactly for the k best live rows."""
        count = max(RERANK_MIN, RERANK_PER_RESULT * k)
        params = faiss.SearchParametersIVF(nprobe=self.probes())
        if live is not None:
            params.sel = live.selector
        _, rows = self.index.search(np.ascontiguousarray(vector, dtype=np.float32).reshape(1, -1), count,
                                    params=params)
        rows = rows[0]
        return np.sort(rows[rows >= 0])
