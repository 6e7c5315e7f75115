"""How hybrid retrieval was chosen: normalisations, weights, candidate depth, document scoring,
sentence vectors, BM25 parameters and dense feedback, swept over indexes `rag index` built, on
several BEIR sets, each choice cross-fitted (chosen on one set, reported on the other).

Nothing is re-embedded: chunk and sentence vectors come from each index's segments, query vectors
are encoded once and cached, every query's cosine and BM25 score of every chunk is held in memory,
and each variant is then scored in seconds. BM25 rows are rebuilt from the index's own chunk texts
with the product's tokeniser (``rag.lexical``) for each (k1, b). Results are documents (each
ranked by its passages) and scored like `rag eval`.

Every family of variants (``system``) is printed per set, then as ``cross`` lines: its settings
chosen by nDCG@10 on one set and reported on every other, beside the same set's plain RRF and
the product's current fusion, so no figure is tuned on the data it is reported on.

    python bench/squad_paragraphs.py /tmp/squad-beir
    python bench/fusion_sweep.py --set scifact:../shared/beir/scifact:train:INDEX1 \\
                                 --set squad-dev:/tmp/squad-beir:test:INDEX2

Each INDEX is a folder built by `rag index` from `rag.evaluate.write_corpus` of the set (as
bench/retrieval_quality.py builds them).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

import rag.lexical as lexical  # noqa: E402
from rag import evaluate  # noqa: E402
from rag.config import load_settings  # noqa: E402
from rag.embedding import embedder_for  # noqa: E402
from rag.index.writer import lexical_text  # noqa: E402
from rag.store import open_snapshot  # noqa: E402

ALPHAS = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9)
RRF_K = 60
DEPTH = 100
#: The product's fusion: theoretical min-max (cosine floor −1, BM25 floor 0), this dense weight.
PRODUCT_ALPHA = load_settings().dense_weight


@dataclass
class Dataset:
    name: str
    doc_names: list[str]  # BEIR ids, one per document
    doc_starts: np.ndarray  # first chunk of each document (chunks sorted by document)
    doc_texts: list[str]  # each document as BM25 would see it whole (title + text)
    chunk_texts: list[str]  # each chunk as BM25 sees it (title + chunk)
    vectors: np.ndarray  # chunks × dimension
    sentences: np.ndarray  # sentences × dimension
    pair_chunk: np.ndarray  # (chunk, sentence) pairs: each sentence of each chunk, by chunk
    pair_sentence: np.ndarray
    query_vectors: np.ndarray
    query_ids: list[str]
    queries: list[str]
    qrels: evaluate.Qrels


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message} (load {os.getloadavg()[0]:.2f})", file=sys.stderr, flush=True)


def load(name: str, beir: str, split: str, index_dir: str, cache: Path) -> Dataset:
    """Every live chunk of the index's current version with its vector and its sentences'."""
    data = evaluate.load_beir(beir, split)
    snapshot = open_snapshot(Path(index_dir))
    chunks, vectors, sentence_rows, sentence_vectors = [], [], [], []
    for segment, live in zip(snapshot._segments, snapshot._live):
        rows = segment.query(
            "SELECT c.chunk_id, c.doc_id, d.title, substr(d.text, c.start + 1, c.end - c.start), "
            "c.ordinal, c.start, c.end FROM chunks c JOIN documents d USING (doc_id)")
        held = set(np.asarray(segment.chunk_ids)[live].tolist()) if live is not None else None
        rows = [r for r in rows if held is None or r[0] in held]
        chunks += rows
        vectors.append(np.asarray(segment.vectors[segment.rows_of([r[0] for r in rows])], dtype=np.float32))
        offset = sum(len(v) for v in sentence_vectors)
        sentence_rows += [(d, s, e, offset + row) for d, s, e, row in segment.query(
            "SELECT doc_id, start, end, row FROM sentences")]
        sentence_vectors.append(np.asarray(segment.sentences, dtype=np.float32))
    order = sorted(range(len(chunks)), key=lambda i: (chunks[i][1], chunks[i][4]))
    chunks = [chunks[i] for i in order]
    vectors = np.vstack(vectors)[order]
    doc_of_chunk = [evaluate.beir_id(c[1]) for c in chunks]
    doc_names = list(dict.fromkeys(doc_of_chunk))
    doc_starts = np.flatnonzero(np.r_[True, np.array(doc_of_chunk[1:]) != np.array(doc_of_chunk[:-1])])
    by_doc: dict[str, list[tuple[int, int, int]]] = {}
    for i, c in enumerate(chunks):
        by_doc.setdefault(c[1], []).append((i, c[5], c[6]))
    pairs = sorted((i, row) for d, s, e, row in sentence_rows for i, cs, ce in by_doc.get(d, ()) if cs <= s and e <= ce)
    texts = {c[1]: (c[2], snapshot.document(c[1]).text) for c in chunks if c[4] == 0}
    query_ids = list(data.queries)
    queries = [data.queries[q] for q in query_ids]
    cached = cache / f"queries-{name}.npy"
    if cached.exists():
        query_vectors = np.load(cached)
    else:
        embedder = embedder_for(load_settings(threads=1))
        query_vectors = np.vstack([embedder.embed_query(q) for q in queries])
        np.save(cached, query_vectors)
    snapshot.close()
    _log(f"{name}: {len(queries)} queries, {len(doc_names)} documents, {len(chunks)} chunks, "
         f"{len(sentence_rows)} sentences")
    return Dataset(name, doc_names, doc_starts,
                   [lexical_text(*texts[d]) for d in dict.fromkeys(c[1] for c in chunks)],
                   [lexical_text(c[2], c[3]) for c in chunks], vectors, np.vstack(sentence_vectors),
                   np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs]),
                   query_vectors.astype(np.float32), query_ids, queries, data.qrels)


def bm25(ds: Dataset, texts: list[str], k1: float = lexical.K1, b: float = lexical.B) -> np.ndarray:
    """Queries × texts BM25 with the product's tokeniser and spelling tolerance, at (k1, b)."""
    saved = lexical.K1, lexical.B
    lexical.K1, lexical.B = k1, b
    try:
        index = lexical.LexicalIndex.build(list(range(len(texts))), texts)
    finally:
        lexical.K1, lexical.B = saved
    everything = list(range(len(texts)))
    return np.vstack([index.scores(q).of(everything) for q in ds.queries]).astype(np.float32)


