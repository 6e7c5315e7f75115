"""Which encoder thread counts should the product default to? Measured per backend, as the
machine is and beside a busy neighbour.

A query encode is tiny; with two threads it can stall when a neighbour takes a core. This times
single-query encodes and a batch of SciFact abstracts at 1 thread, 2 threads and ``auto`` (one per
physical core), with and without a CPU-bound neighbour process, for torch and (where installed)
OpenVINO.

    python bench/threads_bench.py [--queries 60] [--docs 64]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rag import openvino_model  # noqa: E402
from rag.embedding import Embedder, physical_cores  # noqa: E402

SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "beir" / "scifact"


def _burn(stop) -> None:
    while not stop.is_set():
        sum(i * i for i in range(10_000))


def _load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def _measure(embedder: Embedder, queries: list[str], passages: list[str], tag: str) -> dict:
    """Wall-clock figures, and CPU seconds (every thread of this process) beside them: with more
    threads than free cores the wall clock waits while the CPU time counts what was spent."""
    embedder.embed_query("warm up")
    embedder.embed_documents(passages[:4])
    samples = []
    cpu_started = time.process_time()
    for n, query in enumerate(queries):
        query = f"{query} ({tag} {n})"  # unique, so the query cache never answers
        start = time.perf_counter()
        embedder.embed_query(query)
        samples.append(time.perf_counter() - start)
    query_cpu = (time.process_time() - cpu_started) / len(queries)
    start, cpu_started = time.perf_counter(), time.process_time()
    embedder.embed_documents(passages)
    batch, batch_cpu = time.perf_counter() - start, time.process_time() - cpu_started
    ordered = sorted(samples)
    return {"query_p50_ms": round(1000 * statistics.median(ordered), 1),
            "query_p95_ms": round(1000 * ordered[int(0.95 * (len(ordered) - 1))], 1),
            "query_cpu_ms": round(1000 * query_cpu, 1),
            "batch_abstracts_per_s": round(len(passages) / batch, 2),
            "batch_cpu_s": round(batch_cpu, 2), "load": _load()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=60)
    parser.add_argument("--docs", type=int, default=64)
    args = parser.parse_args()
    with (SCIFACT / "corpus.jsonl").open() as f:
        passages = [json.loads(line)["text"] for line, _ in zip(f, range(args.docs))]
    with (SCIFACT / "queries.jsonl").open() as f:
        queries = [json.loads(line)["text"] for line, _ in zip(f, range(args.queries))]
    backends = ["torch"] + (["openvino"] if openvino_model.installed() else [])
    auto = physical_cores()
    counts = {("auto = " if n == auto else "") + str(n): n for n in sorted({1, 2, auto})}
    embedders = {(b, name): Embedder(backend=b, threads=n, query_threads=n)
                 for b in backends for name, n in counts.items()}
    rows = []
    for neighbour in (False, True):
        stop = multiprocessing.Event()
        burner = multiprocessing.Process(target=_burn, args=(stop,)) if neighbour else None
        if burner:
            burner.start()
        try:
            for (backend, name), embedder in embedders.items():
                row = _measure(embedder, queries, passages, f"{backend} {name} {neighbour}")
                rows.append({"backend": backend, "threads": name, "busy_neighbour": neighbour, **row})
                print(json.dumps(rows[-1]), flush=True)
        finally:
            if burner:
                stop.set()
                burner.join()
    print(f"\n{os.cpu_count()} CPUs, {physical_cores()} physical cores\n")
    print("| backend | threads | busy neighbour | query p50 / p95 | query CPU (mean) | batch abstracts/s | "
          "batch CPU | load average |")
    print("|---|---|---|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['backend']} | {r['threads']} | {'yes' if r['busy_neighbour'] else 'no'} | "
              f"{r['query_p50_ms']} / {r['query_p95_ms']} ms | {r['query_cpu_ms']} ms | "
              f"{r['batch_abstracts_per_s']} | {r['batch_cpu_s']} s | {r['load']} |")


if __name__ == "__main__":
    main()
