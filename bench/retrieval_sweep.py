"""How the retrieval defaults were chosen: chunking, title handling and fusion, swept on SciFact.

Encoding is the only slow step, so each chunk text is embedded once and cached by its content;
dense and BM25 rankings per query are cached per configuration, and every fusion variant is then
scored from those cached rankings in seconds. Chunks, embedding texts, BM25 texts and scorers are
the product's own (rag.indexer, rag.lexical), so a configuration here is what `rag index` builds.

    python bench/retrieval_sweep.py encode --chunk-tokens 128 --overlap 1 --titles prepend
    python bench/retrieval_sweep.py fuse --configs c128-o1-prepend-bfloat16 c128-o0-first-bfloat16

Also tried: ``--titles late`` (late chunking: whole chunks packed into full model windows, each
chunk's vector pooled from its tokens there) and ``--sentences`` (a chunk's dense score plus its
best sentence's).

Each `encode` takes 10–20 minutes on one thread; `fuse` a minute. Scores beyond a list's cached
top 1,000 are approximated (the 1,000th dense score, BM25 0), so a figure here can differ from
`rag eval` in the third decimal. The cache lives in $RAG_BENCH_CACHE (default /tmp/rag-bench-cache).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from rag import evaluate
from rag.config import Settings
from rag.embedding import embedder_for
from rag.chunking import split_sentences
from rag.indexer import _chunk_for, embedding_text
from rag.lexical import LexicalIndex
from rag.loaders import load_document

SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "beir" / "scifact"
CACHE = Path(os.environ.get("RAG_BENCH_CACHE", "/tmp/rag-bench-cache"))
DEPTH = 1000


def _documents(data: evaluate.BeirData):
    folder = CACHE / "scifact-docs"
    if not folder.exists():
        evaluate.write_corpus(data.corpus, folder)
    return [load_document(path, path.name) for path in sorted(folder.glob("*.md"))]


def _starts_with_title(title: str, text: str) -> bool:
    words = title.split()
    return bool(words) and text.lstrip("#").split()[: len(words)] == words


def _text(titles: str, title: str, chunk: str, ordinal: int = 0) -> str:
    """A chunk with its title: always before it, only when the chunk doesn't start with it, only
    before a document's first chunk, or never."""
    if (titles == "none" or (titles == "dedup" and _starts_with_title(title, chunk))
            or (titles == "first" and ordinal > 0)):
        return chunk
    return embedding_text(title, chunk)


def _late_windows(embedder, doc, title, chunks) -> list[tuple[str, list[tuple[int, int]]]]:
    """Late chunking: consecutive whole chunks packed into full model windows (title first); each
    chunk's vector is then pooled from its tokens in the window's one forward pass."""
    prefix = f"{title}\n" if title else ""
    room = embedder.max_tokens - embedder.special_tokens - (embedder.count_tokens(prefix) if prefix else 0)
    windows, members = [], []
    for chunk in chunks:
        if members and embedder.count_tokens(doc.text[members[0].start : chunk.end]) > room:
            windows.append(members)
            members = []
        members.append(chunk)
    if members:
        windows.append(members)
    out = []
    for members in windows:
        start = members[0].start
        text = prefix + doc.text[start : members[-1].end]
        out.append((text, [(len(prefix) + c.start - start, len(prefix) + c.end - start) for c in members]))
    return out


class VectorCache:
    """Vectors by sha1 of the exact text the model saw."""

    def __init__(self, path: Path):
        self.path = path
        self.vectors: dict[str, np.ndarray] = {}
        if path.exists():
            saved = np.load(path)
            self.vectors = dict(zip(saved["keys"].tolist(), saved["vectors"]))

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha1(text.encode()).hexdigest()

    def embed(self, embedder, texts: list[str]) -> np.ndarray:
        missing = sorted({t for t in texts if self.key(t) not in self.vectors})
        print(f"encoding {len(missing)} of {len(texts)} texts", file=sys.stderr)
        for start in range(0, len(missing), 2048):  # save as we go: encoding takes minutes
            part = missing[start : start + 2048]
            for text, vector in zip(part, embedder.embed_documents(part, progress=True)):
                self.vectors[self.key(text)] = vector
            self.save()
        return np.vstack([self.vectors[self.key(t)] for t in texts])

    def save(self) -> None:
        keys = list(self.vectors)
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, keys=np.array(keys), vectors=np.vstack([self.vectors[k] for k in keys]))
        os.replace(tmp, self.path)


