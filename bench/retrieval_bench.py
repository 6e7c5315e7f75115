"""Retrieval quality and cost on a BEIR dataset: this project against what a user would otherwise build.

One run, one table, one embedding model (the default offline all-MiniLM-L6-v2), one torch thread
count for every system, the same documents (each BEIR document as the Markdown file `rag eval`
writes: title heading, then the text) and the same scoring (documents by their best chunk; rag ranks documents itself):

- rag hybrid / dense / lexical: one `rag.build_index` of the folder, queried in each mode;
- floor: plain SentenceTransformer.encode of whole documents + FAISS flat inner product;
- LangChain as usually built: DirectoryLoader, RecursiveCharacterTextSplitter(1000, 200),
  HuggingFaceEmbeddings on the same local model, FAISS vector store;
- LlamaIndex as usually built: SimpleDirectoryReader, VectorStoreIndex.from_documents with its
  default SentenceSplitter, HuggingFaceEmbedding on the same local model, in-memory store;
- rag encoder: rag's own encoder (its default backend and precision) with nothing around it, on
  the very chunk texts a rag build embeds (tokenise, forward, mean pool; FAISS flat): the floor
  under rag's index time, for the raw-encoder ratio. Only the encoding and the FAISS add are
  timed (the texts are chunked before the clock starts).

Index time covers reading the files to a searchable index, as wall-clock and as CPU seconds
(user + system of the process's threads and of the child processes it waited for: on a shared
machine the wall clock mostly measures the wait for a core). Query p50 is the time to rank 100
documents for one query in a warm process. ``--parallel`` runs every system in its own process at
the same time, so each sees the same load, and samples the load average while they run. Needs the
`bench` extra (pip install -e ".[bench]").

    python bench/retrieval_bench.py [--beir ../shared/beir/scifact] [--split train] [--threads 1]
    python bench/retrieval_bench.py --parallel --only rag rag-encoder langchain llamaindex --out r.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
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
from rag.embedding import embedder_for, resolve_model_path, uses_bfloat16  # noqa: E402
from rag.indexer import _chunk_for, build_index, embedding_text  # noqa: E402
from rag.loaders import load_document  # noqa: E402
from rag.retriever import Retriever  # noqa: E402

from encoder_bench import bare_encode, cpu_seconds  # noqa: E402  (bench/, beside this script)

DEFAULT_BEIR = Path(__file__).resolve().parents[2] / "shared" / "beir" / "scifact"
DEPTH = evaluate.RUN_DEPTH
#: Chunks a chunk-returning peer is asked for, so that its top documents reach 100.
CHUNK_DEPTH = 4 * DEPTH
Search = Callable[[str], list[str]]  # query → document file names, best first
Build = Callable[[], dict[str, Search]]  # the timed part of a system: files → searchable index
PEERS = ["rag", "rag-encoder", "floor", "floor-bfloat16", "langchain", "llamaindex"]
TITLES = {"floor": "floor: SentenceTransformer + FAISS, whole documents",
          "floor-bfloat16": "floor: SentenceTransformer + FAISS, whole documents, bfloat16",
          "langchain": "LangChain (1000-char splits, FAISS)",
          "llamaindex": "LlamaIndex (SentenceSplitter defaults)",
          "rag-encoder": "rag's encoder alone on rag's chunks"}


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message} (load {os.getloadavg()[0]:.2f})", file=sys.stderr, flush=True)


def _doc_file(source: str) -> str:
    return Path(source).name


def _rag(corpus: Path, work: Path, settings, model_path: str) -> Build:
    def build() -> dict[str, Search]:
        build_index(corpus, work / "rag-index", full=True, settings=settings, progress=True)
        retriever = Retriever(work / "rag-index", settings)

        def searcher(mode: str) -> Search:
            def search(query: str) -> list[str]:
                return [p.doc_id for p in retriever.search_documents(query, DEPTH, mode=mode)]
            return search

        return {f"rag {mode}": searcher(mode) for mode in ("hybrid", "dense", "lexical")}

    return build


def _rag_encoder(corpus: Path, work: Path, settings, model_path: str) -> Build:
    import faiss

    embedder = embedder_for(settings)
    texts, files = [], []
    for path in sorted(corpus.glob("*.md")):
        title, chunks = _chunk_for(embedder, settings, load_document(path, path.name))
        texts += [embedding_text(title, c.text) for c in chunks]
        files += [path.name] * len(chunks)
    bare_encode(embedder, texts[:8])  # compiles the batch model: rag's build has it compiled too
    _log(f"rag encoder: {len(texts)} chunks")

    def build() -> dict[str, Search]:
        index = faiss.IndexFlatIP(embedder.dimension)
        index.add(bare_encode(embedder, texts))

        def search(query: str) -> list[str]:
            _, ids = index.search(embedder.embed_query(query)[None, :], CHUNK_DEPTH)
            return evaluate.best_chunk_per_document(files[i] for i in ids[0] if i >= 0)

        return {TITLES["rag-encoder"]: search}

    return build


def _floor(corpus: Path, work: Path, settings, model_path: str, bfloat16: bool = False) -> Build:
    def build() -> dict[str, Search]:
        import faiss
        import torch
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(model_path, device="cpu")
        files = sorted(corpus.glob("*.md"))
        texts = [f.read_text(encoding="utf-8") for f in files]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16):
            vectors = model.encode(texts, batch_size=32, normalize_embeddings=True, show_progress_bar=True)
        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(np.asarray(vectors, dtype=np.float32))

        def search(query: str) -> list[str]:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16):
                vector = model.encode([query], normalize_embeddings=True)
            _, ids = index.search(np.asarray(vector, dtype=np.float32), DEPTH)
            return [files[i].name for i in ids[0] if i >= 0]

        return {TITLES["floor-bfloat16" if bfloat16 else "floor"]: search}

    return build


def _langchain(corpus: Path, work: Path, settings, model_path: str) -> Build:
    def build() -> dict[str, Search]:
        from langchain_community.document_loaders import DirectoryLoader, TextLoader
        from langchain_community.embeddings import HuggingFaceEmbeddings
        from langchain_community.vectorstores import FAISS
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        documents = DirectoryLoader(str(corpus), glob="*.md", loader_cls=TextLoader).load()
        splits = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200).split_documents(documents)
        store = FAISS.from_documents(splits, HuggingFaceEmbeddings(model_name=model_path))

        def search(query: str) -> list[str]:
            hits = store.similarity_search_with_score(query, k=CHUNK_DEPTH)
            return evaluate.best_chunk_per_document(_doc_file(d.metadata["source"]) for d, _ in hits)

        return {TITLES["langchain"]: search}

    return build


def _llamaindex(corpus: Path, work: Path, settings, model_path: str) -> Build:
    def build() -> dict[str, Search]:
        from llama_index.core import Settings, SimpleDirectoryReader, VectorStoreIndex
        from llama_index.embeddings.huggingface import HuggingFaceEmbedding

        Settings.embed_model = HuggingFaceEmbedding(model_name=model_path, device="cpu")
        documents = SimpleDirectoryReader(str(corpus)).load_data()
        index = VectorStoreIndex.from_documents(documents, show_progress=True)
        retriever = index.as_retriever(similarity_top_k=CHUNK_DEPTH)

        def search(query: str) -> list[str]:
            hits = retriever.retrieve(query)
            return evaluate.best_chunk_per_document(_doc_file(h.node.metadata["file_path"]) for h in hits)

        return {TITLES["llamaindex"]: search}

    return build


BUILDERS = {"rag": _rag, "rag-encoder": _rag_encoder, "floor": _floor,
            "floor-bfloat16": lambda *a: _floor(*a, bfloat16=True),
            "langchain": _langchain, "llamaindex": _llamaindex}


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


def _systems(keys: list[str], corpus: Path, work: Path, names: dict[str, str], data, settings,
             model_path: str) -> tuple[list[dict], dict]:
    """Build and query each system in turn in this process: its rows, and rag's retrieve p50."""
    rows, retrieve_p50 = [], {}
    for key in keys:
        _log(f"indexing: {key}")
        build = BUILDERS[key](corpus, work, settings, model_path)
        load_at_start = os.getloadavg()[0]
        started, cpu_started = time.perf_counter(), cpu_seconds()
        searches = build()
        seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
        _log(f"built: {key} in {seconds:.1f} s, {cpu:.1f} s of CPU")
        for name, search in searches.items():
            _log(f"querying: {name}")
            run, latencies = _run(search, data.queries, names)
            metrics = evaluate.score_run(run, data.qrels)
            rows.append({"system": name, "key": key, **{k: round(v, 4) for k, v in metrics.items()},
                         "index_s": round(seconds, 1), "index_cpu_s": round(cpu, 1),
                         "load_at_start": round(load_at_start, 2),
                         "query_p50_ms": round(1000 * statistics.median(latencies), 1)})
            _log(json.dumps(rows[-1]))
        if key == "rag":  # last: each run above asked every query, the first 400 longest ago
            retrieve_p50 = _retrieve_latency(work / "rag-index", settings, list(data.queries.values())[:400])
    return rows, retrieve_p50


