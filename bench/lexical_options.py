"""The lexical side measured three ways: today's term-frequency postings (rag.lexical), SQLite
FTS5 ``bm25()`` and tantivy, all fed rag's own index terms (rag.text.index_tokens, joined by
spaces and split on whitespace), so only the scoring and the storage differ.

Quality, SciFact train (809 queries, 5,183 abstracts as title + abstract): nDCG@10 of BM25 alone,
and of a hybrid in which only the lexical scores change: 0.7 × dense + 0.3 × BM25, each
normalised per query as the retriever does (lowest possible score 0, the query's best 1), with a
document's dense score its best sentence's cosine to the question (real MiniLM vectors from
bench/ann_bench.py's cache; a proxy for chunk vectors, the same for every option).

Cost, synthetic texts of bench/store_bench.py at ``--chunks``: build, an update (remove 20
documents, add 1 of 10 chunks, commit, and what a reader's opening of the result costs), and a
question (top 100 and the scores of 100 other chunks, as hybrid search asks), one thread, CPU time.

    python bench/lexical_options.py --chunks 100000 --vectors /tmp/scifact-vectors.npy
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from rag.lexical import LexicalIndex  # noqa: E402
from rag.text import index_tokens  # noqa: E402

SCIFACT = ROOT.parent / "shared" / "beir" / "scifact"
DENSE_WEIGHT = 0.7


def load_average() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


class Postings:
    name = "postings"

    def __init__(self, ids: list[int], texts: list[str], work: Path):
        self.parts = [(LexicalIndex.build(ids, texts), None)]
        self.parts[0][0].save(work)
        self.index = LexicalIndex.combined(self.parts)

    def update(self, removed: list[int], ids: list[int], texts: list[str]) -> None:
        part, live = self.parts[0]
        live = np.ones(len(part), dtype=bool) if live is None else live.copy()
        live[np.searchsorted(part._single()[1], removed)] = False
        self.parts = [(part, live)] + self.parts[1:] + [(LexicalIndex.build(ids, texts), None)]
        self.index = LexicalIndex.combined(self.parts)

    def top(self, terms: list[str], k: int) -> list[tuple[int, float]]:
        return self.index.scores_of_terms(terms).top(k)

    def of(self, terms: list[str], ids: list[int]) -> list[float]:
        return self.index.scores_of_terms(terms).of(ids)


class Fts5:
    name = "sqlite-fts5"

    def __init__(self, ids: list[int], texts: list[str], work: Path):
        self.db = sqlite3.connect(work / "fts.sqlite")
        self.db.execute("CREATE VIRTUAL TABLE chunks USING fts5(terms, tokenize = \"unicode61 tokenchars '_'\")")
        self.db.executemany("INSERT INTO chunks (rowid, terms) VALUES (?, ?)",
                            zip(ids, (" ".join(t) for t in index_tokens(texts))))
        self.db.commit()

    def update(self, removed: list[int], ids: list[int], texts: list[str]) -> None:
        self.db.executemany("DELETE FROM chunks WHERE rowid = ?", [(i,) for i in removed])
        self.db.executemany("INSERT INTO chunks (rowid, terms) VALUES (?, ?)",
                            zip(ids, (" ".join(t) for t in index_tokens(texts))))
        self.db.commit()

    @staticmethod
    def _match(terms: list[str]) -> str:
        return " OR ".join(f'"{t}"' for t in terms)

    def top(self, terms: list[str], k: int) -> list[tuple[int, float]]:
        if not terms:
            return []
        return [(r, -s) for r, s in self.db.execute(
            "SELECT rowid, bm25(chunks) FROM chunks WHERE chunks MATCH ? ORDER BY rank LIMIT ?",
            (self._match(terms), k))]

    def of(self, terms: list[str], ids: list[int]) -> list[float]:
        if not terms:
            return [0.0] * len(ids)
        found = dict(self.db.execute(
            f"SELECT rowid, -bm25(chunks) FROM chunks WHERE chunks MATCH ? AND rowid IN ({','.join('?' * len(ids))})",
            (self._match(terms), *ids)))
        return [found.get(i, 0.0) for i in ids]


class Tantivy:
    name = "tantivy"

    def __init__(self, ids: list[int], texts: list[str], work: Path):
        import tantivy

        self.tantivy = tantivy
        builder = tantivy.SchemaBuilder()
        builder.add_integer_field("id", stored=True, indexed=True, fast=True)
        builder.add_text_field("terms", stored=False, tokenizer_name="whitespace")
        self.index = tantivy.Index(builder.build(), path=str(work))
        self.writer = self.index.writer(heap_size=200_000_000, num_threads=1)
        for chunk_id, terms in zip(ids, index_tokens(texts)):
            self.writer.add_document(tantivy.Document(id=chunk_id, terms=" ".join(terms)))
        self.writer.commit()
        self.index.reload()
        self.searcher = self.index.searcher()

    def update(self, removed: list[int], ids: list[int], texts: list[str]) -> None:
        for chunk_id in removed:
            self.writer.delete_documents_by_term("id", chunk_id)
        for chunk_id, terms in zip(ids, index_tokens(texts)):
            self.writer.add_document(self.tantivy.Document(id=chunk_id, terms=" ".join(terms)))
        self.writer.commit()
        self.index.reload()
        self.searcher = self.index.searcher()

    def _query(self, terms: list[str]):
        return self.index.parse_query(" ".join(terms), ["terms"])

    def top(self, terms: list[str], k: int) -> list[tuple[int, float]]:
        if not terms:
            return []
        hits = self.searcher.search(self._query(terms), k).hits
        return [(self.searcher.doc(address)["id"][0], score) for score, address in hits]

    def of(self, terms: list[str], ids: list[int]) -> list[float]:
        if not terms:
            return [0.0] * len(ids)
        wanted = self.tantivy.Query.term_set_query(self.index.schema, "id", ids)
        query = self.tantivy.Query.boolean_query([
            (self.tantivy.Occur.Must, self._query(terms)),
            (self.tantivy.Occur.Must, self.tantivy.Query.const_score_query(wanted, 0.0))])
        hits = self.searcher.search(query, len(ids)).hits
        found = {self.searcher.doc(address)["id"][0]: score for score, address in hits}
        return [found.get(i, 0.0) for i in ids]


OPTIONS = (Postings, Fts5, Tantivy)


def ndcg_at_10(ranked: list[str], relevant: set[str]) -> float:
    gain = sum(1 / math.log2(i + 2) for i, d in enumerate(ranked[:10]) if d in relevant)
    return gain / sum(1 / math.log2(i + 2) for i in range(min(10, len(relevant))))


def quality(vectors: Path | None, work: Path) -> dict:
    from ann_bench import SENTENCE_END

    docs = [json.loads(line) for line in (SCIFACT / "corpus.jsonl").open()]
    texts = [f"{d['title']}\n{d['text']}" for d in docs]
    queries_in_order = [json.loads(line) for line in (SCIFACT / "queries.jsonl").open()]
    qrels: dict[str, set[str]] = {}
    for line in list((SCIFACT / "qrels" / "train.tsv").open())[1:]:
        qid, doc_id, _ = line.split("\t")
        qrels.setdefault(qid, set()).add(doc_id)
    dense = None
    if vectors is not None and vectors.exists():
        sentences, query_vectors = np.load(vectors), np.load(vectors.with_suffix(".queries.npy"))
        owner = np.concatenate([np.full(sum(len(s) > 20 for s in SENTENCE_END.split(d["text"])), n)
                                for n, d in enumerate(docs)]).astype(np.int64)
        assert len(owner) == len(sentences), "the vector cache is not of these sentences"
        query_row = {q["_id"]: n for n, q in enumerate(queries_in_order)}
        dense = (sentences, owner, query_vectors, query_row)
    queries = {q["_id"]: q["text"] for q in queries_in_order}
    results = {}
    for option in OPTIONS:
        folder = work / f"quality-{option.name}"
        folder.mkdir()
        index = option(list(range(len(texts))), texts, folder)
        lexical_only, hybrid = [], []
        for qid, relevant in qrels.items():
            terms = index_tokens([queries[qid]])[0]
            scores = np.zeros(len(texts))
            for doc, score in index.top(terms, len(texts)):
                scores[doc] = score
            ranked = [int(i) for i in np.argsort(-scores, kind="stable") if scores[i] > 0][:10]
            lexical_only.append(ndcg_at_10([docs[i]["_id"] for i in ranked], relevant))
            if dense is not None:
                sentences, owner, query_vectors, query_row = dense
                cosine = sentences @ query_vectors[query_row[qid]]
                best = np.full(len(texts), -1.0)
                np.maximum.at(best, owner, cosine)
                fused = DENSE_WEIGHT * (best + 1) / (best.max() + 1) + (1 - DENSE_WEIGHT) * (
                    scores / scores.max() if scores.max() > 0 else scores)
                hybrid.append(ndcg_at_10([docs[i]["_id"] for i in np.argsort(-fused, kind="stable")[:10]], relevant))
        results[option.name] = {"bm25_ndcg@10": float(np.mean(lexical_only)),
                                "hybrid_ndcg@10": float(np.mean(hybrid)) if hybrid else None}
        print(json.dumps({option.name: results[option.name]}), flush=True)
    return results


def cost(chunks: int, work: Path) -> dict:
    from store_bench import CHUNKS_PER_DOC, Synthetic

    import faiss

    faiss.omp_set_num_threads(1)
    data = Synthetic()
    documents = chunks // CHUNKS_PER_DOC
    texts, ids = [], []
    for n in range(documents):
        doc, doc_chunks, _, _ = data.document(n)
        texts.extend(f"{doc.title}\n{c.text}" for c in doc_chunks)
        ids.extend(range(n * CHUNKS_PER_DOC, (n + 1) * CHUNKS_PER_DOC))
    questions = [index_tokens([t])[0] for t in data.query_texts(50)]
    rng = np.random.default_rng(9)
    others = [sorted(rng.choice(chunks, 100, replace=False).tolist()) for _ in questions]
    results = {}
    for option in OPTIONS:
        folder = work / f"cost-{option.name}"
        folder.mkdir()
        wall, cpu = time.perf_counter(), time.process_time()
        index = option(ids, texts, folder)
        built = {"build_s": time.perf_counter() - wall, "build_cpu_s": time.process_time() - cpu}
        updates = []
        for round_ in range(3):
            doc, doc_chunks, _, _ = data.document(documents + round_)
            removed = [c for d in range(20) for c in range((round_ * 20 + d) * CHUNKS_PER_DOC,
                                                             (round_ * 20 + d + 1) * CHUNKS_PER_DOC)]
            new_ids = list(range(chunks + round_ * CHUNKS_PER_DOC, chunks + (round_ + 1) * CHUNKS_PER_DOC))
            cpu = time.process_time()
            index.update(removed, new_ids, [f"{doc.title}\n{c.text}" for c in doc_chunks])
            updates.append(time.process_time() - cpu)
        top, of = [], []
        for terms, given in zip(questions, others):
            cpu = time.process_time()
            index.top(terms, 100)
            top.append(time.process_time() - cpu)
            cpu = time.process_time()
            index.of(terms, given)
            of.append(time.process_time() - cpu)
        results[option.name] = {**built, "update_cpu_ms": [1000 * u for u in updates],
                                "top100_p50_cpu_ms": 1000 * statistics.median(top),
                                "scores_of_100_p50_cpu_ms": 1000 * statistics.median(of),
                                "disk_mb": sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20,
                                "load": load_average()}
        print(json.dumps({option.name: results[option.name]}), flush=True)
        del index
        shutil.rmtree(folder, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", default="100000", help="sizes of the cost runs, comma-separated")
    parser.add_argument("--vectors", type=Path, default=Path("/tmp/scifact-vectors.npy"))
    parser.add_argument("--skip-quality", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rag-lexical-options-"))
    report = {"threads": 1, "load": load_average()}
    if not args.skip_quality:
        report["quality"] = quality(args.vectors, work)
    for chunks in [int(c) for c in args.chunks.split(",") if c]:
        report[f"cost_{chunks}"] = cost(chunks, work)
    print(json.dumps(report, indent=1))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