def encode(chunk_tokens: int, overlap: int, titles: str, precision: str, sentences: bool = False) -> Path:
    """Chunk, embed (cached) and rank every query densely and with each BM25 title variant.

    ``sentences``: a chunk's dense score is its cosine plus its best sentence's, the sentence
    vectors pooled from the chunk's forward pass as the indexer stores them for answering.
    """
    name = f"c{chunk_tokens}-o{overlap}-{titles}-{precision}" + ("-sentences" if sentences else "")
    out = CACHE / f"rankings-{name}.npz"
    data = evaluate.load_beir(SCIFACT, "train")
    settings = Settings(chunk_tokens=chunk_tokens, chunk_overlap_sentences=overlap, threads=1,
                        precision=precision)
    embedder = embedder_for(settings)
    chunk_docs, chunk_texts, chunk_ordinals, embedding_titles, doc_titles = [], [], [], [], []
    late_windows: list[tuple[str, list[tuple[int, int]]]] = []
    for doc in _documents(data):
        title, chunks = _chunk_for(embedder, settings, doc)
        if titles == "late":
            late_windows += _late_windows(embedder, doc, title, chunks)
        for chunk in chunks:
            chunk_docs.append(evaluate.beir_id(doc.doc_id))
            chunk_texts.append(chunk.text)
            chunk_ordinals.append(chunk.ordinal)
            embedding_titles.append(title)
            doc_titles.append(doc.title)
    if titles == "late":
        texts = [text for text, _ in late_windows]
        tokens = sum(embedder.count_tokens(t) + embedder.special_tokens for t in texts)
        started = time.perf_counter()
        _, pooled = embedder.embed_documents_and_spans(texts, [spans for _, spans in late_windows],
                                                       progress=True)
        vectors = np.vstack(pooled)
    elif sentences:
        texts = [_text(titles, t, c, o) for t, c, o in zip(embedding_titles, chunk_texts, chunk_ordinals)]
        tokens = sum(embedder.count_tokens(t) + embedder.special_tokens for t in texts)
        spans = [[(len(t) - len(c) + a, len(t) - len(c) + b) for a, b in split_sentences(c)]
                 for t, c in zip(texts, chunk_texts)]
        started = time.perf_counter()
        vectors, pooled = embedder.embed_documents_and_spans(texts, spans, progress=True)
    else:
        cache = VectorCache(CACHE / f"vectors-{name}.npz")
        texts = [_text(titles, t, c, o) for t, c, o in zip(embedding_titles, chunk_texts, chunk_ordinals)]
        tokens = sum(embedder.count_tokens(t) + embedder.special_tokens for t in texts)
        started = time.perf_counter()
        vectors = cache.embed(embedder, texts)
    encode_seconds = time.perf_counter() - started
    query_ids = list(data.queries)
    query_vectors = np.vstack([embedder.embed_query(data.queries[q]) for q in query_ids])
    similarity = query_vectors @ vectors.T
    if sentences:
        owners = np.concatenate([np.full(len(p), i) for i, p in enumerate(pooled)])
        first_sentences = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])
        similarity += np.maximum.reduceat(query_vectors @ np.vstack(pooled).T, first_sentences, axis=1)
    dense_ids = np.argsort(-similarity, axis=1)[:, :DEPTH]
    rankings = {"dense_ids": dense_ids, "dense_scores": np.take_along_axis(similarity, dense_ids, axis=1)}
    for variant in ("prepend", "dedup", "none"):
        texts = [_text(variant, t, c) for t, c in zip(doc_titles, chunk_texts)]
        lexical = LexicalIndex.build(list(range(len(texts))), texts)
        ids = np.full((len(query_ids), DEPTH), -1, dtype=np.int64)
        scores = np.zeros((len(query_ids), DEPTH), dtype=np.float32)
        for row, q in enumerate(query_ids):
            hits = lexical.search(data.queries[q], DEPTH)
            ids[row, : len(hits)] = [i for i, _ in hits]
            scores[row, : len(hits)] = [s for _, s in hits]
        rankings[f"bm25{variant}_ids"], rankings[f"bm25{variant}_scores"] = ids, scores
    np.savez(out, query_ids=np.array(query_ids), chunk_docs=np.array(chunk_docs), **rankings)
    print(json.dumps({"config": name, "chunks": len(chunk_docs), "tokens": tokens,
                      "encode_seconds": round(encode_seconds, 1), "load": os.getloadavg()}))
    return out


# ---------------------------------------------------------------- fusion variants

NORMALISATION_DEPTH = 100  # rag.retriever.CANDIDATES
EVAL_DEPTH = 4 * evaluate.RUN_DEPTH  # chunks, as rag.evaluate read them before documents were a unit


def _shift_scale(top: np.ndarray, how: str) -> tuple[float, float]:
    """Min-max (best → 1, rank-100 score → 0) or z-score over a list's top 100."""
    top = top[:NORMALISATION_DEPTH]
    if not len(top):
        return 0.0, 1.0
    if how == "z":
        return float(top.mean()), float(top.std()) or 1.0
    return float(top[-1]), float(top[0] - top[-1]) or 1.0


