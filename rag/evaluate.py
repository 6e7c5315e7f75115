"""Retrieval quality on a BEIR-format folder: build a temporary index, run every query, score.

A BEIR folder holds ``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl`` (``_id``,
``text``) and ``qrels/<split>.tsv`` (query id, document id, relevance; header line first). The
corpus goes through the product's own path: each document becomes a Markdown file whose heading
is its title, and :func:`rag.build_index` indexes the folder. Results are documents
(:meth:`Retriever.search_documents`): a document scores its best passage's score, and the run
holds the top 100 documents, not the documents of the top 100 chunks.

The metrics follow trec_eval (and so BEIR, MTEB and ranx): linear gains, log2 discount, judged
relevance > 0 counts as relevant, and only queries with a relevant document are scored.
"""

from __future__ import annotations

import json
import math
import statistics
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote

import numpy as np
from tqdm.auto import tqdm

from .config import Settings, load_settings
from .indexer import build_index
from .retriever import Retriever
from .types import RagError

Qrels = dict[str, dict[str, int]]
#: The ranking depth the metrics need: Recall@100, counted on documents.
RUN_DEPTH = 100


@dataclass(frozen=True)
class BeirData:
    corpus: dict[str, tuple[str, str]]  # doc id → (title, text)
    queries: dict[str, str]  # only the queries judged in the split
    qrels: Qrels


@dataclass
class EvalReport:
    dataset: str
    split: str
    mode: str
    queries: int
    documents: int
    chunks: int
    metrics: dict[str, float]
    latency_ms: dict[str, float]
    index_seconds: float
    settings: dict = field(default_factory=dict)


# ---------------------------------------------------------------- reading BEIR


def _read_jsonl(path: Path) -> Iterable[dict]:
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except ValueError as e:
                    raise RagError(f"{path}:{number} is not valid JSON ({e})") from None


def _read_qrels(path: Path) -> Qrels:
    qrels: Qrels = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3 or not line.strip():
                continue
            query_id, doc_id, relevance = parts[0], parts[1], parts[-1]
            try:
                value = int(float(relevance))
            except ValueError:
                if number == 1:
                    continue  # the header line
                raise RagError(f"{path}:{number}: relevance {relevance!r} is not a number") from None
            qrels.setdefault(query_id, {})[doc_id] = value
    return qrels


def load_beir(folder: str | Path, split: str = "test") -> BeirData:
    """The corpus, the queries judged in ``split`` and their judgements."""
    folder = Path(folder)
    paths = {
        "corpus": folder / "corpus.jsonl",
        "queries": folder / "queries.jsonl",
        "qrels": folder / "qrels" / f"{split}.tsv",
    }
    for path in paths.values():
        if not path.is_file():
            splits = sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))
            have = f" (splits here: {', '.join(splits)})" if splits else ""
            raise RagError(f"{path} not found: {folder} is not a BEIR folder with split {split!r}{have}")
    judged = {q: docs for q, docs in _read_qrels(paths["qrels"]).items() if any(v > 0 for v in docs.values())}
    queries = {
        str(row["_id"]): row["text"] for row in _read_jsonl(paths["queries"]) if str(row["_id"]) in judged
    }
    if not queries:
        raise RagError(f"none of the queries judged in {paths['qrels']} is in {paths['queries']}")
    corpus = {
        str(row["_id"]): (row.get("title") or "", row.get("text") or "")
        for row in _read_jsonl(paths["corpus"])
    }
    return BeirData(corpus, queries, {q: judged[q] for q in queries})


def write_corpus(corpus: dict[str, tuple[str, str]], folder: Path) -> dict[str, str]:
    """One Markdown file per document, title as its heading; returns index doc id → BEIR id.

    File names are the percent-quoted ids, so any id is a safe, reversible name.
    """
    folder.mkdir(parents=True, exist_ok=True)
    names = {}
    for doc_id, (title, text) in corpus.items():
        name = f"d{quote(doc_id, safe='')}.md"  # a leading letter: ids may start with "."
        title = " ".join(title.split())
        body = f"# {title}\n\n{text}\n" if title else f"{text}\n"
        (folder / name).write_text(body, encoding="utf-8")
        names[name] = doc_id
    return names


def beir_id(index_doc_id: str) -> str:
    return unquote(index_doc_id[1:].removesuffix(".md"))


# ---------------------------------------------------------------- metrics


def _dcg(gains: list[float]) -> float:
    return sum(gain / math.log2(rank + 2) for rank, gain in enumerate(gains))


