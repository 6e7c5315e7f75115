"""The Milvus backend and Ray embedding against the local ones, side by side in one run.

    python bench/milvus_bench.py scifact [--docs 1000]     # same index, local vs Milvus: nDCG@10, p50
    python bench/milvus_bench.py scale [--chunks 100000]   # FLAT vs HNSW at 100k chunks; RAM, disk
    python bench/milvus_bench.py ray [--texts 2000]        # plain encode vs Ray, one box and 2 nodes

scifact: a SciFact subset (every abstract judged for the train claims asked, plus others to
``--docs``) is indexed once by the local backend; its very rows and vectors are then written into
milvus-lite 2.5.1 (hybrid) and Milvus 2.3.5 standalone (dense), so every backend ranks the same
index. scale: real SciFact sentences recombined into ``--chunks`` chunk texts with synthetic
clustered 384-d vectors, in milvus-lite (FLAT) and in Milvus 2.3.5 (FLAT, then HNSW), recall@10 of
HNSW against FLAT, the server's resident memory and its data on disk. ray: the same texts embedded
by plain ``Embedder.embed_documents``, by Ray Data on one Ray node, and by a two-node Ray cluster
on loopback (both nodes on this one machine: the gain needs real machines).

Milvus 2.3.5 and the two-node Ray cluster run in loopback-only network namespaces
(tests/index/servers.py). Reads ../shared/beir/scifact. Needs root, pip install -e '.[milvus,ray]'.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rag import build_index  # noqa: E402
from rag.chunking import split_sentences  # noqa: E402
from rag.config import load_settings  # noqa: E402
from rag.evaluate import beir_id, load_beir, run_queries, score_run, write_corpus  # noqa: E402
from rag.index.milvus import MilvusWriter, connect  # noqa: E402
from rag.retriever import Retriever  # noqa: E402
from rag.store import open_snapshot  # noqa: E402
from rag.types import Chunk  # noqa: E402
from tests.index.servers import MilvusStandalone, RayCluster  # noqa: E402

SCIFACT = REPO.parent / "shared" / "beir" / "scifact"


def load_average() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def p50_ms(seconds: list[float]) -> float:
    return 1000 * float(np.percentile(seconds, 50))


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (Milvus standalone runs a child binary)."""
    total, pids = 0, [pid]
    while pids:
        current = pids.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))
            pids += [int(p) for p in Path(f"/proc/{current}/task/{current}/children").read_text().split()]
        except (OSError, StopIteration):
            continue
    return total / 1024


def disk_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 2**20


# ---------------------------------------------------------------- scifact: same index, two backends


def copy_local_index(index_dir: Path, settings) -> None:
    """Write the local version's documents, chunks, vectors and sentence vectors into Milvus,
    read through the reader protocol (rag.index.base)."""
    snapshot = open_snapshot(index_dir)
    manifest = snapshot.manifest
    writer = MilvusWriter(settings.milvus_uri, settings.milvus_collection, None, manifest.dimension)
    records = snapshot.chunks(list(range(manifest.next_chunk_id)))
    vectors = snapshot.vectors(list(records))
    by_document: dict[str, list] = {}
    for record in records.values():
        by_document.setdefault(record.doc_id, []).append(record)
    for info in snapshot.documents():
        doc = snapshot.document(info.doc_id)
        held = sorted(by_document.get(doc.doc_id, []), key=lambda r: r.start)
        chunks = [Chunk(doc.doc_id, ordinal, r.text, r.start, r.end) for ordinal, r in enumerate(held)]
        places = [(doc.doc_id, r.start + a, r.start + b) for r in held for a, b in split_sentences(r.text)]
        sentences = {(start, end): vector
                     for (_, start, end), vector in snapshot.sentence_vectors(places).items()}
        chunk_vectors = (np.vstack([vectors[r.chunk_id] for r in held]) if held
                         else np.zeros((0, manifest.dimension), np.float32))
        writer.add_document(doc, chunks, [r.chunk_id for r in held], chunk_vectors, sentences)
    writer.commit({"model": manifest.model, "dimension": manifest.dimension, "chunking": manifest.chunking,
                   "documents": manifest["documents"], "next_chunk_id": manifest.next_chunk_id,
                   "file_stats": {d: (e.size, e.mtime_ns) for d, e in manifest.documents.items()},
                   "built_at": manifest.built_at})
    snapshot.close()