def sentence_max(ds: Dataset, query_vectors: np.ndarray) -> np.ndarray:
    """Queries × chunks: the best cosine of any sentence of the chunk (−1 for a chunk with none)."""
    per_pair = (query_vectors @ ds.sentences.T)[:, ds.pair_sentence]
    starts = np.flatnonzero(np.r_[True, ds.pair_chunk[1:] != ds.pair_chunk[:-1]])
    out = np.full((len(query_vectors), len(ds.vectors)), -1.0, np.float32)
    out[:, ds.pair_chunk[starts]] = np.maximum.reduceat(per_pair, starts, axis=1)
    return out


def _top_mask(scores: np.ndarray, depth: int) -> np.ndarray:
    if depth >= scores.shape[1]:
        return np.ones_like(scores, dtype=bool)
    cut = np.partition(-scores, depth - 1, axis=1)[:, depth - 1 : depth]
    return -scores <= cut


def _ranks(scores: np.ndarray) -> np.ndarray:
    order = np.argsort(-scores, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.broadcast_to(np.arange(1, scores.shape[1] + 1), scores.shape), axis=1)
    return ranks


def normalise(scores: np.ndarray, how: str, floor: float, mask: np.ndarray) -> np.ndarray:
    """Per query (row). tmm: theoretical min-max from ``floor``; z: z-score over the list's top
    ``DEPTH``; dbsf: distribution-based (mean ± 3 sd of that top mapped onto [0, 1], clipped)."""
    if how == "tmm":
        top = scores.max(axis=1, keepdims=True)
        return np.clip((scores - floor) / np.maximum(top - floor, 1e-9), 0.0, 1.0)
    masked = np.where(mask, scores, np.nan)
    mean = np.nanmean(masked, axis=1, keepdims=True)
    sd = np.maximum(np.nanstd(masked, axis=1, keepdims=True), 1e-9)
    if how == "z":
        return (scores - mean) / sd
    if how == "dbsf":
        return np.clip((scores - (mean - 3 * sd)) / (6 * sd), 0.0, 1.0)
    raise ValueError(how)


def fuse(dense: np.ndarray, lex: np.ndarray, *, alpha: float = PRODUCT_ALPHA, how: str = "tmm",
         floor: float = -1.0, depth: int = DEPTH) -> np.ndarray:
    """Queries × items fused scores over both lists' top ``depth`` (−inf: not a candidate)."""
    dense_top, lexical_top = _top_mask(dense, depth), _top_mask(lex, depth) & (lex > 0)
    if how == "rrf":
        fused = 1 / (RRF_K + _ranks(dense)) + 1 / (RRF_K + np.where(lex > 0, _ranks(lex), 10**9))
    else:
        fused = (alpha * normalise(dense, how, floor, dense_top)
                 + (1 - alpha) * normalise(lex, how, 0.0, lexical_top))
    return np.where(dense_top | lexical_top, fused, -np.inf)


