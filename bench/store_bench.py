"""Store-level benchmark of the index layer: main's store (one folder per version, bm25s rebuilt
per build) beside this branch's (immutable segments), same synthetic data, same run.

Simulated: texts are synthetic (Zipf-distributed made-up words, 10 chunks of ~60 words per
document, 4 sentences per chunk), vectors are random unit vectors drawn around 2,000 centres
(no model runs: "excluding embedding" is literal). Every number comes from the writers and
readers themselves (``VersionWriter``, ``open_snapshot``), not from the indexer.

    python bench/store_bench.py --chunks 100000
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from rag.types import Chunk, Document  # noqa: E402

MAIN_COMMIT = "c884ea2"  # main when this branch started
DIMENSION = 384
CHUNKS_PER_DOC = 10
SENTENCES_PER_CHUNK = 4
WORDS_PER_SENTENCE = 15


def load_average() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def main_store_package(work: Path) -> Path:
    """main's store, lexical, types and text modules as package ``rag_main`` under ``work``."""
    package = work / "rag_main"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text("")
    for name in ("store", "lexical", "types", "text"):
        source = subprocess.run(["git", "-C", str(ROOT), "show", f"{MAIN_COMMIT}:rag/{name}.py"],
                                check=True, capture_output=True, text=True).stdout
        (package / f"{name}.py").write_text(source)
    return work


def store_module(implementation: str, work: Path):
    import faiss

    faiss.omp_set_num_threads(1)  # both stores on one thread, as rag runs with RAG_THREADS=1
    if implementation == "main":
        sys.path.insert(0, str(main_store_package(work)))
        store = importlib.import_module("rag_main.store")
        return store, store.VersionWriter
    from rag import store
    from rag.index.writer import VersionWriter
    return store, VersionWriter


