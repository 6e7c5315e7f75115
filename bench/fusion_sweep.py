"""How hybrid fusion was chosen: normalisations, weights, candidate depth, document scoring, title
weighting and lexical feedback, swept over indexes that `rag index` built, on several BEIR sets.

Nothing is re-embedded: chunk vectors come from each index's FAISS file, query vectors are encoded
once and cached, every query's dense and BM25 score of every chunk is held in memory, and each
variant is then scored in seconds. BM25 rows are rebuilt from the index's own chunk texts for each
title variant with the product's tokeniser. Results are documents (each ranked by its passages) and
scored like `rag eval`; each set is reported on its own, and weights are chosen on one set and
reported on the other (``cross`` lines), so no figure is tuned on the data it is reported on.

    python bench/squad_paragraphs.py /tmp/squad-beir
    python bench/fusion_sweep.py --set scifact:../shared/beir/scifact:train:INDEX1 \\
                                 --set squad:/tmp/squad-beir:test:INDEX2

Each INDEX is a folder built by `rag index` from `rag.evaluate.write_corpus` of the set.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import faiss  # noqa: E402
import numpy as np  # noqa: E402

from rag import evaluate  # noqa: E402
from rag.config import load_settings  # noqa: E402
from rag.embedding import embedder_for  # noqa: E402
from rag.lexical import LexicalIndex  # noqa: E402
from rag.text import index_tokens  # noqa: E402
from rag.store import META_FILE, VECTORS_FILE, read_current  # noqa: E402

ALPHAS = [round(a, 2) for a in np.arange(0.1, 0.95, 0.05)]


@dataclass
class Dataset:
    name: str
    doc_names: list[str]  # BEIR ids, one per document
    chunk_doc: np.ndarray  # document of each chunk (chunks sorted by document)
    doc_starts: np.ndarray  # first chunk of each document
    dense: np.ndarray  # queries × chunks cosine
    lexical: dict[str, np.ndarray]  # title variant → queries × chunks BM25
    query_ids: list[str]
    qrels: evaluate.Qrels
    queries: list[str]
    rows: tuple  # (chunk ids, titles, texts, ordinals)


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message} (load {os.getloadavg()[0]:.2f})", file=sys.stderr, flush=True)


def _lexical_texts(variant: str, titles, texts, ordinals) -> list[str]:
    if variant == "every-chunk":
        return [f"{t}\n{x}" for t, x in zip(titles, texts)]
    if variant == "first-chunk":
        return [f"{t}\n{x}" if o == 0 else x for t, x, o in zip(titles, texts, ordinals)]
    return list(texts)


def load(name: str, beir: str, split: str, index_dir: str, variants: list[str], cache: Path) -> Dataset:
    data = evaluate.load_beir(beir, split)
    version = Path(index_dir) / read_current(Path(index_dir))
    db = sqlite3.connect(version / META_FILE)
    rows = db.execute(
        "SELECT c.chunk_id, c.doc_id, d.title, c.text, c.ordinal FROM chunks c JOIN documents d "
        "USING (doc_id) ORDER BY c.doc_id, c.ordinal").fetchall()
    chunk_ids = np.array([r[0] for r in rows])
    index = faiss.read_index(str(version / VECTORS_FILE))
    vectors = np.vstack([index.reconstruct(int(i)) for i in chunk_ids])
    doc_of_chunk = [evaluate.beir_id(r[1]) for r in rows]
    doc_names = list(dict.fromkeys(doc_of_chunk))
    position = {d: i for i, d in enumerate(doc_names)}
    chunk_doc = np.array([position[d] for d in doc_of_chunk])
    doc_starts = np.flatnonzero(np.r_[True, chunk_doc[1:] != chunk_doc[:-1]])
    query_ids = list(data.queries)
    queries = [data.queries[q] for q in query_ids]
    cached = cache / f"queries-{name}.npy"
    if cached.exists():
        query_vectors = np.load(cached)
    else:
        embedder = embedder_for(load_settings(threads=1))
        query_vectors = np.vstack([embedder.embed_query(q) for q in queries])
        np.save(cached, query_vectors)
    dense = query_vectors @ vectors.T
    titles, texts, ordinals = [r[2] for r in rows], [r[3] for r in rows], [r[4] for r in rows]
    lexical = {}
    for variant in variants:
        model = LexicalIndex.build(list(range(len(rows))), _lexical_texts(variant, titles, texts, ordinals))
        lexical[variant] = np.vstack([model.scores(q, spelling=False).of(list(range(len(rows)))) for q in queries]).astype(np.float32)
    _log(f"{name}: {len(query_ids)} queries, {len(doc_names)} documents, {len(rows)} chunks")
    return Dataset(name, doc_names, chunk_doc, doc_starts, dense, lexical, query_ids, data.qrels,
                   queries, (chunk_ids, titles, texts, ordinals))


def _top_mask(scores: np.ndarray, depth: int) -> np.ndarray:
    """True for each row's ``depth`` best (only positive scores for BM25-like rows handled by caller)."""
    if depth >= scores.shape[1]:
        return np.ones_like(scores, dtype=bool)
    cut = np.partition(-scores, depth - 1, axis=1)[:, depth - 1 : depth]
    return -scores <= cut


