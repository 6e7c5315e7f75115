"""Indexing and retrieval speed of the pipeline against raw sentence-transformers + FAISS.

The raw baseline is plain ``SentenceTransformer.encode`` in float32, as a user would call it, and
also in bfloat16 (under ``torch.autocast``), the precision rag picks by itself on CPUs that compute
it natively: the first ratio is what a user gains, the second what the pipeline itself costs.
Everything compared is measured in this one run, with torch threads set explicitly, and printed
with the load average beside it: the machine is shared, so ratios are the figures to trust.

    python bench/index_bench.py --docs 1000 --threads 1
    python bench/index_bench.py --large            # also a ~10,000-chunk SciFact index
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
import torch

from rag import build_index, load_settings, retrieve
from rag.embedding import Embedder, embedder_for, resolve_model_path
from rag.indexer import embedding_text
from rag.store import open_snapshot

ROOT = Path(__file__).resolve().parent.parent
SCIFACT = ROOT.parent / "shared" / "beir" / "scifact"
QUESTIONS = [json.loads(l)["question"] for l in (ROOT.parent / "shared" / "eval" / "seed_questions.jsonl").open()]


def load_average() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def write_scifact_corpus(folder: Path, limit: int | None) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    queries = []
    with (SCIFACT / "corpus.jsonl").open() as f:
        for n, line in enumerate(f):
            if limit is not None and n >= limit:
                break
            doc = json.loads(line)
            (folder / f"{doc['_id']}.md").write_text(f"# {doc['title']}\n\n{doc['text']}\n")
    with (SCIFACT / "queries.jsonl").open() as f:
        queries = [json.loads(line)["text"] for line in f]
    return queries


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(0.95 * (len(ordered) - 1))]


def raw_sentence_transformer(settings):
    """The baseline: the same weights in a plain SentenceTransformer, no pipeline around it."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(resolve_model_path(settings.model), device="cpu")


def stored_vectors(index_dir: Path) -> np.ndarray:
    snapshot = open_snapshot(index_dir)
    return np.vstack(list(snapshot.vectors(list(range(snapshot.manifest.next_chunk_id))).values()))


def bench_indexing(corpus: Path, index_dir: Path, settings) -> dict:
    embedder = embedder_for(settings)
    embedder.embed_documents(["warm up the model"])
    start = time.perf_counter()
    stats = build_index(corpus, index_dir, full=True, settings=settings)
    pipeline = time.perf_counter() - start

    snapshot = open_snapshot(index_dir)
    records = snapshot.chunks(list(range(len(snapshot))))
    texts = [embedding_text(r.title, r.text) for r in records.values()]
    raw_model = raw_sentence_transformer(settings)
    raw_model.encode(["warm up the model"])
    raw = {}
    for precision in ("float32", "bfloat16"):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bfloat16"):
            start = time.perf_counter()
            raw_model.encode(texts, batch_size=settings.batch_size, normalize_embeddings=True)
            raw[precision] = time.perf_counter() - start
    return {
        "documents": stats.added, "chunks": stats.chunks, "precision": embedder_precision(embedder),
        "pipeline_s": pipeline, "pipeline_chunks_per_s": stats.chunks / pipeline,
        **{f"raw_{p}_s": t for p, t in raw.items()},
        **{f"raw_{p}_chunks_per_s": stats.chunks / t for p, t in raw.items()},
        **{f"pipeline_over_raw_{p}": pipeline / t for p, t in raw.items()},
        "load": load_average(),
    }


def embedder_precision(embedder: Embedder) -> str:
    return "bfloat16" if embedder.bfloat16 else "float32"


def bench_incremental(corpus: Path, index_dir: Path, settings) -> dict:
    seen: list[str] = []
    original = Embedder.embed_documents_and_spans

    def recording(self, texts, spans, **kwargs):
        seen.extend(texts)
        return original(self, texts, spans, **kwargs)

    Embedder.embed_documents_and_spans = recording
    try:
        victim = sorted(corpus.iterdir())[0]
        victim.write_text(victim.read_text() + "\nAn added closing sentence about the findings.\n")
        start = time.perf_counter()
        stats = build_index(corpus, index_dir, settings=settings)
        seconds = time.perf_counter() - start
    finally:
        Embedder.embed_documents_and_spans = original
    doc_chunks = [d.chunks for d in open_snapshot(index_dir).documents() if d.doc_id == victim.name][0]
    return {"documents": stats.unchanged + stats.updated, "updated": stats.updated,
            "chunks_embedded": len(seen), "chunks_of_that_document": doc_chunks,
            "seconds": seconds, "load": load_average()}


def bench_retrieval(index_dir: Path, queries: list[str], settings, mode: str) -> dict:
    raw_model = raw_sentence_transformer(settings)
    vectors = stored_vectors(index_dir)
    raw_index = faiss.IndexFlatIP(vectors.shape[1])
    raw_index.add(vectors)
    for q in queries[:5]:
        retrieve(q, 5, index_dir=index_dir, settings=settings, mode=mode)
    ours, raw, raw_bf16 = [], [], []
    # Each query new (the embedder caches recent queries) and interleaved, so all see the same load.
    queries = [f"{q} ({mode} {n})" for n, q in enumerate(queries)]
    for q in queries:
        start = time.perf_counter()
        retrieve(q, 5, index_dir=index_dir, settings=settings, mode=mode)
        ours.append(time.perf_counter() - start)
        for times, bf16 in ((raw, False), (raw_bf16, True)):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                start = time.perf_counter()
                raw_index.search(raw_model.encode([q + " raw"], normalize_embeddings=True), 5)
                times.append(time.perf_counter() - start)
    (p50, p95), (raw_p50, raw_p95), (bf_p50, bf_p95) = percentiles(ours), percentiles(raw), percentiles(raw_bf16)
    return {"chunks": len(vectors), "mode": mode, "queries": len(queries), "p50_ms": 1000 * p50,
            "p95_ms": 1000 * p95, "raw_float32_p50_ms": 1000 * raw_p50, "raw_float32_p95_ms": 1000 * raw_p95,
            "raw_bfloat16_p50_ms": 1000 * bf_p50, "raw_bfloat16_p95_ms": 1000 * bf_p95,
            "ratio_p50_float32": p50 / raw_p50, "ratio_p50_bfloat16": p50 / bf_p50, "load": load_average()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1000, help="SciFact abstracts for the indexing run")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--large", action="store_true", help="also time retrieval on all 5,183 abstracts")
    parser.add_argument("--work", type=Path, help="folder for corpora and indexes (default: a temp dir)")
    args = parser.parse_args()
    settings = load_settings(threads=args.threads)
    work = args.work or Path(tempfile.mkdtemp(prefix="rag-bench-"))
    results: dict = {"threads": args.threads, "cpu_count": os.cpu_count()}

    queries = write_scifact_corpus(work / "scifact-small", args.docs)
    results["indexing"] = bench_indexing(work / "scifact-small", work / "index-small", settings)
    results["incremental"] = bench_incremental(work / "scifact-small", work / "index-small", settings)
    build_index(ROOT / "corpus", work / "index-default", settings=settings)
    results["retrieval"] = [
        bench_retrieval(work / "index-default", QUESTIONS * 10, settings, mode)
        for mode in ("dense", "hybrid")
    ]
    if args.large:
        write_scifact_corpus(work / "scifact-all", None)
        build_index(work / "scifact-all", work / "index-all", settings=settings, progress=True)
        results["retrieval"] += [
            bench_retrieval(work / "index-all", queries[:300], settings, mode) for mode in ("dense", "hybrid")
        ]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
