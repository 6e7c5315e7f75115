"""Approximate dense search per large segment (rag.index.ann) against exact search: recall@10
of the exact top 10, and time per query, on real MiniLM vectors and on synthetic ones shaped
like them.

Real: every sentence of the SciFact abstracts (``../shared/beir/scifact/corpus.jsonl``, ~50k),
embedded with the default model; queries are the 300 test questions (or held-out sentences).
Synthetic ("realistic"): centres are real sentence vectors; each synthetic vector is a centre
plus Gaussian noise whose size is chosen so that a vector's cosine to its centre matches the
measured cosine of a real sentence to its nearest other real sentence (reported as the spread).
Uniform random vectors, the unrealistic worst case (``--kinds real,realistic,uniform``), build
slowly and recall poorly: every neighbour is about as far as any other.

    python bench/ann_bench.py --rows 200000,1000000 --cache /tmp/scifact-vectors.npy
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SCIFACT = ROOT.parent / "shared" / "beir" / "scifact"
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9])")


def load_average() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def scifact_sentences() -> list[str]:
    sentences = []
    with open(SCIFACT / "corpus.jsonl") as f:
        for line in f:
            doc = json.loads(line)
            sentences.extend(s for s in SENTENCE_END.split(doc["text"]) if len(s) > 20)
    return sentences


def scifact_queries() -> list[str]:
    with open(SCIFACT / "queries.jsonl") as f:
        return [json.loads(line)["text"] for line in f]


def embed(texts: list[str]) -> np.ndarray:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from rag.config import DEFAULT_MODEL
    from rag.embedding import get_embedder

    return get_embedder(DEFAULT_MODEL, threads=0).embed_documents(texts, progress=True).astype(np.float32)


def real_vectors(cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """(sentence vectors, query vectors) of SciFact, embedded once and cached."""
    if not cache.exists():
        sentences, queries = scifact_sentences(), scifact_queries()
        vectors = embed(sentences + queries)
        np.save(cache, vectors)
        np.save(cache.with_suffix(".queries.npy"), vectors[len(sentences):])
        np.save(cache, vectors[:len(sentences)])
    return np.load(cache), np.load(cache.with_suffix(".queries.npy"))


def unit(vectors: np.ndarray) -> np.ndarray:
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def nearest_other_cosine(vectors: np.ndarray, sample: int = 2000) -> float:
    """Median cosine of a real sentence to its nearest other sentence: how tight real data is."""
    rows = np.random.default_rng(5).choice(len(vectors), size=min(sample, len(vectors)), replace=False)
    scores = vectors[rows] @ vectors.T
    scores[np.arange(len(rows)), rows] = -1
    return float(np.median(scores.max(axis=1)))


def realistic(centres: np.ndarray, rows: int, cosine: float, seed: int = 0) -> np.ndarray:
    """Rows drawn around real sentence vectors, each at about ``cosine`` to its centre."""
    rng = np.random.default_rng(seed)
    dimension = centres.shape[1]
    sigma = np.sqrt((1 / cosine**2 - 1) / dimension)  # |noise|² ≈ sigma² d; cos = 1/√(1 + sigma² d)
    out = np.empty((rows, dimension), dtype=np.float32)
    for start in range(0, rows, 100_000):
        n = min(100_000, rows - start)
        block = centres[rng.integers(len(centres), size=n)] + sigma * rng.standard_normal((n, dimension), dtype=np.float32)
        out[start:start + n] = unit(block)
    return out


def uniform(rows: int, dimension: int, seed: int = 0) -> np.ndarray:
    return unit(np.random.default_rng(seed).standard_normal((rows, dimension), dtype=np.float32))


def measure(name: str, vectors: np.ndarray, queries: np.ndarray, work: Path, breadths: list[int]) -> list[dict]:
    """Recall@10 of the approximate search against the exact one, and p50 time of each, through
    Segment.search (the reader's code path), single-threaded; CPU seconds of building."""
    from rag.index import ann
    from rag.index.segments import Segment

    path = work / f"{name}.faiss"
    wall, cpu = time.perf_counter(), time.process_time()
    ann.build(vectors, path)
    built = {"build_s": time.perf_counter() - wall, "build_cpu_s": time.process_time() - cpu}
    segment = Segment.__new__(Segment)
    segment.vectors, segment.chunk_ids = vectors, np.arange(len(vectors), dtype=np.int64)
    segment.ann = None
    exact, exact_times = [], []
    for query in queries:
        start = time.process_time()
        exact.append(set(segment.search(query, 10, None)[0].tolist()))
        exact_times.append(time.process_time() - start)
    segment.ann = ann.ApproximateIndex(path)
    results = []
    for breadth in breadths:
        ann.SEARCH_BREADTH = breadth
        found, times = 0, []
        for query, truth in zip(queries, exact):
            start = time.process_time()
            ids = segment.search(query, 10, None)[0]
            times.append(time.process_time() - start)
            found += len(truth & set(ids.tolist()))
        results.append({
            "vectors": name, "rows": len(vectors), "search_breadth": max(breadth, ann.RERANK_MIN),
            "recall@10": found / (10 * len(queries)), "approximate_p50_ms": 1000 * statistics.median(times),
            "exact_p50_ms": 1000 * statistics.median(exact_times), **built, "load": load_average()})
        print(json.dumps(results[-1]), flush=True)
    path.unlink()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="50000,200000,1000000", help="sizes of the synthetic sets")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/scifact-vectors.npy"))
    parser.add_argument("--breadths", default="100,128,256", help="SEARCH_BREADTH values")
    parser.add_argument("--kinds", default="real,realistic")
    parser.add_argument("--work", type=Path, default=Path("/tmp"))
    args = parser.parse_args()
    import faiss

    faiss.omp_set_num_threads(1)
    breadths = [int(b) for b in args.breadths.split(",")]
    sentences, queries = real_vectors(args.cache)
    kinds = args.kinds.split(",")
    report = {"threads": 1, "sentences": len(sentences), "queries": len(queries)}
    cosine = nearest_other_cosine(sentences)
    report["nearest_other_cosine_median"] = cosine
    print(json.dumps(report), flush=True)
    rows_list = [int(r) for r in args.rows.split(",") if r]
    query_sample = queries[:200]
    if "real" in kinds:
        measure("real", sentences, query_sample, args.work, breadths)
    for rows in rows_list:
        if "realistic" in kinds:
            measure(f"realistic-{rows}", realistic(sentences, rows, cosine), query_sample, args.work, breadths)
        if "uniform" in kinds:
            measure(f"uniform-{rows}", uniform(rows, sentences.shape[1]), query_sample, args.work, breadths)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--embed-only"]:
        real_vectors(Path(sys.argv[2]))
    else:
        main()