def normalise(scores: np.ndarray, how: str, lowest: float, mask: np.ndarray) -> np.ndarray:
    """Per query (row). ``lowest``: the theoretical minimum (0 for BM25, −1 or 0 for cosine)."""
    top = scores.max(axis=1, keepdims=True)
    if how == "tmm":
        return (np.maximum(scores, lowest) - lowest) / np.maximum(top - lowest, 1e-9)
    if how in ("floor100", "floor100-clip"):
        floor = -np.partition(-scores, 99, axis=1)[:, 99:100]
        if lowest == 0.0:  # BM25: fewer than 100 matches → floor 0
            floor = np.maximum(floor, 0.0)
        out = (scores - floor) / np.maximum(top - floor, 1e-9)
        return np.clip(out, 0, 1) if how == "floor100-clip" else out
    if how == "z":
        masked = np.where(mask, scores, np.nan)
        mean = np.nanmean(masked, axis=1, keepdims=True)
        std = np.nanstd(masked, axis=1, keepdims=True)
        return (scores - mean) / np.maximum(std, 1e-9)
    raise ValueError(how)


def _ranks(scores: np.ndarray) -> np.ndarray:
    order = np.argsort(-scores, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(1, scores.shape[1] + 1)[None, :].repeat(len(scores), 0), axis=1)
    return ranks


def doc_max(ds: Dataset, chunk_scores: np.ndarray) -> np.ndarray:
    return np.maximum.reduceat(chunk_scores, ds.doc_starts, axis=1)


def fused_documents(ds: Dataset, dense: np.ndarray, lexical: np.ndarray, *, how: str, alpha: float,
                    depth: int, level: str, dense_min: float = 0.0) -> np.ndarray:
    """Queries × documents fused scores (−inf: not a candidate)."""
    if level == "document":  # each list scores documents by their best chunk, then fuse
        dense, lexical = doc_max(ds, dense), doc_max(ds, lexical)
    candidates = _top_mask(dense, depth) | (_top_mask(lexical, depth) & (lexical > 0))
    if how == "rrf":
        fused = 1 / (60 + _ranks(dense)) + 1 / (60 + np.where(lexical > 0, _ranks(lexical), 10**9))
    else:
        d_mask = _top_mask(dense, depth)
        l_mask = _top_mask(lexical, depth) & (lexical > 0)
        fused = alpha * normalise(dense, how, dense_min, d_mask) + (1 - alpha) * normalise(lexical, how, 0.0, l_mask)
    fused = np.where(candidates, fused, -np.inf)
    return fused if level == "document" else doc_max(ds, fused)