class Synthetic:
    """Deterministic documents, chunks, vectors and sentence vectors."""

    def __init__(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        syllables = ["ka", "lo", "mi", "ne", "tu", "ra", "si", "po", "de", "ga", "vo", "xi", "be", "fu"]
        self.words = ["".join(rng.choice(syllables, size=rng.integers(2, 5))) for _ in range(60_000)]
        ranks = np.arange(1, len(self.words) + 1)
        self.cdf = np.cumsum(1 / ranks) / np.sum(1 / ranks)
        self.centres = rng.normal(size=(2000, DIMENSION)).astype(np.float32)

    def document(self, n: int, version: int = 0):
        rng = np.random.default_rng((n, version))
        count = CHUNKS_PER_DOC * SENTENCES_PER_CHUNK
        picks = np.searchsorted(self.cdf, rng.random(count * WORDS_PER_SENTENCE)).reshape(count, -1)
        sentences = [" ".join(self.words[i] for i in row).capitalize() + "." for row in picks]
        text = " ".join(sentences)
        title = f"Document {n} revision {version}"
        chunks, offset, sentence_spans = [], 0, {}
        for c in range(CHUNKS_PER_DOC):
            start = offset
            for s in sentences[c * SENTENCES_PER_CHUNK:(c + 1) * SENTENCES_PER_CHUNK]:
                sentence_spans[(offset, offset + len(s))] = None
                offset += len(s) + 1
            chunks.append(Chunk(f"doc-{n}", c, text[start:offset - 1], start, offset - 1))
        centre = self.centres[rng.integers(len(self.centres), size=CHUNKS_PER_DOC)]
        vectors = centre + 0.6 * rng.normal(size=(CHUNKS_PER_DOC, DIMENSION)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        spans = {span: vectors[i // SENTENCES_PER_CHUNK] for i, span in enumerate(sentence_spans)}
        doc = Document(f"doc-{n}", title, text, f"hash-{n}-{version}")
        return doc, chunks, vectors.astype(np.float32), spans

    def query_vectors(self, count: int) -> np.ndarray:
        rng = np.random.default_rng(123)
        q = self.centres[rng.integers(len(self.centres), size=count)] + 0.6 * rng.normal(
            size=(count, DIMENSION)).astype(np.float32)
        return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)

    def query_texts(self, count: int) -> list[str]:
        rng = np.random.default_rng(321)
        picks = np.searchsorted(self.cdf, rng.random((count, 4)))
        return [" ".join(self.words[i] for i in row) for row in picks]


def manifest(hashes: dict, next_id: int) -> dict:
    return {"model": "synthetic", "dimension": DIMENSION, "chunking": {}, "documents": hashes,
            "next_chunk_id": next_id, "built_at": "now"}


def disk_usage(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def build(implementation: str, index_dir: Path, documents: int, work: Path) -> dict:
    """A full build through the writer; run in a child process so that its peak RSS is its own."""
    store, VersionWriter = store_module(implementation, work)
    data = Synthetic()
    start = time.perf_counter()
    writer = VersionWriter(index_dir, None, DIMENSION)
    hashes = {}
    for n in range(documents):
        doc, chunks, vectors, spans = data.document(n)
        writer.add_document(doc, chunks, list(range(n * CHUNKS_PER_DOC, (n + 1) * CHUNKS_PER_DOC)), vectors, spans)
        hashes[doc.doc_id] = doc.content_hash
    writer.commit(manifest(hashes, documents * CHUNKS_PER_DOC))
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "disk_mb": disk_usage(index_dir) / 2**20, "load": load_average()}


def update(store, VersionWriter, index_dir: Path, documents: int, data: Synthetic, round_: int) -> dict:
    """Change 1 document, remove 20, add 1: the cost of the change, without embedding; the disk
    in use at its peak (new version written, old not yet removed)."""
    peak = {"bytes": 0}
    target = store if hasattr(store, "_write_durably") else importlib.import_module("rag.index.writer")
    name = "_write_durably" if hasattr(target, "_write_durably") else "write_durably"
    original = getattr(target, name)

    def measuring(path, text):
        if path.name == "CURRENT":
            peak["bytes"] = disk_usage(index_dir)
        return original(path, text)

    setattr(target, name, measuring)
    try:
        start = time.perf_counter()
        base = store.open_snapshot(index_dir)
        opened = time.perf_counter() - start
        hashes = dict(base.manifest["documents"])
        next_id = base.manifest["next_chunk_id"]
        writer = VersionWriter(index_dir, base, DIMENSION)
        changed, _, _, _ = data.document(round_, version=round_ + 1)
        removed = [f"doc-{documents - 1 - 20 * round_ - i}" for i in range(20)]
        for doc_id in removed:
            writer.remove_document(doc_id)
            hashes.pop(doc_id)
        for n, version in ((round_, round_ + 1), (documents + round_, 0)):
            doc, chunks, vectors, spans = data.document(n, version)
            writer.remove_document(doc.doc_id)
            writer.add_document(doc, chunks, list(range(next_id, next_id + len(chunks))), vectors, spans)
            next_id += len(chunks)
            hashes[doc.doc_id] = doc.content_hash
        writer.commit(manifest(hashes, next_id))
        base.close()
        seconds = time.perf_counter() - start
    finally:
        setattr(target, name, original)
    return {"seconds": seconds, "base_open_s": opened, "disk_peak_mb": peak["bytes"] / 2**20,
            "disk_after_mb": disk_usage(index_dir) / 2**20, "load": load_average()}


def switch_delay(store, index_dir: Path, implementation: str, queries: np.ndarray) -> dict:
    """Longest query while a reader switches to a new version, each store with its own
    Retriever.snapshot() pattern: main opens inside the lock questions take; v2 opens outside
    it and swaps. Queries run on a thread (dense search + lexical scores, as a question does)."""
    lock = threading.Lock()
    current = {"snapshot": store.open_snapshot(index_dir)}
    stop = threading.Event()
    latencies: list[float] = []

    def ask():
        n = 0
        while not stop.is_set():
            start = time.perf_counter()
            with lock:
                snapshot = current["snapshot"]
            snapshot.search_dense(queries[n % len(queries)], 10)
            latencies.append(time.perf_counter() - start)
            n += 1

    asker = threading.Thread(target=ask)
    asker.start()
    time.sleep(1.0)
    baseline = len(latencies)
    start = time.perf_counter()
    if implementation == "main":
        with lock:
            current["snapshot"] = store.open_snapshot(index_dir)
    else:
        fresh = store.open_snapshot(index_dir)
        with lock:
            current["snapshot"] = fresh
    switch = time.perf_counter() - start
    time.sleep(0.5)
    stop.set()
    asker.join()
    during = latencies[baseline:]
    return {"open_s": switch, "query_p50_ms": 1000 * statistics.median(latencies[:baseline]),
            "longest_query_during_switch_ms": 1000 * max(during), "load": load_average()}


def query_costs(store, index_dir: Path, data: Synthetic, queries: np.ndarray) -> dict:
    """Dense top 10 and lexical scores (top 100) per query; both stores search exactly (flat)."""
    snapshot = store.open_snapshot(index_dir)
    dense, lexical = [], []
    for vector in queries:
        start = time.perf_counter()
        snapshot.search_dense(vector, 10)
        dense.append(time.perf_counter() - start)
    for text in data.query_texts(len(queries)):
        start = time.perf_counter()
        snapshot.lexical_scores(text).top(100)
        lexical.append(time.perf_counter() - start)
    return {"dense_p50_ms": 1000 * statistics.median(dense), "lexical_p50_ms": 1000 * statistics.median(lexical),
            "load": load_average()}


def flat_scan(rows: int, queries: np.ndarray) -> dict:
    """The exact dense search of one segment of ``rows`` chunks (the code path of
    Segment.search, on random vectors in memory): what a query costs before an approximate
    index would be needed."""
    from rag.index.segments import Segment

    segment = Segment.__new__(Segment)
    rng = np.random.default_rng(7)
    segment.vectors = rng.standard_normal((rows, DIMENSION), dtype=np.float32)
    segment.chunk_ids = np.arange(rows, dtype=np.int64)
    times = []
    for vector in queries:
        start = time.perf_counter()
        segment.search(vector, 10, None)
        times.append(time.perf_counter() - start)
    return {"rows": rows, "dense_p50_ms": 1000 * statistics.median(times), "load": load_average()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--work", type=Path)
    parser.add_argument("--implementations", default="main,v2")
    parser.add_argument("--scan-rows", default="", help="also time exact search of one segment of these sizes")
    parser.add_argument("--build-child", nargs=2, metavar=("IMPLEMENTATION", "INDEX_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    documents = args.chunks // CHUNKS_PER_DOC
    work = args.work or Path(tempfile.mkdtemp(prefix="rag-store-bench-"))
    if args.build_child:
        print(json.dumps(build(args.build_child[0], Path(args.build_child[1]), documents, work)))
        return
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    results = {"chunks": args.chunks, "threads": os.environ["OMP_NUM_THREADS"], "cpu_count": os.cpu_count()}
    data = Synthetic()
    queries = data.query_vectors(50)
    for implementation in [i for i in args.implementations.split(",") if i]:
        index_dir = work / f"index-{implementation}"
        child = subprocess.run(
            [sys.executable, __file__, "--chunks", str(args.chunks), "--work", str(work),
             "--build-child", implementation, str(index_dir)],
            check=True, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
        result = {"full_build": json.loads(child.stdout.splitlines()[-1])}
        store, VersionWriter = store_module(implementation, work)
        result["update"] = [update(store, VersionWriter, index_dir, documents, data, r) for r in range(3)]
        result["switch"] = switch_delay(store, index_dir, implementation, queries)
        result["queries"] = query_costs(store, index_dir, data, queries)
        results[implementation] = result
        print(json.dumps({implementation: result}, indent=1), flush=True)
    results["flat_scan"] = [flat_scan(int(rows), queries) for rows in args.scan_rows.split(",") if rows]
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