def _in_parallel(args, work: Path) -> tuple[list[dict], dict, list[float]]:
    """Every system in a child process of its own, all started together; the load average is
    sampled every 10 s while they run."""
    children = {}
    for key in args.only:
        command = [sys.executable, __file__, "--beir", str(args.beir), "--split", args.split,
                   "--threads", str(args.threads), "--only", key, "--work", str(work),
                   "--out", str(work / f"{key}.json")]
        log = (work / f"{key}.log").open("w")
        children[key] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        _log(f"started {key}: pid {children[key].pid}, log {log.name}")
    loads = []
    while any(child.poll() is None for child in children.values()):
        loads.append(os.getloadavg()[0])
        time.sleep(10)
    rows, retrieve_p50 = [], {}
    for key, child in children.items():
        if child.returncode != 0:
            _log(f"{key} failed (exit {child.returncode}): see {work / (key + '.log')}")
            continue
        result = json.loads((work / f"{key}.json").read_text())
        rows += result["rows"]
        retrieve_p50 = result["retrieve_k5_p50_ms"] or retrieve_p50
    return rows, retrieve_p50, loads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beir", type=Path, default=DEFAULT_BEIR)
    parser.add_argument("--split", default="train")
    parser.add_argument("--threads", type=int, default=1, help="encoder threads for every system")
    parser.add_argument("--only", nargs="+", choices=PEERS, default=PEERS)
    parser.add_argument("--parallel", action="store_true", help="each system in its own process, all at once")
    parser.add_argument("--work", type=Path, help="folder for the corpus and indexes (default: a temp dir)")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()

    import faiss
    import torch

    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    settings = load_settings(threads=args.threads, query_threads=args.threads)
    data = evaluate.load_beir(args.beir, args.split)
    load_before = os.getloadavg()
    _log(f"{len(data.corpus)} documents, {len(data.queries)} queries, {args.threads} thread(s)")
    with tempfile.TemporaryDirectory(prefix="rag-bench-") as tmp:
        work = args.work or Path(tmp)
        names_file = work / "names.json"
        if names_file.is_file():  # a child of --parallel: the parent wrote the corpus
            names = json.loads(names_file.read_text())
        else:
            names = evaluate.write_corpus(data.corpus, work / "corpus")
            names_file.write_text(json.dumps(names))
        loads = []
        if args.parallel:
            rows, retrieve_p50, loads = _in_parallel(args, work)
        else:
            work = work / f"run-{os.getpid()}"
            work.mkdir()
            rows, retrieve_p50 = _systems(args.only, work.parent / "corpus", work, names, data, settings,
                                          resolve_model_path(settings.model))
    embedder_precision = "bfloat16" if uses_bfloat16(settings.precision) else "float32"
    result = {
        "dataset": f"{args.beir.name} ({args.split}): {len(data.corpus)} documents, {len(data.queries)} queries",
        "model": settings.model, "threads": args.threads, "cpus": os.cpu_count(), "parallel": args.parallel,
        "rag_backend": settings.backend, "rag_precision": settings.precision, "torch_autocast": embedder_precision,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "load_average_during": ([round(min(loads), 2), round(statistics.fmean(loads), 2), round(max(loads), 2)]
                                if loads else None),
        "python": platform.python_version(), "rows": rows, "retrieve_k5_p50_ms": retrieve_p50,
    }
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))
    print(_table(result))