def scifact_subset(docs: int, queries: int, seed: int = 7):
    data = load_beir(SCIFACT, "train")
    rng = random.Random(seed)
    asked = rng.sample(sorted(data.queries), queries)
    keep = {d for q in asked for d in data.qrels[q]}
    others = [d for d in sorted(data.corpus) if d not in keep]
    keep |= set(rng.sample(others, max(0, docs - len(keep))))
    return ({d: data.corpus[d] for d in sorted(keep)}, {q: data.queries[q] for q in asked},
            {q: data.qrels[q] for q in asked})


def bench_scifact(args) -> list[str]:
    corpus, queries, qrels = scifact_subset(args.docs, args.queries)
    work = Path(tempfile.mkdtemp(prefix="milvus-bench-"))
    server = None
    try:
        write_corpus(corpus, work / "corpus")
        local = load_settings(threads=1)
        started = time.perf_counter()
        stats = build_index(work / "corpus", work / "local", settings=local)
        build_s = time.perf_counter() - started
        backends = [("local", "hybrid", local), ("local", "dense", local)]
        lite = local.with_overrides(index_backend="milvus", milvus_uri=str(work / "lite.db"))
        copy_local_index(work / "local", lite)
        backends += [("milvus-lite 2.5.1", "hybrid", lite), ("milvus-lite 2.5.1", "dense", lite)]
        server = MilvusStandalone(work / "standalone").start()
        standalone = local.with_overrides(index_backend="milvus", milvus_uri=server.uri, mode="dense")
        copy_local_index(work / "local", standalone)
        backends.append(("Milvus 2.3.5 standalone", "dense", standalone))
        lines = [f"SciFact train subset: {len(corpus)} abstracts → {stats.chunks} chunks, "
                 f"{len(queries)} claims; local build {build_s:.0f} s; torch threads 1",
                 "", "| backend | mode | nDCG@10 | Recall@100 | query p50 (400 chunks) | load average |",
                 "|---|---|---:|---:|---:|---|"]
        for name, mode, settings in backends:
            retriever = Retriever(work / "local", settings)
            retriever.embedder._recent_queries.clear()  # every row pays its query embedding
            run, latencies = run_queries(retriever, queries, mode=mode)
            run = {q: [beir_id(d) for d in docs] for q, docs in run.items()}
            metrics = score_run(run, qrels)
            lines.append(f"| {name} | {mode} | {metrics['ndcg@10']:.4f} | {metrics['recall@100']:.4f} | "
                         f"{p50_ms(latencies):.1f} ms | {load_average()} |")
            print(lines[-1], flush=True)
        return lines
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------- scale: FLAT vs HNSW at 100k chunks