class Query:
    """One query's cached dense and BM25 rankings (chunk ids and scores, best first)."""

    def __init__(self, dense_ids, dense_scores, lexical_ids, lexical_scores):
        keep = lexical_ids >= 0
        self.dense = (dense_ids, dense_scores)
        self.lexical = (lexical_ids[keep], lexical_scores[keep])
        self.dense_of = dict(zip(dense_ids.tolist(), dense_scores.tolist()))
        self.lexical_of = dict(zip(self.lexical[0].tolist(), self.lexical[1].tolist()))

    def rrf(self, depth: int = EVAL_DEPTH, k: float = 60) -> list[int]:
        fused: dict[int, float] = {}
        for ids in (self.dense[0][:depth], self.lexical[0][:depth]):
            for rank, chunk_id in enumerate(ids.tolist()):
                fused[chunk_id] = fused.get(chunk_id, 0.0) + 1 / (k + rank + 1)
        return sorted(fused, key=fused.get, reverse=True)

    def convex(self, alpha: float, how: str = "minmax", exact: bool = True, depth: int = EVAL_DEPTH) -> list[int]:
        """alpha × normalised dense + (1 − alpha) × normalised BM25 over both top lists.

        ``exact``: a chunk missing from one list gets its true score there (as rag.retriever
        does); otherwise that list's rank-100 score, as if nothing were known about it.
        """
        d_shift, d_scale = _shift_scale(self.dense[1], how)
        l_shift, l_scale = _shift_scale(self.lexical[1], how)
        dense_top = dict(zip(self.dense[0][:depth].tolist(), self.dense[1][:depth].tolist()))
        lexical_top = dict(zip(self.lexical[0][:depth].tolist(), self.lexical[1][:depth].tolist()))
        if exact:  # beyond the cached 1,000: the 1,000th dense score, BM25 0
            dense_of, dense_else = self.dense_of, float(self.dense[1][-1])
            lexical_of, lexical_else = self.lexical_of, 0.0
        else:
            dense_of, dense_else = dense_top, _floor(self.dense[1])
            lexical_of, lexical_else = lexical_top, _floor(self.lexical[1])
        fused = {
            c: alpha * (dense_of.get(c, dense_else) - d_shift) / d_scale
            + (1 - alpha) * (lexical_of.get(c, lexical_else) - l_shift) / l_scale
            for c in dense_top.keys() | lexical_top.keys()
        }
        return sorted(fused, key=fused.get, reverse=True)


def _floor(scores: np.ndarray) -> float:
    return float(scores[: NORMALISATION_DEPTH][-1]) if len(scores) else 0.0


def _load(config: str, bm25: str):
    saved = np.load(CACHE / f"rankings-{config}.npz")
    queries = [
        Query(saved["dense_ids"][i], saved["dense_scores"][i], saved[f"bm25{bm25}_ids"][i],
              saved[f"bm25{bm25}_scores"][i])
        for i in range(len(saved["query_ids"]))
    ]
    return saved["query_ids"].tolist(), saved["chunk_docs"].tolist(), queries


def _metrics(query_ids, chunk_docs, rankings, qrels) -> dict[str, float]:
    run = {
        q: evaluate.best_chunk_per_document(chunk_docs[c] for c in ranking)
        for q, ranking in zip(query_ids, rankings)
    }
    return {name: round(value, 4) for name, value in evaluate.score_run(run, qrels).items()}


def fuse(configs: list[str], bm25_variants: list[str]) -> None:
    """One JSON line per (chunking, BM25 title handling, fusion): the metrics of `rag eval`."""
    qrels = evaluate.load_beir(SCIFACT, "train").qrels
    for config in configs:
        for bm25 in bm25_variants:
            query_ids, chunk_docs, queries = _load(config, bm25)
            variants = {
                "dense": [q.dense[0].tolist() for q in queries],
                "bm25": [q.lexical[0].tolist() for q in queries],
                "rrf k=60": [q.rrf() for q in queries],
                "convex min-max 0.6, unknown = floor": [q.convex(0.6, exact=False) for q in queries],
                "convex z-score 0.6": [q.convex(0.6, "z") for q in queries],
            }
            for alpha in (0.4, 0.5, 0.6, 0.7):
                variants[f"convex min-max {alpha}"] = [q.convex(alpha) for q in queries]
            for name, rankings in variants.items():
                print(json.dumps({"config": config, "bm25": bm25, "fusion": name,
                                  **_metrics(query_ids, chunk_docs, rankings, qrels)}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    enc = commands.add_parser("encode")
    enc.add_argument("--chunk-tokens", type=int, default=200)
    enc.add_argument("--overlap", type=int, default=1, help="chunk_overlap_sentences")
    enc.add_argument("--titles", choices=["prepend", "dedup", "first", "none", "late"], default="prepend")
    enc.add_argument("--precision", choices=["float32", "bfloat16"], default="bfloat16")
    enc.add_argument("--sentences", action="store_true", help="dense score + best sentence's")
    fu = commands.add_parser("fuse")
    fu.add_argument("--configs", nargs="+", default=["c128-o1-prepend-bfloat16"])
    fu.add_argument("--bm25", nargs="+", default=["prepend"])
    args = parser.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    if args.command == "encode":
        encode(args.chunk_tokens, args.overlap, args.titles, args.precision, args.sentences)
    else:
        fuse(args.configs, args.bm25)


if __name__ == "__main__":
    main()
