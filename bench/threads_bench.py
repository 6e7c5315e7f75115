"""Which torch thread count should the product default to? Measured, idle and beside a busy neighbour.

A query encode is tiny; with two threads it can stall when a neighbour takes a core. This times
query encodes and a batch encode at 1 and 2 threads, with and without a CPU-bound neighbour process.

    python bench/threads_bench.py
"""

from __future__ import annotations

import json
import multiprocessing
import os
import statistics
import time

import torch

from rag.embedding import get_embedder

QUERIES = [
    "When did Colombia recall its ambassador to Israel?",
    "Vitamin D deficiency is associated with an increased risk of tuberculosis.",
    "Which anti-aircraft system does the Colombian army use?",
] * 40
PASSAGES = [" ".join(["The committee reviewed the evidence on blood pressure and salt intake."] * 6)] * 256


def _burn(stop) -> None:
    while not stop.is_set():
        sum(i * i for i in range(10_000))


def _measure(threads: int, neighbour: bool) -> dict:
    torch.set_num_threads(threads)
    embedder = get_embedder()
    embedder.embed_query("warm up")
    samples = []
    for n, query in enumerate(QUERIES):
        query = f"{query} ({threads}-{n}-{neighbour})"  # unique, so the query cache never answers
        start = time.perf_counter()
        embedder.embed_query(query)
        samples.append(time.perf_counter() - start)
    start = time.perf_counter()
    embedder.embed_documents(PASSAGES)
    batch = time.perf_counter() - start
    ordered = sorted(samples)
    return {
        "threads": threads,
        "query_p50_ms": round(1000 * statistics.median(ordered), 1),
        "query_p95_ms": round(1000 * ordered[int(0.95 * (len(ordered) - 1))], 1),
        "batch_passages_per_s": round(len(PASSAGES) / batch, 1),
        "load": "/".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def main() -> None:
    rows = []
    for neighbour in (False, True):
        stop = multiprocessing.Event()
        burner = multiprocessing.Process(target=_burn, args=(stop,)) if neighbour else None
        if burner:
            burner.start()
        try:
            for threads in (1, 2):
                rows.append(dict(_measure(threads, neighbour), busy_neighbour=neighbour))
        finally:
            if burner:
                stop.set()
                burner.join()
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
