"""BM25 of this branch's segmented postings against main's bm25s index, on SciFact train.

The store's lexical side changed from bm25s (scores baked in at build time) to term-frequency
postings scored at query time with the version's statistics. This checks that nothing moved:
the same rows (title + abstract, as the store indexes them), the same queries; it reports the
largest score difference, how many top-100 lists differ, and nDCG@10 of each, for one index
and for the same rows split into 7 segments with 10 % of the documents deleted and re-added.

    python bench/lexical_parity.py
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import bm25s
import numpy as np

from rag.lexical import B, K1, LexicalIndex
from rag.text import index_tokens

SCIFACT = Path(__file__).resolve().parent.parent.parent / "shared" / "beir" / "scifact"


def ndcg_at_10(ranked: list[str], relevant: set[str]) -> float:
    gain = sum(1 / math.log2(i + 2) for i, d in enumerate(ranked[:10]) if d in relevant)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(10, len(relevant))))
    return gain / ideal


def main() -> None:
    docs = [json.loads(line) for line in (SCIFACT / "corpus.jsonl").open()]
    texts = [f"{d['title']}\n{d['text']}" for d in docs]
    queries = {q["_id"]: q["text"] for q in map(json.loads, (SCIFACT / "queries.jsonl").open())}
    qrels: dict[str, set[str]] = {}
    for line in list((SCIFACT / "qrels" / "train.tsv").open())[1:]:
        qid, doc_id, _ = line.split("\t")
        qrels.setdefault(qid, set()).add(doc_id)

    start = time.perf_counter()
    main_index = bm25s.BM25(k1=K1, b=B)
    main_index.index(index_tokens(texts), show_progress=False)
    main_build = time.perf_counter() - start
    start = time.perf_counter()
    ours = LexicalIndex.build(list(range(len(texts))), texts)
    our_build = time.perf_counter() - start

    # The same documents as segments: 7 parts, a tenth deleted from their part and re-added
    # (under new ids) in a last one, as incremental builds leave them.
    rng = np.random.default_rng(0)
    moved = set(rng.choice(len(texts), len(texts) // 10, replace=False).tolist())
    bounds = np.linspace(0, len(texts), 7).astype(int)
    parts = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        part = LexicalIndex.build(list(range(a, b)), texts[a:b])
        parts.append((part, np.array([i not in moved for i in range(a, b)])))
    readded = sorted(moved)
    parts.append((LexicalIndex.build([len(texts) + i for i in range(len(readded))],
                                     [texts[i] for i in readded]), None))
    segmented = LexicalIndex.combined(parts)
    segment_doc = {len(texts) + n: i for n, i in enumerate(readded)}

    largest, differing, differing_segmented, scores = 0.0, 0, 0, {"main": [], "ours": [], "segmented": []}
    for qid, relevant in qrels.items():
        terms = [t for t in index_tokens([queries[qid]])[0] if t in main_index.vocab_dict]
        reference = main_index.get_scores(terms) if terms else np.zeros(len(texts))
        mine = ours.scores(queries[qid])
        largest = max(largest, float(np.max(np.abs(reference - np.asarray(mine.of(list(range(len(texts)))))))))
        top_main = [int(i) for i in np.argsort(-reference, kind="stable")[:100] if reference[i] > 0]
        top_ours = [c for c, _ in mine.top(100)]
        top_segmented = [segment_doc.get(c, c) for c, _ in segmented.scores(queries[qid]).top(100)]
        differing += top_main != top_ours
        differing_segmented += [round(float(reference[i]), 4) for i in top_main] != [
            round(s, 4) for _, s in segmented.scores(queries[qid]).top(100)]
        for name, top in (("main", top_main), ("ours", top_ours), ("segmented", top_segmented)):
            scores[name].append(ndcg_at_10([docs[i]["_id"] for i in top], relevant))
    print(json.dumps({
        "documents": len(texts), "train_queries": len(qrels),
        "largest_score_difference": largest,
        "top100_lists_differing": differing,
        "top100_score_lists_differing_segmented": differing_segmented,
        **{f"ndcg@10_{name}": float(np.mean(v)) for name, v in scores.items()},
        "build_s": {"bm25s": main_build, "postings": our_build},
        "load": "/".join(f"{x:.2f}" for x in os.getloadavg()),
    }, indent=1))


if __name__ == "__main__":
    main()