def _table(result: dict) -> str:
    base = next((r for r in result["rows"] if r["key"] == "rag-encoder"), None)
    during = result["load_average_during"]
    lines = [
        f"{result['dataset']}; model {result['model']}; {result['threads']} thread(s) for every system on "
        f"{result['cpus']} CPUs{', all systems at once' if result['parallel'] else ''}; load average "
        f"{result['load_average_before'][0]} before, "
        + (f"{during[0]}–{during[2]} (mean {during[1]}) during, " if during else "")
        + f"{result['load_average_after'][0]} after",
        "",
        "| system | nDCG@10 | Recall@100 | MRR@10 | index wall | index CPU | CPU ÷ rag's encoder | query p50 |",
        "|---|---|---|---|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        ratio = f"{r['index_cpu_s'] / base['index_cpu_s']:.2f}" if base else ""
        lines.append(f"| {r['system']} | {r['ndcg@10']:.4f} | {r['recall@100']:.3f} | {r['mrr@10']:.3f} | "
                     f"{r['index_s']:.4g} s | {r['index_cpu_s']:.4g} s | {ratio} | {r['query_p50_ms']:.1f} ms |")
    if result["retrieve_k5_p50_ms"]:
        p50 = result["retrieve_k5_p50_ms"]
        lines += ["", f"rag.retrieve(k=5) p50: dense {p50['dense']:.1f} ms, hybrid {p50['hybrid']:.1f} ms "
                      f"({p50['hybrid'] / p50['dense']:.2f}×)"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
