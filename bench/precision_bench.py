"""float32 against bfloat16 for the embedding model on this CPU: speed and how far the vectors move.

Times, in one process and interleaved, the encoding of SciFact chunks (as the indexer builds them)
and of single queries, in float32, in bfloat16 under ``torch.autocast`` (what rag's
``precision = "auto"`` uses on CPUs with native bfloat16) and with the weights cast to bfloat16.
Retrieval quality in both precisions is in bench/retrieval_sweep.py (``--precision``).

    python bench/precision_bench.py [--docs 60] [--threads 1] [--rounds 2]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from rag.config import load_settings  # noqa: E402
from rag.embedding import Embedder, uses_bfloat16  # noqa: E402
from rag.indexer import _chunk_for, embedding_text  # noqa: E402
from rag.types import Document  # noqa: E402

SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "beir" / "scifact"


def _chunk_texts(embedder: Embedder, docs: int) -> list[str]:
    settings = load_settings()
    texts = []
    with (SCIFACT / "corpus.jsonl").open() as f:
        for line, _ in zip(f, range(docs)):
            d = json.loads(line)
            title, chunks = _chunk_for(embedder, settings, Document(d["_id"], d["title"], d["text"], ""))
            texts += [embedding_text(title, c.text) for c in chunks]
    return texts


def _encode(model, texts: list[str], autocast: bool) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        vectors = model.encode(texts, batch_size=32, normalize_embeddings=True, show_progress_bar=False)
    elapsed = time.perf_counter() - started
    vectors = np.asarray(vectors, dtype=np.float32)  # renormalised: bfloat16 norms are off by ~1e-3
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True), elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=60)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    embedder = Embedder(threads=args.threads, precision="float32", backend="torch")
    model = embedder._model
    bf16_weights = copy.deepcopy(model).to(torch.bfloat16)
    variants = {"float32": (model, False), "bfloat16 autocast": (model, True),
                "bfloat16 weights": (bf16_weights, False)}
    texts = _chunk_texts(embedder, args.docs)
    with (SCIFACT / "queries.jsonl").open() as f:
        queries = [json.loads(line)["text"] for line, _ in zip(f, range(150))]

    _encode(model, texts[:8], False)
    seconds = {name: [] for name in variants}
    vectors = {}
    for _ in range(args.rounds):
        for name, (m, autocast) in variants.items():
            vectors[name], elapsed = _encode(m, texts, autocast)
            seconds[name].append(elapsed)
    query_ms = {name: [] for name in variants}
    for query in queries:
        for name, (m, autocast) in variants.items():
            query_ms[name].append(1000 * _encode(m, [query], autocast)[1])

    print(f"{len(texts)} chunks of {args.docs} SciFact abstracts, {len(queries)} queries; "
          f"torch threads {torch.get_num_threads()}; load average "
          f"{'/'.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"native bfloat16 on this CPU: {uses_bfloat16('auto')}")
    print("| precision | chunks/s | speed-up | query p50 | min / mean cosine to float32 |")
    print("|---|---:|---:|---:|---|")
    base = min(seconds["float32"])
    for name in variants:
        cosine = np.sum(vectors[name] * vectors["float32"], axis=1)
        print(f"| {name} | {len(texts) / min(seconds[name]):.1f} | {base / min(seconds[name]):.2f} | "
              f"{statistics.median(query_ms[name]):.1f} ms | {cosine.min():.5f} / {cosine.mean():.5f} |")


if __name__ == "__main__":
    main()