def metrics(ds: Dataset, doc_scores: np.ndarray, rows: np.ndarray | None = None) -> dict[str, float]:
    rows = np.arange(len(ds.query_ids)) if rows is None else rows
    top = np.argsort(-doc_scores[rows], axis=1, kind="stable")[:, :100]
    run = {}
    for row, ids in zip(rows, top):
        valid = doc_scores[row, ids] > -np.inf
        run[ds.query_ids[row]] = [ds.doc_names[i] for i in ids[valid]]
    qrels = {ds.query_ids[r]: ds.qrels[ds.query_ids[r]] for r in rows}
    return {k: round(v, 4) for k, v in evaluate.score_run(run, qrels).items() if k != "recall@10"}


def prf_lexical(ds: Dataset, variant: str, chunks: int, terms: int, weight: float) -> np.ndarray:
    """BM25 with pseudo-relevance feedback: the query expanded by the ``terms`` terms that weigh
    most (summed BM25 weight) in its ``chunks`` best chunks, their scores added at ``weight``,
    each scaled by its share of the heaviest term's weight. (Measured and not kept.)"""
    from scipy import sparse

    chunk_ids, titles, texts, ordinals = ds.rows
    model = LexicalIndex.build(list(range(len(chunk_ids))), _lexical_texts(variant, titles, texts, ordinals))
    bm25 = model._model  # the bm25s model: its term weights as chunks × terms
    stored = bm25.scores
    weights = sparse.csc_matrix((stored["data"], stored["indices"], stored["indptr"]),
                                shape=(stored["num_docs"], len(stored["indptr"]) - 1))
    by_chunk = weights.tocsr()
    everything = list(range(len(chunk_ids)))
    rows = []
    for query in ds.queries:
        scores = np.asarray(model.scores(query, spelling=False).of(everything))
        query_terms = [bm25.vocab_dict[t] for t in index_tokens([query])[0] if t in bm25.vocab_dict]
        top = np.argsort(-scores)[:chunks]
        top = top[scores[top] > 0]
        mass = np.asarray(by_chunk[top].sum(axis=0)).ravel()
        mass[[t for t in query_terms if t < len(mass)]] = 0.0
        chosen = np.argsort(-mass)[:terms]
        chosen = chosen[mass[chosen] > 0]
        if len(chosen):
            scores = scores + weight * np.asarray(weights[:, chosen] @ (mass[chosen] / mass[chosen].max())).ravel()
        rows.append(scores)
    return np.vstack(rows).astype(np.float32)


