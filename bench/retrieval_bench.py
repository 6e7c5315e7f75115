"""Retrieval quality and cost on a BEIR dataset: this project against what a user would otherwise build.

One run, one table, one embedding model (the default offline all-MiniLM-L6-v2), one torch thread
count for every system, the same documents (each BEIR document as the Markdown file `rag eval`
writes: title heading, then the text) and the same scoring (documents by their best chunk; rag ranks documents itself):

- rag hybrid / dense / lexical: one `rag.build_index` of the folder, queried in each mode;
- floor: plain SentenceTransformer.encode of whole documents + FAISS flat inner product;
- LangChain as usually built: DirectoryLoader, RecursiveCharacterTextSplitter(1000, 200),
  HuggingFaceEmbeddings on the same local model, FAISS vector store;
- LlamaIndex as usually built: SimpleDirectoryReader, VectorStoreIndex.from_documents with its
  default SentenceSplitter, HuggingFaceEmbedding on the same local model, in-memory store.

Index time covers reading the files to a searchable index; query p50 is the time to rank 100
documents for one query in a warm process. Needs the `bench` extra (pip install -e ".[bench]").

    python bench/retrieval_bench.py [--beir ../shared/beir/scifact] [--split train] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

from rag import evaluate  # noqa: E402
from rag.config import load_settings  # noqa: E402
from rag.embedding import resolve_model_path, uses_bfloat16  # noqa: E402
from rag.indexer import build_index  # noqa: E402
from rag.retriever import Retriever  # noqa: E402

DEFAULT_BEIR = Path(__file__).resolve().parents[2] / "shared" / "beir" / "scifact"
DEPTH = evaluate.RUN_DEPTH
#: Chunks a chunk-returning peer is asked for, so that its top documents reach 100.
CHUNK_DEPTH = 4 * DEPTH
Search = Callable[[str], list[str]]  # query → document file names, best first


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message} (load {os.getloadavg()[0]:.2f})", file=sys.stderr, flush=True)


def _doc_file(source: str) -> str:
    return Path(source).name


def _rag(corpus: Path, work: Path, settings) -> tuple[float, dict[str, Search]]:
    started = time.perf_counter()
    build_index(corpus, work / "rag-index", full=True, settings=settings, progress=True)
    seconds = time.perf_counter() - started
    retriever = Retriever(work / "rag-index", settings)

    def searcher(mode: str) -> Search:
        def search(query: str) -> list[str]:
            return [p.doc_id for p in retriever.search_documents(query, DEPTH, mode=mode)]
        return search

    return seconds, {f"rag {mode}": searcher(mode) for mode in ("hybrid", "dense", "lexical")}


def _floor(corpus: Path, model_path: str, bfloat16: bool = False) -> tuple[float, Search]:
    import faiss
    import torch
    from sentence_transformers import SentenceTransformer

    started = time.perf_counter()
    model = SentenceTransformer(model_path, device="cpu")
    files = sorted(corpus.glob("*.md"))
    texts = [f.read_text(encoding="utf-8") for f in files]
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16):
        vectors = model.encode(texts, batch_size=32, normalize_embeddings=True, show_progress_bar=True)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(np.asarray(vectors, dtype=np.float32))
    seconds = time.perf_counter() - started

    def search(query: str) -> list[str]:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16):
            vector = model.encode([query], normalize_embeddings=True)
        _, ids = index.search(np.asarray(vector, dtype=np.float32), DEPTH)
        return [files[i].name for i in ids[0] if i >= 0]

    return seconds, search


def _langchain(corpus: Path, model_path: str) -> tuple[float, Search]:
    from langchain_community.document_loaders import DirectoryLoader, TextLoader
    from langchain_community.embeddings import HuggingFaceEmbeddings
    from langchain_community.vectorstores import FAISS
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    started = time.perf_counter()
    documents = DirectoryLoader(str(corpus), glob="*.md", loader_cls=TextLoader).load()
    splits = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200).split_documents(documents)
    embeddings = HuggingFaceEmbeddings(model_name=model_path)
    store = FAISS.from_documents(splits, embeddings)
    seconds = time.perf_counter() - started

    def search(query: str) -> list[str]:
        hits = store.similarity_search_with_score(query, k=CHUNK_DEPTH)
        return evaluate.best_chunk_per_document(_doc_file(d.metadata["source"]) for d, _ in hits)

    return seconds, search


def _llamaindex(corpus: Path, model_path: str) -> tuple[float, Search]:
    from llama_index.core import Settings, SimpleDirectoryReader, VectorStoreIndex
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    started = time.perf_counter()
    Settings.embed_model = HuggingFaceEmbedding(model_name=model_path, device="cpu")
    documents = SimpleDirectoryReader(str(corpus)).load_data()
    index = VectorStoreIndex.from_documents(documents, show_progress=True)
    seconds = time.perf_counter() - started
    retriever = index.as_retriever(similarity_top_k=CHUNK_DEPTH)

    def search(query: str) -> list[str]:
        hits = retriever.retrieve(query)
        return evaluate.best_chunk_per_document(_doc_file(h.node.metadata["file_path"]) for h in hits)

    return seconds, search


def _run(search: Search, queries: dict[str, str], names: dict[str, str]) -> tuple[dict, list[float]]:
    search("warm up")  # first-call loading is not a query's cost (and no query of the set is cached)
    run, latencies = {}, []
    for query_id, text in queries.items():
        started = time.perf_counter()
        ranked = search(text)
        latencies.append(time.perf_counter() - started)
        run[query_id] = [names[name] for name in ranked[:DEPTH]]
    return run, latencies


def _retrieve_latency(index_dir: Path, settings, queries: list[str]) -> dict[str, float]:
    """p50 of the public retrieve path for a chat turn (k=5), for the hybrid ≤ 1.5 × dense goal.

    The modes take turns, so load changes hit both alike, and never share a query: the embedder
    caches the 256 most recent query vectors, so ``queries`` must not be among the last asked.
    """
    from rag.api import retrieve

    retrieve("warm up", 5, index_dir=index_dir, settings=settings)
    times: dict[str, list[float]] = {"dense": [], "hybrid": []}
    for n, query in enumerate(queries):
        mode = ("dense", "hybrid")[n % 2]
        started = time.perf_counter()
        retrieve(query, 5, index_dir=index_dir, mode=mode, settings=settings)
        times[mode].append(time.perf_counter() - started)
    return {mode: 1000 * statistics.median(values) for mode, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beir", type=Path, default=DEFAULT_BEIR)
    parser.add_argument("--split", default="train")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for every system")
    peers = ["rag", "floor", "floor-bfloat16", "langchain", "llamaindex"]
    parser.add_argument("--only", nargs="+", choices=peers, default=peers)
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    settings = load_settings(threads=args.threads)
    model_path = resolve_model_path(settings.model)
    data = evaluate.load_beir(args.beir, args.split)
    rows, retrieve_p50 = [], {}
    load_before = os.getloadavg()
    _log(f"{len(data.corpus)} documents, {len(data.queries)} queries, {args.threads} torch thread(s)")
    with tempfile.TemporaryDirectory(prefix="rag-bench-") as tmp:
        work = Path(tmp)
        names = evaluate.write_corpus(data.corpus, work / "corpus")
        systems: list[tuple[str, float, Search]] = []
        if "rag" in args.only:
            seconds, searches = _rag(work / "corpus", work, settings)
            systems += [(name, seconds, search) for name, search in searches.items()]
        builders = {"floor": ("SentenceTransformer + FAISS, whole documents", _floor),
                    "floor-bfloat16": ("SentenceTransformer + FAISS, whole documents, bfloat16",
                                       lambda corpus, path: _floor(corpus, path, bfloat16=True)),
                    "langchain": ("LangChain (1000-char splits, FAISS)", _langchain),
                    "llamaindex": ("LlamaIndex (SentenceSplitter defaults)", _llamaindex)}
        for key in ("floor", "floor-bfloat16", "langchain", "llamaindex"):
            if key in args.only:
                name, builder = builders[key]
                _log(f"indexing: {name}")
                seconds, search = builder(work / "corpus", model_path)
                systems.append((name, seconds, search))
        for name, seconds, search in systems:
            _log(f"querying: {name}")
            run, latencies = _run(search, data.queries, names)
            metrics = evaluate.score_run(run, data.qrels)
            rows.append({"system": name, **{k: round(v, 4) for k, v in metrics.items()},
                         "index_s": round(seconds, 1), "query_p50_ms": round(1000 * statistics.median(latencies), 1)})
            _log(json.dumps(rows[-1]))
        if "rag" in args.only:  # last: each run above asked every query, the first 400 longest ago
            retrieve_p50 = _retrieve_latency(work / "rag-index", settings, list(data.queries.values())[:400])
    result = {
        "dataset": f"{args.beir.name} ({args.split}): {len(data.corpus)} documents, {len(data.queries)} queries",
        "model": settings.model, "torch_threads": args.threads, "cpus": os.cpu_count(),
        "rag_precision": "bfloat16" if uses_bfloat16(settings.precision) else "float32",
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(), "rows": rows, "retrieve_k5_p50_ms": retrieve_p50,
    }
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))
    print(_table(result))


def _table(result: dict) -> str:
    floor = next((r for r in result["rows"] if r["system"].startswith("SentenceTransformer")
                  and "bfloat16" not in r["system"]), None)
    lines = [
        f"{result['dataset']}; model {result['model']}; rag in {result['rag_precision']}; "
        f"{result['torch_threads']} torch thread(s) on "
        f"{result['cpus']} CPUs; load average {result['load_average_before'][0]} before, "
        f"{result['load_average_after'][0]} after",
        "",
        "| system | nDCG@10 | Recall@100 | index time | query p50 | nDCG@10 ÷ floor | index time ÷ floor | p50 ÷ floor |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        ratios = ["", "", ""]
        if floor:
            ratios = [f"{r['ndcg@10'] / floor['ndcg@10']:.2f}", f"{r['index_s'] / floor['index_s']:.2f}",
                      f"{r['query_p50_ms'] / floor['query_p50_ms']:.2f}"]
        lines.append(f"| {r['system']} | {r['ndcg@10']:.3f} | {r['recall@100']:.3f} | {r['index_s']:.4g} s | "
                     f"{r['query_p50_ms']:.1f} ms | " + " | ".join(ratios) + " |")
    if result["retrieve_k5_p50_ms"]:
        p50 = result["retrieve_k5_p50_ms"]
        lines += ["", f"rag.retrieve(k=5) p50: dense {p50['dense']:.1f} ms, hybrid {p50['hybrid']:.1f} ms "
                      f"({p50['hybrid'] / p50['dense']:.2f}×)"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