def ndcg_at(ranking: list[str], judged: dict[str, int], k: int) -> float:
    ideal = _dcg(sorted((g for g in judged.values() if g > 0), reverse=True)[:k])
    gains = [max(judged.get(doc_id, 0), 0) for doc_id in ranking[:k]]
    return _dcg(gains) / ideal if ideal else 0.0


def recall_at(ranking: list[str], judged: dict[str, int], k: int) -> float:
    relevant = {doc_id for doc_id, g in judged.items() if g > 0}
    return len(relevant.intersection(ranking[:k])) / len(relevant) if relevant else 0.0


def reciprocal_rank_at(ranking: list[str], judged: dict[str, int], k: int) -> float:
    for rank, doc_id in enumerate(ranking[:k], 1):
        if judged.get(doc_id, 0) > 0:
            return 1.0 / rank
    return 0.0


def score_run(run: dict[str, list[str]], qrels: Qrels) -> dict[str, float]:
    """Mean nDCG@10, Recall@10, Recall@100 and MRR@10 of ranked document ids per query."""
    measures = {
        "ndcg@10": lambda r, j: ndcg_at(r, j, 10),
        "recall@10": lambda r, j: recall_at(r, j, 10),
        "recall@100": lambda r, j: recall_at(r, j, 100),
        "mrr@10": lambda r, j: reciprocal_rank_at(r, j, 10),
    }
    return {
        name: statistics.fmean(measure(run.get(q, []), judged) for q, judged in qrels.items())
        for name, measure in measures.items()
    }


def best_chunk_per_document(ranked_docs: Iterable[str], depth: int = RUN_DEPTH) -> list[str]:
    """Documents in order of their best chunk, for systems that rank chunks (peers in bench/)."""
    seen: dict[str, None] = {}
    for doc_id in ranked_docs:
        seen.setdefault(doc_id)
        if len(seen) == depth:
            break
    return list(seen)


# ---------------------------------------------------------------- running


def run_queries(
    retriever: Retriever, queries: dict[str, str], *, mode: str | None = None, progress: bool = False
) -> tuple[dict[str, list[str]], list[float]]:
    """Each query's top documents (index doc ids) and its latency in seconds."""
    retriever.search_documents("warm up", RUN_DEPTH, mode=mode)  # loads the index: not a query's cost
    run, latencies = {}, []
    for query_id, text in tqdm(queries.items(), desc="Querying", unit="query", disable=not progress):
        started = time.perf_counter()
        documents = retriever.search_documents(text, RUN_DEPTH, mode=mode)
        latencies.append(time.perf_counter() - started)
        run[query_id] = [passage.doc_id for passage in documents]
    return run, latencies


def evaluate_beir(
    beir_dir: str | Path,
    *,
    split: str | None = None,
    mode: str | None = None,
    settings: Settings | None = None,
    progress: bool = False,
) -> EvalReport:
    """Index a BEIR corpus in a temporary folder and score retrieval on the split's queries.

    ``split`` defaults to ``test`` when the folder has it, else ``train``.
    """
    settings = settings or load_settings()
    beir_dir = Path(beir_dir)
    if split is None:
        split = "test" if (beir_dir / "qrels" / "test.tsv").is_file() else "train"
    mode = mode or settings.mode
    data = load_beir(beir_dir, split)
    with tempfile.TemporaryDirectory(prefix="rag-eval-") as work:
        corpus_dir, index_dir = Path(work) / "corpus", Path(work) / "index"
        write_corpus(data.corpus, corpus_dir)
        started = time.perf_counter()
        stats = build_index(corpus_dir, index_dir, full=True, settings=settings, progress=progress)
        index_seconds = time.perf_counter() - started
        retriever = Retriever(index_dir, settings)
        try:
            run, latencies = run_queries(retriever, data.queries, mode=mode, progress=progress)
        finally:
            retriever.snapshot().close()
    run = {query_id: [beir_id(doc_id) for doc_id in docs] for query_id, docs in run.items()}
    return EvalReport(
        dataset=beir_dir.name,
        split=split,
        mode=mode,
        queries=len(data.queries),
        documents=stats.added,
        chunks=stats.chunks,
        metrics=score_run(run, data.qrels),
        latency_ms={"p50": 1000 * float(np.percentile(latencies, 50)),
                    "p95": 1000 * float(np.percentile(latencies, 95))},
        index_seconds=index_seconds,
        settings={"model": settings.model, "chunk_tokens": settings.chunk_tokens,
                  "threads": settings.threads},
    )