def doc_max(ds: Dataset, chunk_scores: np.ndarray) -> np.ndarray:
    return np.maximum.reduceat(chunk_scores, ds.doc_starts, axis=1)


def doc_aggregate(ds: Dataset, chunk_scores: np.ndarray, gamma: float, passages: int) -> np.ndarray:
    """A document's best chunk plus gamma^i times its (i+1)-th best, for its ``passages`` best."""
    best = doc_max(ds, chunk_scores)
    counts = np.diff(np.r_[ds.doc_starts, chunk_scores.shape[1]])
    finite = np.where(np.isfinite(chunk_scores), chunk_scores, 0.0)
    slots = np.full((len(counts), counts.max()), -1)
    for j in range(counts.max()):
        slots[counts > j, j] = ds.doc_starts[counts > j] + j
    per_doc = finite[:, np.maximum(slots, 0)]
    per_doc[:, slots < 0] = 0.0
    per_doc = -np.sort(-per_doc, axis=2)
    extra = sum(gamma ** i * per_doc[:, :, i] for i in range(1, min(passages, per_doc.shape[2])))
    return np.where(np.isfinite(best), best + extra, -np.inf)


def rocchio(ds: Dataset, fused: np.ndarray, feedback: int, beta: float) -> np.ndarray:
    """Query vectors moved toward the mean vector of their ``feedback`` best fused chunks."""
    top = np.argsort(-np.where(np.isfinite(fused), fused, -9.0), axis=1)[:, :feedback]
    moved = ds.query_vectors + beta * ds.vectors[top].mean(axis=1)
    return moved / np.linalg.norm(moved, axis=1, keepdims=True)


def metrics(ds: Dataset, doc_scores: np.ndarray) -> dict[str, float]:
    top = np.argsort(-doc_scores, axis=1, kind="stable")[:, :100]
    run = {}
    for row, ids in enumerate(top):
        valid = doc_scores[row, ids] > -np.inf
        run[ds.query_ids[row]] = [ds.doc_names[i] for i in ids[valid]]
    scores = evaluate.score_run(run, ds.qrels)
    return {k: round(scores[k], 4) for k in ("ndcg@10", "recall@100", "mrr@10")}


SECTIONS = ("fusion", "depth", "aggregate", "sentences", "bm25", "rocchio", "document-bm25")


