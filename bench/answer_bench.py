"""Extractive answer(): latency beside retrieve(), and quality on the seed and SciFact questions.

Latency is measured in one warm process (model loaded, one question answered first), for each
question once new to the process ("first ask": the question is embedded, as retrieve() embeds its
own copy of it) and once again ("repeat": the query vector is cached).
Quality: share of answerable questions whose answer cites a relevant document (seed: the evidence
is inside a quote), share of quotes equal to the document text at their offsets (must be 100 %),
and refusal accuracy on unanswerable questions. SciFact claims here are ones calibrate_refusal.py
did not look at.

    RAG_THREADS=1 HF_HUB_OFFLINE=1 python bench/answer_bench.py [--standalone-sentences]

``--standalone-sentences``: as rag answered before indexes stored sentence vectors (candidate
sentences embedded at question time), for a side-by-side run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibrate_refusal import CALIBRATION_CLAIMS, WORK  # noqa: E402
from scifact_subset import load_subset, write_corpus  # noqa: E402

from rag import answer, build_index, load_settings, retrieve  # noqa: E402
from rag.retriever import Retriever  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SEED = REPO.parent / "shared" / "eval" / "seed_questions.jsonl"
BENCH_CLAIMS = 50


def timed(call) -> tuple[float, object]:
    started = time.perf_counter()
    result = call()
    return (time.perf_counter() - started) * 1000, result


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--standalone-sentences", action="store_true")
    if parser.parse_args().standalone_sentences:
        Retriever.sentence_vectors = lambda self, places: {}

    settings = load_settings()
    subset = load_subset()
    scifact_index, default_index = WORK / "scifact-index", WORK / "default-index"
    build_index(write_corpus(subset, WORK / "scifact-corpus"), scifact_index, full=True, settings=settings)
    build_index(REPO / "corpus", default_index, full=True, settings=settings)

    seed = [json.loads(line) for line in SEED.open()]
    answerable = subset.answerable[CALIBRATION_CLAIMS : CALIBRATION_CLAIMS + BENCH_CLAIMS]
    absent = subset.absent[CALIBRATION_CLAIMS : CALIBRATION_CLAIMS + BENCH_CLAIMS]
    # (question, index, relevant doc_ids or evidence strings, answerable?)
    cases = [(q["question"], default_index, q["evidence"], q["answerable"]) for q in seed]
    cases += [(c.text, scifact_index, c.relevant, True) for c in answerable]
    cases += [(c.text, scifact_index, set(), False) for c in absent]

    answer(cases[0][0], index_dir=default_index, settings=settings)  # warm: model, indexes
    answer(cases[-1][0], index_dir=scifact_index, settings=settings)

    from rag.retriever import get_retriever

    latency = {"retrieve": [], "answer (first ask)": [], "answer (repeat)": []}
    right, answerable_count, refused, unanswerable_count, verified, quotes = 0, 0, 0, 0, 0, 0
    for question, index, truth, is_answerable in cases:
        # Neither call may find the other's query vector cached: retrieve() gets a marked copy.
        ms, result = timed(lambda: answer(question, index_dir=index, settings=settings))
        latency["answer (first ask)"].append(ms)
        ms, _ = timed(lambda: retrieve(f"{question} (r)", settings.top_k, index_dir=index, settings=settings))
        latency["retrieve"].append(ms)
        ms, _ = timed(lambda: answer(question, index_dir=index, settings=settings))
        latency["answer (repeat)"].append(ms)

        retriever = get_retriever(index, settings)
        for citation in result.citations:
            quotes += 1
            verified += retriever.document(citation.doc_id).text[citation.start : citation.end] == citation.quote
        if is_answerable:
            answerable_count += 1
            if isinstance(truth, set):
                right += result.found and any(c.doc_id in truth for c in result.citations)
            else:
                right += result.found and any(e in c.quote for e in truth for c in result.citations)
        else:
            unanswerable_count += 1
            refused += not result.found and not result.citations

    print(f"torch threads={torch.get_num_threads()} (RAG_THREADS={settings.threads}) "
          f"load average={'/'.join(f'{x:.2f}' for x in os.getloadavg())} "
          f"min_relevance={settings.min_relevance}")
    print(f"{len(cases)} questions: {len(seed)} seed, {len(answerable)} SciFact answerable, "
          f"{len(absent)} SciFact with their abstracts left out")
    for name, values in latency.items():
        print(f"{name:>20}: p50 {statistics.median(values):6.1f} ms  p95 {percentile(values, 0.95):6.1f} ms")
    base = statistics.median(latency["retrieve"])
    for name in ("answer (first ask)", "answer (repeat)"):
        print(f"{name:>20}: p50 = {statistics.median(latency[name]) / base:.2f} x retrieve p50")
    print(f"answerable answered from a relevant document: {right}/{answerable_count} = {right / answerable_count:.1%}")
    print(f"verified quotes: {verified}/{quotes} = {verified / quotes:.1%}")
    print(f"unanswerable refused: {refused}/{unanswerable_count} = {refused / unanswerable_count:.1%}")


if __name__ == "__main__":
    main()
