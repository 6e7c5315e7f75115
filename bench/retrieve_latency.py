"""What `rag.retrieve` costs beyond the raw floor (encode the query, search FAISS), at k=10 and 100.

The floor is the same encoder's ``embed_query`` plus the index's FAISS search for k chunks; rag is
the public ``retrieve`` (hybrid: dense + BM25 fused, passages merged, texts read), for passages
and for documents. Systems take turns query by query, so load changes hit all alike, and no query
is asked twice (the embedder caches recent query vectors). Reports p50 wall and CPU time (CPU time,
``time.process_time``, is what a loaded machine's neighbours barely move) and their ratios to the
floor.

    python bench/retrieve_latency.py INDEX_DIR --beir ../shared/beir/scifact --split train
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rag import evaluate  # noqa: E402
from rag.api import retrieve  # noqa: E402
from rag.config import load_settings  # noqa: E402
from rag.retriever import get_retriever  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("index", type=Path)
    parser.add_argument("--beir", type=Path, required=True)
    parser.add_argument("--split", default="train")
    parser.add_argument("--queries", type=int, default=600)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--query-threads", type=int, default=1, help="encoder and FAISS threads per query (0 = auto)")
    args = parser.parse_args()
    settings = load_settings(threads=args.threads, query_threads=args.query_threads)
    retriever = get_retriever(args.index, settings)
    snapshot = retriever.snapshot()
    embedder = retriever.embedder
    queries = list(evaluate.load_beir(args.beir, args.split).queries.values())[: args.queries]

    def floor(query: str, k: int) -> None:
        snapshot.search_dense(embedder.embed_query(query), k)

    def rag(unit: str):
        return lambda query, k: retrieve(query, k, index_dir=args.index, unit=unit, settings=settings)

    systems = {"floor": floor, "passages": rag("passage"), "documents": rag("document")}
    for warm in ("warm up one", "warm up two", "warm up three"):
        for run in systems.values():
            run(warm, 100)
    load_before = os.getloadavg()
    times = {(name, k): [] for name in systems for k in (10, 100)}
    cpu = {(name, k): [] for name in systems for k in (10, 100)}
    names = list(systems)
    for n, query in enumerate(queries):
        k = (10, 100)[n % 2]
        name = names[(n // 2) % len(names)]
        started, started_cpu = time.perf_counter(), time.process_time()
        systems[name](query, k)
        times[(name, k)].append(time.perf_counter() - started)
        cpu[(name, k)].append(time.process_time() - started_cpu)
    p50 = {f"{name} k={k}": round(1000 * statistics.median(v), 2) for (name, k), v in times.items() if v}
    cpu_p50 = {f"{name} k={k}": round(1000 * statistics.median(v), 2) for (name, k), v in cpu.items() if v}
    result = {
        "index": str(args.index), "chunks": len(snapshot), "threads": args.threads,
        "query_threads": args.query_threads,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "p50_ms": p50,
        "ratio_to_floor": {f"{name} k={k}": round(p50[f"{name} k={k}"] / p50[f"floor k={k}"], 2)
                           for name in ("passages", "documents") for k in (10, 100)},
        "cpu_p50_ms": cpu_p50,
        "cpu_ratio_to_floor": {f"{name} k={k}": round(cpu_p50[f"{name} k={k}"] / cpu_p50[f"floor k={k}"], 2)
                               for name in ("passages", "documents") for k in (10, 100)},
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