def synthetic(chunks: int, dim: int = 384, clusters: int = 2000, seed: int = 3):
    """Chunk texts recombined from real SciFact sentences, and clustered unit vectors (real
    embeddings cluster by topic; uniform random vectors would be unrealistically hard for HNSW)."""
    rng = np.random.default_rng(seed)
    sentences = [s.strip() + "." for _, text in load_beir(SCIFACT, "train").corpus.values()
                 for s in text.split(". ") if len(s) > 30]
    texts = [" ".join(sentences[j] for j in rng.integers(0, len(sentences), 4)) for _ in range(chunks)]
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    vectors = centres[rng.integers(0, clusters, chunks)] + 0.6 * rng.standard_normal((chunks, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[rng.integers(0, chunks, 200)] + 0.3 * rng.standard_normal((200, dim)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return texts, vectors, queries


def load_collection(client, name: str, texts, vectors, index: dict, bm25: bool) -> float:
    from pymilvus import DataType, Function, FunctionType

    from rag.text import index_tokens

    if client.has_collection(name):
        client.drop_collection(name)
    schema = client.create_schema(auto_id=False)
    schema.add_field("chunk_id", DataType.INT64, is_primary=True)
    schema.add_field("text", DataType.VARCHAR, max_length=65535)
    schema.add_field("dense", DataType.FLOAT_VECTOR, dim=vectors.shape[1])
    indexes = client.prepare_index_params()
    indexes.add_index("dense", metric_type="IP", **index)
    if bm25:
        schema.add_field("terms", DataType.VARCHAR, max_length=65535, enable_analyzer=True,
                         analyzer_params={"tokenizer": "whitespace"})
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_function(Function(name="bm25", function_type=FunctionType.BM25,
                                     input_field_names=["terms"], output_field_names=["sparse"]))
        indexes.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    started = time.perf_counter()
    client.create_collection(name, schema=schema, consistency_level="Strong")
    for first in range(0, len(texts), 2000):
        rows = [{"chunk_id": i, "text": texts[i], "dense": vectors[i].tolist()}
                for i in range(first, min(first + 2000, len(texts)))]
        if bm25:
            for row, terms in zip(rows, index_tokens([r["text"] for r in rows])):
                row["terms"] = " ".join(terms)
        client.insert(name, rows)
    client.flush(name)
    client.create_index(name, indexes)
    client.load_collection(name)
    return time.perf_counter() - started


def search_all(client, name: str, queries, params: dict) -> tuple[list[list[int]], list[float]]:
    hits, latencies = [], []
    for q in queries:
        started = time.perf_counter()
        result = client.search(name, data=[q.tolist()], anns_field="dense", limit=10,
                               search_params={"metric_type": "IP", "params": params},
                               consistency_level="Bounded")[0]  # as rag's readers read
        latencies.append(time.perf_counter() - started)
        hits.append([h["id"] for h in result])
    return hits, latencies


def recall(hits, truth) -> float:
    return float(np.mean([len(set(h) & set(t)) / len(t) for h, t in zip(hits, truth)]))


def bench_lite(work: Path, texts, vectors, queries, truth) -> str:
    """milvus-lite: FLAT only (it has no HNSW), with the BM25 field and function as rag writes them."""
    lite_path = work / "lite" / "scale.db"
    lite_path.parent.mkdir()
    client, _ = connect(str(lite_path))  # rag's connection: retries a slow milvus-lite start
    lite_pid = next(int(p) for p in os.listdir("/proc") if p.isdigit()
                    and str(lite_path) in Path(f"/proc/{p}/cmdline").read_bytes().decode(errors="replace"))
    seconds = load_collection(client, "scale", texts, vectors, {"index_type": "FLAT"}, bm25=True)
    hits, latencies = search_all(client, "scale", queries, {})
    return (f"| milvus-lite 2.5.1 (with BM25 field) | FLAT | {seconds:.0f} s | {p50_ms(latencies):.1f} ms | "
            f"{recall(hits, truth):.3f} | {rss_mb(lite_pid):.0f} MB | {disk_mb(lite_path.parent):.0f} MB | "
            f"{load_average()} |")


def bench_scale(args) -> list[str]:
    from pymilvus import MilvusClient

    texts, vectors, queries = synthetic(args.chunks)
    truth = [list(np.argsort(-(vectors @ q))[:10]) for q in queries]
    work = Path(tempfile.mkdtemp(prefix="milvus-scale-"))
    lines = [f"{args.chunks:,} chunks (SciFact sentences recombined, ~{np.mean([len(t) for t in texts]):.0f} "
             "characters each), synthetic clustered 384-d vectors, 200 queries, k = 10",
             "", "| server | index | load + index | query p50 | recall@10 vs exact | server RSS | data on disk | "
             "load average |", "|---|---|---:|---:|---:|---:|---:|---|"]
    server = None
    try:
        if not args.skip_lite:
            lines.append(bench_lite(work, texts, vectors, queries, truth))
            print(lines[-1], flush=True)
        server = MilvusStandalone(work / "standalone").start()
        client = MilvusClient(server.uri)
        pid = int((work / "standalone" / "server.pid").read_text())
        idle = rss_mb(pid)
        hnsw = {"index_type": "HNSW", "params": {"M": 16, "efConstruction": 200}}
        for index, efs in (({"index_type": "FLAT"}, [None]), (hnsw, [64, 256])):
            seconds = load_collection(client, "scale", texts, vectors, index, bm25=False)
            for ef in efs:
                hits, latencies = search_all(client, "scale", queries, {"ef": ef} if ef else {})
                label = index["index_type"] + (f" M=16 efC=200 ef={ef}" if ef else "")
                lines.append(f"| Milvus 2.3.5 standalone | {label} | {seconds:.0f} s | {p50_ms(latencies):.1f} ms | "
                             f"{recall(hits, truth):.3f} | {rss_mb(pid):.0f} MB (idle {idle:.0f}) | "
                             f"{disk_mb(work / 'standalone'):.0f} MB | {load_average()} |")
                print(lines[-1], flush=True)
        client.close()
        return lines
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------- ray: plain encode vs Ray Data

_RAY_DRIVER = """
import json, sys, time
from rag.config import load_settings
from rag.embedding import resolve_model_path
from rag.ray_embed import _embedded_batches, connect
texts = json.load(open(sys.argv[2]))
connect(sys.argv[1])
rows = [{"row": i, "text": t, "spans": "[]"} for i, t in enumerate(texts)]
started = time.perf_counter()
n = sum(len(b["row"]) for b in _embedded_batches(rows, resolve_model_path(load_settings().model), load_settings(), 2))
print(json.dumps({"seconds": time.perf_counter() - started, "rows": n}))
"""


def bench_ray(args) -> list[str]:
    from rag.embedding import Embedder

    corpus = load_beir(SCIFACT, "train").corpus
    texts = [f"{title}\n{text}"[:600] for title, text in list(corpus.values())[: args.texts]]
    work = Path(tempfile.mkdtemp(prefix="ray-bench-"))
    (work / "texts.json").write_text(json.dumps(texts))
    settings = load_settings(threads=1)
    lines = [f"{len(texts)} SciFact abstracts (first 600 characters), all-MiniLM-L6-v2, torch threads 1 per "
             "process, batch 32", "", "| how | seconds | texts/s | ÷ plain | load average |", "|---|---:|---:|---:|---|"]
    embedder = Embedder(settings.model, threads=1, precision=settings.precision)
    embedder.embed_documents(texts[:64])  # warm
    started = time.perf_counter()
    embedder.embed_documents(texts)
    plain = time.perf_counter() - started
    lines.append(f"| plain `embed_documents`, 1 process | {plain:.1f} | {len(texts) / plain:.0f} | 1.00 | {load_average()} |")
    print(lines[-1], flush=True)
    clusters = [("Ray Data, 2 actors, one node with 2 CPUs", RayCluster(work / "one", cpus_per_node=2, nodes=1)),
                ("Ray Data, 2 actors, two nodes with 1 CPU each, on loopback",
                 RayCluster(work / "two", cpus_per_node=1, nodes=2))]
    try:
        for label, cluster in clusters:
            cluster.start()
            command = [sys.executable, "-c", _RAY_DRIVER, cluster.address, str(work / "texts.json")]
            result = subprocess.run(cluster.command(command), env=dict(cluster.environment(), HF_HUB_OFFLINE="1"),
                                    capture_output=True, text=True, timeout=900)
            cluster.stop()
            if result.returncode:
                raise RuntimeError(result.stderr[-2000:])
            seconds = json.loads(result.stdout.strip().splitlines()[-1])["seconds"]
            lines.append(f"| {label} | {seconds:.1f} | {len(texts) / seconds:.0f} | {seconds / plain:.2f} | "
                         f"{load_average()} |")
            print(lines[-1], flush=True)
    finally:
        for _, cluster in clusters:
            cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["scifact", "scale", "ray"])
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--skip-lite", action="store_true", help="scale: Milvus 2.3.5 only")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = {"scifact": bench_scifact, "scale": bench_scale, "ray": bench_ray}[args.part](args)
    print(f"\nrun of {started}, load average at the end {load_average()}\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