def sweep(ds: Dataset, only: list[str], emit) -> None:
    dense = ds.query_vectors @ ds.vectors.T
    lex = bm25(ds, ds.chunk_texts)
    emit(set=ds.name, system="MiniLM alone", **metrics(ds, doc_max(ds, dense)))
    emit(set=ds.name, system="BM25 alone", **metrics(ds, doc_max(ds, np.where(lex > 0, lex, -np.inf))))
    emit(set=ds.name, system="plain RRF", **metrics(ds, doc_max(ds, fuse(dense, lex, how="rrf"))))
    product = fuse(dense, lex)
    emit(set=ds.name, system="product", alpha=PRODUCT_ALPHA, **metrics(ds, doc_max(ds, product)))
    if "fusion" in only:
        for how, floor in (("tmm", -1.0), ("tmm", 0.0), ("z", 0.0), ("dbsf", 0.0)):
            for alpha in ALPHAS:
                emit(set=ds.name, system=f"convex {how} floor {floor:g}", alpha=alpha,
                     **metrics(ds, doc_max(ds, fuse(dense, lex, alpha=alpha, how=how, floor=floor))))
            for alpha in ALPHAS:  # each list's documents (best chunk) first, then fused
                emit(set=ds.name, system=f"convex {how} floor {floor:g}, fused per document", alpha=alpha,
                     **metrics(ds, fuse(doc_max(ds, dense), doc_max(ds, lex), alpha=alpha, how=how, floor=floor)))
    if "depth" in only:
        for depth in (20, 50, 100, 200, 400, 1000):
            emit(set=ds.name, system="depth", depth=depth, **metrics(ds, doc_max(ds, fuse(dense, lex, depth=depth))))
    if "aggregate" in only:
        for gamma in (0.1, 0.25, 0.5):
            for passages in (2, 3):
                emit(set=ds.name, system="document = best + discounted next", gamma=gamma, passages=passages,
                     **metrics(ds, doc_aggregate(ds, product, gamma, passages)))
    if "sentences" in only:
        best_sentence = sentence_max(ds, ds.query_vectors)
        for share in (0.25, 0.5, 0.75, 1.0):
            blended = (1 - share) * dense + share * best_sentence
            emit(set=ds.name, system="sentence-blended dense alone", share=share,
                 **metrics(ds, doc_max(ds, blended)))
            for alpha in ALPHAS:
                emit(set=ds.name, system="sentence-blended dense, fused", share=share, alpha=alpha,
                     **metrics(ds, doc_max(ds, fuse(blended, lex, alpha=alpha))))
    if "bm25" in only:
        for k1, b in ((0.9, 0.4), (0.9, 0.75), (1.2, 0.5), (1.2, 0.75), (1.5, 0.5), (1.5, 0.75), (2.0, 0.75)):
            scores = bm25(ds, ds.chunk_texts, k1, b)
            emit(set=ds.name, system="BM25 (k1, b) alone", k1=k1, b=b,
                 **metrics(ds, doc_max(ds, np.where(scores > 0, scores, -np.inf))))
            for alpha in ALPHAS:
                emit(set=ds.name, system="BM25 (k1, b), fused", k1=k1, b=b, alpha=alpha,
                     **metrics(ds, doc_max(ds, fuse(dense, scores, alpha=alpha))))
    if "rocchio" in only:
        for feedback in (1, 3, 5, 10):
            for beta in (0.25, 0.5, 1.0):
                moved = rocchio(ds, product, feedback, beta) @ ds.vectors.T
                emit(set=ds.name, system="dense Rocchio on the fused top, fused again", feedback=feedback,
                     beta=beta, **metrics(ds, doc_max(ds, fuse(moved, lex))))
    if "document-bm25" in only:
        whole = bm25(ds, ds.doc_texts)
        emit(set=ds.name, system="BM25 of whole documents alone", **metrics(ds, np.where(whole > 0, whole, -np.inf)))
        for alpha in ALPHAS:
            emit(set=ds.name, system="BM25 of whole documents, fused with best-chunk cosine", alpha=alpha,
                 **metrics(ds, fuse(doc_max(ds, dense), whole, alpha=alpha)))


_BASES = ("system", "set", "ndcg@10", "recall@100", "mrr@10")


def cross(rows: list[dict], names: list[str]) -> list[dict]:
    """Each family's settings chosen on one set (best nDCG@10) and reported on every other."""
    out = []
    reference = {(r["set"], r["system"]): r for r in rows if r["system"] in ("plain RRF", "product")}
    for system in dict.fromkeys(r["system"] for r in rows):
        family = [r for r in rows if r["system"] == system]
        if len({json.dumps({k: v for k, v in r.items() if k not in _BASES}) for r in family}) < 2:
            continue
        for tuned in names:
            options = [r for r in family if r["set"] == tuned]
            if not options:
                continue
            chosen = {k: v for k, v in max(options, key=lambda r: r["ndcg@10"]).items() if k not in _BASES}
            for reported in names:
                if reported == tuned:
                    continue
                match = next((r for r in family if r["set"] == reported
                              and all(r.get(k) == v for k, v in chosen.items())), None)
                if match is None:
                    continue
                rrf, product = reference[(reported, "plain RRF")], reference[(reported, "product")]
                out.append({"cross": system, "chosen_on": tuned, **chosen, "reported_on": reported,
                            "ndcg@10": match["ndcg@10"], "recall@100": match["recall@100"],
                            "mrr@10": match["mrr@10"],
                            "ndcg@10 - rrf": round(match["ndcg@10"] - rrf["ndcg@10"], 4),
                            "recall@100 - rrf": round(match["recall@100"] - rrf["recall@100"], 4),
                            "ndcg@10 - product": round(match["ndcg@10"] - product["ndcg@10"], 4)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", required=True, help="name:beir_dir:split:index_dir")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/rag-fusion-cache"))
    parser.add_argument("--only", nargs="*", default=list(SECTIONS), choices=SECTIONS)
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []

    def emit(**row):
        rows.append(row)
        print(json.dumps(row), flush=True)

    names = []
    for spec in args.set:
        ds = load(*spec.split(":"), cache=args.cache)
        names.append(ds.name)
        sweep(ds, args.only, emit)
        del ds
    for line in cross(rows, names):
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
