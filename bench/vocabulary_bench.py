"""The first question after a commit: the spelling vocabulary of the new index version.

Before: every document of the version read and counted (``vocabulary_of`` on main reads each
document's text on the first question after every commit). Now: each segment's words counted
once per process, a version combining its segments less the documents deleted since. An index
of N synthetic documents (Zipf-distributed made-up words, one chunk each, tiny vectors: nothing
here embeds) is built through the writer, one question asked on it, then one commit changes 1
document, removes 20 and adds 1, and the first question on the new version is timed both ways,
taking turns. The question forces the matcher (a misspelt word), as a real typo would.

    python bench/vocabulary_bench.py --documents 10000 50000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from rag.answering.relevance import vocabulary_of
from rag.index.writer import VersionWriter
from rag.store import open_snapshot
from rag.text import Vocabulary
from rag.types import Chunk, Document

DIMENSION = 8
WORDS_PER_DOCUMENT = 150
QUESTION_WORD = "kalomineq"  # one letter off "kalomine", which the corpus uses


class Corpus:
    """Deterministic documents of made-up words, Zipf-distributed like real vocabularies."""

    def __init__(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        syllables = ["ka", "lo", "mi", "ne", "tu", "ra", "si", "po", "de", "ga", "vo", "xi", "be", "fu"]
        self.words = ["kalomine"] + ["".join(rng.choice(syllables, size=rng.integers(2, 5))) for _ in range(60_000)]
        ranks = np.arange(1, len(self.words) + 1)
        self.cdf = np.cumsum(1 / ranks) / np.sum(1 / ranks)

    def document(self, n: int, version: int = 0) -> tuple[Document, list[Chunk], np.ndarray]:
        rng = np.random.default_rng((n, version))
        picks = np.searchsorted(self.cdf, rng.random(WORDS_PER_DOCUMENT))
        text = " ".join(self.words[min(i, len(self.words) - 1)] for i in picks).capitalize() + "."
        vector = rng.normal(size=(1, DIMENSION)).astype(np.float32)
        doc = Document(f"doc-{n}", f"Document {n} revision {version}", text, f"hash-{n}-{version}")
        return doc, [Chunk(doc.doc_id, 0, text, 0, len(text))], vector / np.linalg.norm(vector)


def manifest(hashes: dict, next_id: int) -> dict:
    return {"model": "synthetic", "dimension": DIMENSION, "chunking": {}, "documents": hashes,
            "next_chunk_id": next_id, "built_at": "now"}


def build(index_dir: Path, documents: int, corpus: Corpus) -> dict:
    writer = VersionWriter(index_dir, None, DIMENSION)
    hashes = {}
    for n in range(documents):
        doc, chunks, vectors = corpus.document(n)
        writer.add_document(doc, chunks, [n], vectors, {})
        hashes[doc.doc_id] = doc.content_hash
    writer.commit(manifest(hashes, documents))
    return hashes


def commit_a_change(index_dir: Path, documents: int, corpus: Corpus, hashes: dict) -> None:
    base = open_snapshot(index_dir)
    next_id = base.manifest["next_chunk_id"]
    writer = VersionWriter(index_dir, base, DIMENSION)
    for doc_id in [f"doc-{documents - 1 - i}" for i in range(20)]:
        writer.remove_document(doc_id)
        hashes.pop(doc_id)
    for n, version in ((0, 1), (documents, 0)):
        doc, chunks, vectors = corpus.document(n, version)
        writer.remove_document(doc.doc_id)
        writer.add_document(doc, chunks, [next_id], vectors, {})
        next_id += 1
        hashes[doc.doc_id] = doc.content_hash
    writer.commit(manifest(hashes, next_id))
    base.close()


def every_document(snapshot) -> Vocabulary:
    """Main's ``vocabulary_of``: every document of the version read and counted."""
    infos = snapshot.documents()
    return Vocabulary([snapshot.document(info.doc_id).text for info in infos] + [info.title for info in infos])


def timed(ask) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    assert ask() == "kalomine"
    return time.perf_counter() - wall, time.process_time() - cpu


def run(documents: int, rounds: int, work: Path) -> dict:
    corpus = Corpus()
    index_dir = work / f"index-{documents}"
    hashes = build(index_dir, documents, corpus)
    first = open_snapshot(index_dir)
    first_question = timed(lambda: vocabulary_of(first).match(QUESTION_WORD))  # this process's first
    commit_a_change(index_dir, documents, corpus, hashes)
    times = {"before": [], "now": []}
    for n in range(rounds):
        for system in ("before", "now") if n % 2 == 0 else ("now", "before"):
            snapshot = open_snapshot(index_dir)  # a new reader: nothing cached for this version
            ask = (lambda: every_document(snapshot).match(QUESTION_WORD)) if system == "before" else (
                lambda: vocabulary_of(snapshot).match(QUESTION_WORD))
            times[system].append(timed(ask))
            snapshot.close()
    first.close()
    median = {system: {"wall_s": round(statistics.median(t[0] for t in v), 4),
                       "cpu_s": round(statistics.median(t[1] for t in v), 4)} for system, v in times.items()}
    return {"documents": documents, "segments": len(open_snapshot(index_dir).manifest.segments),
            "first_question_of_the_process": {"wall_s": round(first_question[0], 3), "cpu_s": round(first_question[1], 3)},
            "first_question_after_a_commit": median,
            "cpu_ratio_before_to_now": round(median["before"]["cpu_s"] / median["now"]["cpu_s"], 1),
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        for documents in args.documents:
            print(json.dumps(run(documents, args.rounds, Path(work))), flush=True)


if __name__ == "__main__":
    main()
