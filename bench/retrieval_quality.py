"""Retrieval quality on several BEIR sets side by side: rag's hybrid against plain RRF(MiniLM, BM25),
MiniLM alone and BM25 alone, all over the same rag index of each set, documents as results.

- rag hybrid: ``Retriever.search_documents`` (the product's fusion, documents by best passage);
- plain RRF: reciprocal rank fusion (k = 60) of the index's MiniLM top 100 chunks and BM25 top
  100 chunks, documents by their best chunk: what a user would build from the two lists;
- MiniLM alone / BM25 alone: ``search_documents`` in dense / lexical mode.

nDCG@10, Recall@100 (of documents) and MRR@10, scored like `rag eval`. Each set's index is built
once into ``--cache`` (embedding SciFact takes ~10 CPU minutes) and reused.

    python bench/squad_paragraphs.py /tmp/squad-beir
    python bench/retrieval_quality.py --set scifact:../shared/beir/scifact:train \\
                                      --set squad-dev:/tmp/squad-beir:test
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rag import evaluate  # noqa: E402
from rag.config import load_settings  # noqa: E402
from rag.indexer import build_index  # noqa: E402
from rag.retriever import Retriever  # noqa: E402

DEPTH = evaluate.RUN_DEPTH
RRF_K = 60


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message} (load {os.getloadavg()[0]:.2f})", file=sys.stderr, flush=True)


def plain_rrf(retriever: Retriever, query: str) -> list[str]:
    """RRF of the dense and BM25 top 100 chunks; documents in order of their best chunk."""
    snapshot = retriever.snapshot()
    dense = snapshot.search_dense(retriever.embedder.embed_query(query), DEPTH)
    lexical = snapshot.lexical_scores(query).top(DEPTH)
    fused: dict[int, float] = {}
    for ranking in (dense, lexical):
        for rank, (chunk_id, _) in enumerate(ranking, 1):
            fused[chunk_id] = fused.get(chunk_id, 0.0) + 1 / (RRF_K + rank)
    order = sorted(fused, key=fused.get, reverse=True)
    records = snapshot.chunks(order)
    return evaluate.best_chunk_per_document((records[c].doc_id for c in order), DEPTH)


def index_for(name: str, data: evaluate.BeirData, cache: Path, settings) -> Path:
    root = cache / name
    if not (root / "index" / "CURRENT").exists():
        _log(f"{name}: building the index (once)")
        evaluate.write_corpus(data.corpus, root / "corpus")
        build_index(root / "corpus", root / "index", full=True, settings=settings, progress=True)
    return root / "index"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", required=True, help="name:beir_dir:split")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/rag-quality-cache"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    settings = load_settings(threads=args.threads)
    results = {"model": settings.model, "dense_weight": settings.dense_weight, "threads": args.threads,
               "load_average_before": [round(x, 2) for x in os.getloadavg()], "sets": []}
    for spec in args.set:
        name, beir, split = spec.split(":")
        data = evaluate.load_beir(beir, split)
        retriever = Retriever(index_for(name, data, args.cache, settings), settings)
        systems = {
            "rag hybrid": lambda q: [p.doc_id for p in retriever.search_documents(q, DEPTH)],
            "plain RRF(MiniLM, BM25)": lambda q: plain_rrf(retriever, q),
            "MiniLM alone": lambda q: [p.doc_id for p in retriever.search_documents(q, DEPTH, mode="dense")],
            "BM25 alone": lambda q: [p.doc_id for p in retriever.search_documents(q, DEPTH, mode="lexical")],
        }
        runs: dict[str, dict[str, list[str]]] = {system: {} for system in systems}
        for query_id, text in data.queries.items():  # systems in turn: the query is encoded once
            for system, search in systems.items():
                runs[system][query_id] = [evaluate.beir_id(d) for d in search(text)]
        rows = []
        for system, run in runs.items():
            metrics = evaluate.score_run(run, data.qrels)
            rows.append({"system": system, **{k: round(v, 4) for k, v in metrics.items()}})
            _log(f"{name}: {json.dumps(rows[-1])}")
        results["sets"].append({"set": f"{name} ({split})", "queries": len(data.queries),
                                "documents": len(data.corpus), "chunks": len(retriever.snapshot()),
                                "rows": rows})
        retriever.snapshot().close()
    results["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
    print(_table(results))


def _table(results: dict) -> str:
    lines = [f"model {results['model']}, dense_weight {results['dense_weight']}, {results['threads']} torch "
             f"thread(s); load average {results['load_average_before'][0]} before, "
             f"{results['load_average_after'][0]} after", "",
             "| set | system | nDCG@10 | Recall@100 (documents) | MRR@10 | nDCG@10 − RRF | Recall@100 − RRF |",
             "|---|---|---|---|---|---|---|"]
    for entry in results["sets"]:
        rrf = next(r for r in entry["rows"] if r["system"].startswith("plain RRF"))
        for r in entry["rows"]:
            lines.append(f"| {entry['set']} | {r['system']} | {r['ndcg@10']:.3f} | {r['recall@100']:.3f} | "
                         f"{r['mrr@10']:.3f} | {r['ndcg@10'] - rrf['ndcg@10']:+.3f} | "
                         f"{r['recall@100'] - rrf['recall@100']:+.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