FUSIONS = (("floor100", 0.0), ("floor100-clip", 0.0), ("tmm", 0.0), ("tmm", -1.0), ("z", 0.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", required=True, help="name:beir_dir:split:index_dir")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/rag-fusion-cache"))
    parser.add_argument("--only", nargs="*", default=["fusion", "depth", "titles", "prf", "spelling"])
    parser.add_argument("--fusions", nargs="*", help="only these, as how:floor (e.g. tmm:-1 floor100:0)")
    parser.add_argument("--how", default="tmm", help="fusion for the depth, titles and feedback sweeps")
    parser.add_argument("--dense-min", type=float, default=-1.0)
    parser.add_argument("--alpha", type=float, default=0.7)
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    variants = ["every-chunk", "first-chunk"]
    sets = [load(*spec.split(":"), variants=variants, cache=args.cache) for spec in args.set]
    rows = []

    def emit(**row):
        rows.append(row)
        print(json.dumps(row), flush=True)

    base = "every-chunk"
    chosen = dict(how=args.how, dense_min=args.dense_min, alpha=args.alpha)
    for ds in sets:
        d, lx = ds.dense, ds.lexical[base]
        emit(set=ds.name, system="dense", **metrics(ds, doc_max(ds, d)))
        emit(set=ds.name, system="bm25", **metrics(ds, doc_max(ds, np.where(lx > 0, lx, -np.inf))))
        emit(set=ds.name, system="rrf", **metrics(
            ds, fused_documents(ds, d, lx, how="rrf", alpha=0, depth=100, level="chunk")))
        if "fusion" in args.only:
            for how, dense_min in FUSIONS:
                if args.fusions and f"{how}:{dense_min:g}" not in args.fusions:
                    continue
                for alpha in ALPHAS:
                    for level in ("chunk", "document") if how == "tmm" else ("chunk",):
                        emit(set=ds.name, system="convex", how=how, dense_min=dense_min, alpha=alpha,
                             level=level, depth=100, **metrics(ds, fused_documents(
                                 ds, d, lx, how=how, alpha=alpha, depth=100, level=level, dense_min=dense_min)))
        if "depth" in args.only:
            for depth in (20, 50, 100, 200, 400, 1000):
                emit(set=ds.name, system="depth", depth=depth, **chosen, **metrics(ds, fused_documents(
                    ds, d, lx, how=args.how, alpha=args.alpha, depth=depth, level="chunk", dense_min=args.dense_min)))
        if "titles" in args.only:
            for variant in variants:
                for alpha in (args.alpha - 0.1, args.alpha, args.alpha + 0.1):
                    emit(set=ds.name, system="titles", titles=variant, alpha=round(alpha, 2), **metrics(
                        ds, fused_documents(ds, d, ds.lexical[variant], how=args.how, alpha=alpha, depth=100,
                                            level="chunk", dense_min=args.dense_min)))
                emit(set=ds.name, system="titles bm25", titles=variant, **metrics(
                    ds, doc_max(ds, np.where(ds.lexical[variant] > 0, ds.lexical[variant], -np.inf))))
        if "prf" in args.only:
            for chunks, terms, weight in ((5, 10, 0.3), (10, 10, 0.3), (10, 20, 0.2), (10, 10, 0.5)):
                expanded = prf_lexical(ds, base, chunks, terms, weight)
                emit(set=ds.name, system="prf bm25", chunks=chunks, terms=terms, weight=weight,
                     **metrics(ds, doc_max(ds, np.where(expanded > 0, expanded, -np.inf))))
                emit(set=ds.name, system="prf hybrid", chunks=chunks, terms=terms, weight=weight, **chosen,
                     **metrics(ds, fused_documents(ds, d, expanded, how=args.how, alpha=args.alpha, depth=100,
                                                   level="chunk", dense_min=args.dense_min)))
        if "spelling" in args.only:
            chunk_ids, titles, texts, ordinals = ds.rows
            model = LexicalIndex.build(list(range(len(chunk_ids))), _lexical_texts(base, titles, texts, ordinals))
            everything = list(range(len(chunk_ids)))
            tolerant = np.vstack([model.scores(q, spelling=True).of(everything) for q in ds.queries]).astype(np.float32)
            changed = int((np.abs(tolerant - lx).max(axis=1) > 0).sum())
            emit(set=ds.name, system="spelling bm25", queries_changed=changed,
                 **metrics(ds, doc_max(ds, np.where(tolerant > 0, tolerant, -np.inf))))
            emit(set=ds.name, system="spelling hybrid", **chosen, **metrics(ds, fused_documents(
                ds, d, tolerant, how=args.how, alpha=args.alpha, depth=100, level="chunk", dense_min=args.dense_min)))
    _cross(rows, [ds.name for ds in sets])


def _cross(rows: list[dict], names: list[str]) -> None:
    """Each fusion's weight chosen on one set (best nDCG@10) and reported on every other set."""
    for how, dense_min in FUSIONS:
        for level in ("chunk", "document"):
            grid = {(r["set"], r["alpha"]): r for r in rows if r["system"] == "convex" and r["how"] == how
                    and r["dense_min"] == dense_min and r["level"] == level}
            for tuned in names:
                options = [r for (name, _), r in grid.items() if name == tuned]
                if not options:
                    continue
                alpha = max(options, key=lambda r: r["ndcg@10"])["alpha"]
                for reported in names:
                    r = grid[(reported, alpha)]
                    print(json.dumps({"cross": f"{how} min {dense_min} {level}", "tuned_on": tuned, "alpha": alpha,
                                      "reported_on": reported, "ndcg@10": r["ndcg@10"],
                                      "recall@100": r["recall@100"], "mrr@10": r["mrr@10"]}), flush=True)


if __name__ == "__main__":
    main()
