"""Store-level benchmark of the index layer: the store before v2 ("main": one folder per
version, bm25s rebuilt per build), v2 as merged ("today": segments, exact search) and this
branch ("v2": segments with approximate search in large ones), same synthetic data, same run.

Simulated: texts are synthetic (Zipf-distributed made-up words, 10 chunks of ~60 words per
document, 4 sentences per chunk); vectors are drawn around real MiniLM sentence vectors of
SciFact with the spread real sentences have (``--centres``, see bench/ann_bench.py), or, without
it, around 2,000 random centres (no model runs: "excluding embedding" is literal). Every number
comes from the writers and readers themselves (``VersionWriter``, ``open_snapshot``).

    python bench/store_bench.py --chunks 100000 --centres /tmp/scifact-vectors.npy
    python bench/store_bench.py --chunks 1000000 --implementations v2 --centres ...
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

MAIN_COMMIT = "c884ea2"  # main before index v2
TODAY_COMMIT = "16dc953"  # main with index v2, before approximate search
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


def today_store_package(work: Path) -> Path:
    """The whole ``rag`` package of TODAY_COMMIT as package ``rag_today`` under ``work`` (its
    index modules import each other relatively; an empty ``__init__`` keeps the rest unloaded)."""
    package = work / "rag_today"
    if not package.exists():
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", TODAY_COMMIT, "rag"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(work)], input=archive, check=True)
        (work / "rag").rename(package)
        (package / "__init__.py").write_text("")
    return work


def store_module(implementation: str, work: Path):
    import faiss

    faiss.omp_set_num_threads(1)  # every store on one thread, as rag runs with RAG_THREADS=1
    if implementation == "main":
        sys.path.insert(0, str(main_store_package(work)))
        store = importlib.import_module("rag_main.store")
        return store, store.VersionWriter
    if implementation == "today":
        sys.path.insert(0, str(today_store_package(work)))
        store = importlib.import_module("rag_today.store")
        return store, importlib.import_module("rag_today.index.writer").VersionWriter
    from rag import store
    from rag.index.writer import VersionWriter
    return store, VersionWriter


class Synthetic:
    """Deterministic documents, chunks, vectors and sentence vectors."""

    def __init__(self, seed: int = 0, centres: Path | None = None):
        rng = np.random.default_rng(seed)
        self.centres_path = centres
        syllables = ["ka", "lo", "mi", "ne", "tu", "ra", "si", "po", "de", "ga", "vo", "xi", "be", "fu"]
        self.words = ["".join(rng.choice(syllables, size=rng.integers(2, 5))) for _ in range(60_000)]
        ranks = np.arange(1, len(self.words) + 1)
        self.cdf = np.cumsum(1 / ranks) / np.sum(1 / ranks)
        if centres is None:
            self.centres = rng.normal(size=(2000, DIMENSION)).astype(np.float32)
            self.sigma = 0.6
        else:  # real sentence vectors, and noise that leaves each vector as near its centre as
            # real sentences are to their nearest neighbour (bench/ann_bench.py)
            from ann_bench import nearest_other_cosine

            self.centres = np.load(centres).astype(np.float32)[:, :DIMENSION]
            cosine = nearest_other_cosine(self.centres)
            self.sigma = float(np.sqrt((1 / cosine**2 - 1) / DIMENSION))

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
        vectors = centre + self.sigma * rng.normal(size=(CHUNKS_PER_DOC, DIMENSION)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        spans = {span: vectors[i // SENTENCES_PER_CHUNK] for i, span in enumerate(sentence_spans)}
        doc = Document(f"doc-{n}", title, text, f"hash-{n}-{version}")
        return doc, chunks, vectors.astype(np.float32), spans

    def query_vectors(self, count: int) -> np.ndarray:
        rng = np.random.default_rng(123)
        q = self.centres[rng.integers(len(self.centres), size=count)] + self.sigma * rng.normal(
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


def peak_disk_sampler(path: Path, stop: threading.Event, peak: dict) -> threading.Thread:
    """A thread sampling the disk ``path`` uses, once a second, into ``peak["bytes"]``."""
    def sample() -> None:
        while not stop.wait(1.0):
            try:
                peak["bytes"] = max(peak["bytes"], disk_usage(path))
            except FileNotFoundError:  # a file removed while it was listed
                pass

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    return thread


def build(implementation: str, index_dir: Path, documents: int, work: Path, centres: Path | None) -> dict:
    """A full build through the writer; run in a child process so that its peak RSS is its own."""
    store, VersionWriter = store_module(implementation, work)
    index_dir.mkdir(parents=True, exist_ok=True)
    stop, peak = threading.Event(), {"bytes": 0}
    sampler = peak_disk_sampler(index_dir, stop, peak)
    data = Synthetic(centres=centres)
    cpu = time.process_time()
    start = time.perf_counter()
    writer = VersionWriter(index_dir, None, DIMENSION)
    hashes = {}
    for n in range(documents):
        doc, chunks, vectors, spans = data.document(n)
        writer.add_document(doc, chunks, list(range(n * CHUNKS_PER_DOC, (n + 1) * CHUNKS_PER_DOC)), vectors, spans)
        hashes[doc.doc_id] = doc.content_hash
    written_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    commit_start, commit_cpu, written_load = time.perf_counter(), time.process_time(), load_average()
    writer.commit(manifest(hashes, documents * CHUNKS_PER_DOC))
    seconds = time.perf_counter() - start
    stop.set()
    sampler.join()
    segments = sorted(json.loads(p.read_text())["chunks"] for p in index_dir.glob("segments/*/segment.json"))
    return {"seconds": seconds, "cpu_s": time.process_time() - cpu, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "peak_rss_before_commit_mb": written_rss, "load_before_commit": written_load,
            "commit_s": time.perf_counter() - commit_start, "commit_cpu_s": time.process_time() - commit_cpu,
            "segments": segments, "disk_mb": disk_usage(index_dir) / 2**20,
            "peak_disk_mb": max(peak["bytes"], disk_usage(index_dir)) / 2**20, "load": load_average()}


def update(store, VersionWriter, index_dir: Path, documents: int, data: Synthetic, round_: int,
           verify: bool = True) -> dict:
    """Change 1 document, remove 20, add 1: the cost of the change, without embedding; the disk
    in use at its peak (new version written, old not yet removed). ``verify`` False opens the base
    as the indexer does (sizes checked, checksums not: a build reads little of its base)."""
    peak = {"bytes": 0}
    target = store if hasattr(store, "_write_durably") else importlib.import_module(VersionWriter.__module__)
    name = "_write_durably" if hasattr(target, "_write_durably") else "write_durably"
    original = getattr(target, name)

    def measuring(path, text):
        if path.name == "CURRENT":
            peak["bytes"] = disk_usage(index_dir)
        return original(path, text)

    setattr(target, name, measuring)
    try:
        start, cpu = time.perf_counter(), time.process_time()
        base = store.open_snapshot(index_dir, **({} if verify else {"verify": False}))
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
    return {"seconds": seconds, "cpu_s": time.process_time() - cpu, "base_open_s": opened, "disk_peak_mb": peak["bytes"] / 2**20,
            "disk_after_mb": disk_usage(index_dir) / 2**20, "load": load_average()}


def switch_delay(store, VersionWriter, index_dir: Path, implementation: str, data: Synthetic,
                 queries: np.ndarray, texts: list[str], documents: int) -> dict:
    """Longest question while a reader switches to a new version, each store with its own
    Retriever.snapshot() pattern: main opens inside the lock questions take; v2 opens outside
    it and swaps. The new version was committed by another process (so its segments are new to
    this one); a question (dense top 10, lexical scores with spelling, as retrieve() does) runs
    on a thread, back to back, and takes whatever snapshot is current when it starts."""
    lock = threading.Lock()
    current = {"snapshot": store.open_snapshot(index_dir)}
    old = current["snapshot"].path.name
    stop = threading.Event()
    latencies: list[tuple[float, float, str]] = []

    def ask():
        n = 0
        while not stop.is_set():
            start = time.perf_counter()
            with lock:
                snapshot = current["snapshot"]
            snapshot.search_dense(queries[n % len(queries)], 10)
            snapshot.lexical_scores(texts[n % len(texts)]).top(100)
            latencies.append((start, time.perf_counter() - start, snapshot.path.name))
            n += 1

    asker = threading.Thread(target=ask)
    asker.start()
    child = subprocess.run(
        [sys.executable, __file__, "--update-child", implementation, str(index_dir), str(documents),
         "--work", str(index_dir.parent)] + (["--centres", str(data.centres_path)] if data.centres_path else []),
        check=True, capture_output=True, text=True)
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
    time.sleep(1.0)
    stop.set()
    asker.join()
    during = [seconds for began, seconds, _ in latencies[baseline:] if began + seconds >= start]
    first_new = next(seconds for _, seconds, name in latencies[baseline:] if name != old)
    before = [seconds for _, seconds, _ in latencies[:baseline]]
    return {"update_in_child": json.loads(child.stdout.splitlines()[-1]), "open_s": switch,
            "query_p50_ms": 1000 * statistics.median(before), "query_max_before_ms": 1000 * max(before),
            "longest_query_during_switch_ms": 1000 * max(during),
            "first_query_on_new_version_ms": 1000 * first_new, "load": load_average()}


def query_costs(store, index_dir: Path, data: Synthetic, queries: np.ndarray) -> dict:
    """Dense top 10 (as stored: approximate in large segments where the store has them, and
    exact over the same snapshot) and lexical scores (top 100) per query, interleaved; CPU time."""
    snapshot = store.open_snapshot(index_dir)
    segments = getattr(snapshot, "_segments", [])
    approximate = [getattr(segment, "ann", None) for segment in segments]
    dense, exact, lexical, found = [], [], [], 0
    for vector, text in zip(queries, data.query_texts(len(queries))):
        for segment in segments:
            if hasattr(segment, "ann"):
                segment.ann = None
        start = time.process_time()
        truth = snapshot.search_dense(vector, 10)
        exact.append(time.process_time() - start)
        for segment, index in zip(segments, approximate):
            if index is not None:
                segment.ann = index
        start = time.process_time()
        ranking = snapshot.search_dense(vector, 10)
        dense.append(time.process_time() - start)
        found += len({c for c, _ in truth} & {c for c, _ in ranking})
        start = time.process_time()
        snapshot.lexical_scores(text).top(100)
        lexical.append(time.process_time() - start)
    return {"segments": [len(s) for s in segments],
            "approximate_segments": sum(index is not None for index in approximate),
            "dense_p50_cpu_ms": 1000 * statistics.median(dense), "exact_p50_cpu_ms": 1000 * statistics.median(exact),
            "recall@10": found / (10 * len(queries)), "lexical_p50_cpu_ms": 1000 * statistics.median(lexical),
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
    segment.ann = None
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
    parser.add_argument("--centres", type=Path, help="real sentence vectors (.npy) to draw vectors around")
    parser.add_argument("--build-child", nargs=2, metavar=("IMPLEMENTATION", "INDEX_DIR"), help=argparse.SUPPRESS)
    parser.add_argument("--update-child", nargs=3, metavar=("IMPLEMENTATION", "INDEX_DIR", "DOCUMENTS"),
                        help="one update of an existing index, in this process (as `rag index` runs)")
    parser.add_argument("--round", type=int, default=3, help="which update (each changes other documents)")
    parser.add_argument("--rounds", type=int, default=1, help="updates one after another in the child")
    parser.add_argument("--no-verify", action="store_true", help="open the base as the indexer does")
    args = parser.parse_args()
    documents = args.chunks // CHUNKS_PER_DOC
    work = args.work or Path(tempfile.mkdtemp(prefix="rag-store-bench-"))
    if args.build_child:
        print(json.dumps(build(args.build_child[0], Path(args.build_child[1]), documents, work, args.centres)))
        return
    if args.update_child:
        implementation, index_dir, documents = args.update_child
        store, VersionWriter = store_module(implementation, work)
        data = Synthetic(centres=args.centres)
        for round_ in range(args.round, args.round + args.rounds):
            print(json.dumps(update(store, VersionWriter, Path(index_dir), int(documents), data, round_,
                                    verify=not args.no_verify)), flush=True)
        return
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    results = {"chunks": args.chunks, "threads": os.environ["OMP_NUM_THREADS"], "cpu_count": os.cpu_count()}
    data = Synthetic(centres=args.centres)
    queries = data.query_vectors(50)
    texts = data.query_texts(50)
    for implementation in [i for i in args.implementations.split(",") if i]:
        index_dir = work / f"index-{implementation}"
        child = subprocess.run(
            [sys.executable, __file__, "--chunks", str(args.chunks), "--work", str(work),
             "--build-child", implementation, str(index_dir)] + (
                ["--centres", str(args.centres)] if args.centres else []),
            check=True, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
        result = {"full_build": json.loads(child.stdout.splitlines()[-1])}
        print(json.dumps({implementation: result}), flush=True)
        store, VersionWriter = store_module(implementation, work)
        result["update"] = [update(store, VersionWriter, index_dir, documents, data, r) for r in range(3)]
        print(json.dumps({implementation: result}), flush=True)
        result["switch"] = switch_delay(store, VersionWriter, index_dir, implementation, data, queries, texts,
                                        documents)
        result["queries"] = query_costs(store, index_dir, data, queries)
        results[implementation] = result
        print(json.dumps({implementation: result}, indent=1), flush=True)
    results["flat_scan"] = [flat_scan(int(rows), queries) for rows in args.scan_rows.split(",") if rows]
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
